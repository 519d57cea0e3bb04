"""Load a monthly sales history from CSV text, exactly or not at all.

`load_sales` returns one row per (series, month) with the numbers that are in the file,
or raises `DataError` with one paragraph naming the file, the line or value, what is
wrong and what to do. It repairs only what cannot change a number (an index column, an
identical repeated row, a byte-order mark) and reports every repair in `notes`; it never
guesses a number convention, sums duplicates or treats a series with holes as
contiguous, because any of those would shift the seasons a model learns.

Line numbers in messages count physical lines of the file, the header being line 1.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import os
import re
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

__all__ = ["Columns", "DataError", "LoadedSales", "check_encoding", "load_sales"]

# Column separators the loader recognises, with the word used for them in messages.
SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab"}

# Accepted date spellings (strptime format -> example shown in messages). Day-first and
# month-first numeric dates with slashes (01/02/1980) are left out on purpose: they
# cannot be told apart. With dots the day comes first wherever dots are written
# (31.01.1980, as German, French or Russian spreadsheets export dates). A time of day
# (spreadsheets and databases add 00:00:00) is read and dropped. Month names are
# English.
DATE_FORMATS = {
    "%Y-%m-%d": "1980-01-31",
    "%Y-%m": "1980-01",
    "%Y-%m-%d %H:%M:%S": "1980-01-31 00:00:00",
    "%Y-%m-%dT%H:%M:%S": "1980-01-31T00:00:00",
    "%Y-%m-%dT%H:%M:%SZ": "1980-01-31T00:00:00Z",
    "%Y/%m/%d": "1980/01/31",
    "%Y/%m": "1980/01",
    "%d.%m.%Y": "31.01.1980",
    "%m.%Y": "01.1980",
    "%m/%Y": "01/1980",
    "%b-%Y": "Jan-1980",
    "%b %Y": "Jan 1980",
    "%B-%Y": "January-1980",
    "%B %Y": "January 1980",
}

# A year before this is a typo (0980, 0080); it is also near the start of the
# nanosecond timestamps the frame holds (1677).
EARLIEST_YEAR = 1800

# Ways to fill missing months, chosen explicitly by the caller.
FILL_GAPS = ("interpolate",)

# Spellings of "no number here" that spreadsheets and pandas write, compared lowercased.
MISSING_MARKERS = frozenset(
    {"nan", "na", "n/a", "#n/a", "null", "none", "inf", "+inf", "-inf", "infinity",
     "+infinity", "-infinity", "#value!", "#div/0!"}
)

# File starts that give away a binary format, to say what the file probably is.
BINARY_SIGNATURES = {
    b"PK\x03\x04": "a ZIP archive (an Excel .xlsx workbook is one)",
    b"\xd0\xcf\x11\xe0": "an old Excel .xls workbook",
    b"\xff\xfe": "UTF-16 text",
    b"\xfe\xff": "UTF-16 text",
    b"%PDF": "a PDF document",
    b"\x1f\x8b": "gzip-compressed data",
}
EXPORT_AS_TEXT = (
    "Export the data from its program as CSV text (comma-separated values, UTF-8) and "
    "load that file."
)
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
ALLOWED_BYTES = bytes(b for b in range(256) if not CONTROL_CHARACTERS.match(chr(b)))

# What messages call bytes given without a source_name.
UNNAMED_INPUT = "uploaded data"

# How many examples a message lists before saying "and N more".
LISTED = 5


class DataError(ValueError):
    """The input cannot be loaded as it is; the message says where, why and the fix."""


@dataclass(frozen=True)
class Columns:
    """Header names of the columns to read. The series column may be absent from the
    file (one series); a series column other than the default must be present."""

    date: str = "date"
    sales: str = "sales"
    series: str | None = "series"


@dataclass
class LoadedSales:
    """The loaded history: `frame` has the columns series (str), date (datetime64[ns],
    first of the month) and sales (float64), sorted by series then date, one row per
    series and month, months contiguous within each series."""

    frame: pd.DataFrame
    source: str
    notes: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict:
        """A JSON-ready description: rows, each series' span, notes and rejections."""
        by_series = self.frame.groupby("series", sort=True)["date"]
        spans = by_series.agg(["min", "max", "size"])
        series = [
            {"name": str(name), "first": f"{row['min']:%Y-%m-%d}",
             "last": f"{row['max']:%Y-%m-%d}", "months": int(row["size"])}
            for name, row in spans.iterrows()
        ]

        return {"source": self.source, "rows": int(len(self.frame)), "series": series,
                "notes": list(self.notes), "rejected": dict(self.rejected)}


# Number conventions -----------------------------------------------------------------

@dataclass(frozen=True)
class NumberStyle:
    """One way of writing numbers. `shape` is matched against a value's shape, the value
    with every digit written as 9, so a million values need only a few regex matches."""

    decimal: str
    thousands: str
    shape: re.Pattern[str]


POINT_DECIMAL = NumberStyle(
    ".", ",", re.compile(r"-?(?:9{1,3}(?:,999)+|9+)(?:\.9+)?(?:[eE][-+]?9+)?")
)
COMMA_DECIMAL = NumberStyle(",", ".", re.compile(r"-?(?:9{1,3}(?:\.999)+|9+)(?:,9+)?"))
NUMBER_STYLES = (POINT_DECIMAL, COMMA_DECIMAL)


# Problems found on a single line: message templates in the order they are checked.
ROW_PROBLEMS = {
    "date": (
        "line {line}: date {value!r} is not a date in an accepted format ({formats}). "
        "Correct it, or export the dates as YYYY-MM-DD."
    ),
    "early": (
        "line {line}: date {value!r} is before " + str(EARLIEST_YEAR) + ", which looks "
        "like a typo in the year. Correct the year."
    ),
    "future": (
        "line {line}: date {value!r} is after the current month ({today}); a sales "
        "history cannot contain the future. Remove forecast or plan rows and load "
        "again."
    ),
    "empty": (
        "line {line}: the sales value is empty. Fill it in, or delete the line and "
        "load with fill_gaps='interpolate' (--fill-gaps interpolate) to estimate that "
        "month."
    ),
    "missing": (
        "line {line}: sales value {value!r} marks a missing or infinite value, not a "
        "number. Replace it with the month's sales, or delete the line and load with "
        "fill_gaps='interpolate' (--fill-gaps interpolate) to estimate that month."
    ),
    "number": (
        "line {line}: sales value {value!r} is not a number as the loader reads them. "
        "Write plain numbers such as 1664, 1664.81 or 1.66e3: digits before any "
        "decimal mark, no '+' sign, currency signs, units or spaces."
    ),
    "negative": (
        "line {line}: sales value {value!r} is negative, but sales must be >= 0. Net "
        "returns against the sales of the same month before exporting."
    ),
    "too_large": (
        "line {line}: sales value {value!r} is above 2^53 (about 9.007e15), where "
        "numbers stop being exact and the model's squared errors overflow. Check the "
        "column and the decimal mark, or record the sales in larger units (thousands, "
        "millions)."
    ),
}
PROBLEM_KINDS = tuple(ROW_PROBLEMS)  # code k > 0 in a row's "problem" is kind k - 1
SALES_PROBLEMS = ("empty", "missing", "number", "negative", "too_large")  # quote it
# Above this a float no longer holds every whole number, and squares of errors at
# the scale of the largest floats overflow in the backtest.
MAX_SALES = float(2 ** 53)


# Entry point ------------------------------------------------------------------------

def load_sales(
    source: str | os.PathLike | bytes,
    *,
    columns: Columns = Columns(),
    strict: bool = False,
    min_months: int = 36,
    fill_gaps: str | None = None,
    encoding: str = "utf-8",
    series_name: str | None = None,
    today=None,
    source_name: str | None = None,
) -> LoadedSales:
    """Load a monthly sales CSV from a path or from bytes (an upload or a download).

    `source_name` names the input in messages and in the result (default: the path,
    or UNNAMED_INPUT for bytes). Without a series column every row belongs to
    `series_name`, by default the file name without its extension. A series with a
    problem is left out and listed in `rejected`, unless `strict` is set or no series
    is left: then DataError is raised. `today` (default: now) sets the last month a
    history may contain.
    """
    _check_options(min_months, fill_gaps, series_name)
    label, raw = _read_source(source, source_name)
    notes: list[str] = []

    text = _decode(raw, label, encoding)
    _refuse_long_lines(text, label)
    separator, header = _read_header(text, label)
    records, lines, padded = _read_records(text, separator, header, label, notes)
    rows, has_series = _pick_columns(
        records, lines, header, columns, label, notes,
        default_series=series_name or _stem(label), explicit_name=series_name,
    )
    series_at = header.index(columns.series) if has_series else None
    if series_at in padded:
        notes.append(
            "removed the spaces around series names (the first on line "
            f"{padded[series_at]}); names that differ only by such spaces are read "
            "as one series")
    this_month = _month_of(today)
    rows = _parse_values(rows, separator, label, notes, this_month)
    appearance = {name: i for i, name in enumerate(pd.unique(rows["series"]))}

    rejected: dict[str, str] = {}
    rows = _reject_bad_rows(rows, rejected, this_month)
    rows = _drop_current_month(rows, notes, this_month)
    rows = _sort(rows)
    rows = _reject_sub_monthly(rows, rejected)
    rows = _drop_duplicates(rows, rejected, notes)
    rows = _close_gaps(rows, rejected, notes, fill_gaps)
    rows = _drop_leading_zeros(rows, notes)
    rows = _reject_short(rows, rejected, min_months)
    _note_trailing_zeros(rows, notes)
    rejected = dict(sorted(rejected.items(), key=lambda item: appearance[item[0]]))
    _refuse_if_needed(rows, rejected, label, has_series, strict, notes)

    return LoadedSales(_frame(rows), label, notes, rejected)


def _check_options(min_months, fill_gaps, series_name=None) -> None:
    if series_name is not None and (
            series_name != series_name.strip() or not series_name
            or not series_name.isprintable()):
        # DataError: the name comes from the person loading the file.
        raise DataError(
            "series_name (--series-name) must be a non-empty name without leading or "
            "trailing spaces or control characters (names in a file are read that "
            f"way), got {series_name[:100]!r}."
        )
    if fill_gaps is not None and fill_gaps not in FILL_GAPS:
        raise ValueError(
            f"fill_gaps must be None or one of {FILL_GAPS}, got {fill_gaps!r}."
        )
    if not isinstance(min_months, int) or min_months < 1:
        raise ValueError(f"min_months must be a positive integer, got {min_months!r}.")


def _month_of(today) -> np.datetime64:
    moment = pd.Timestamp(date.today() if today is None else today)
    return np.datetime64(moment.strftime("%Y-%m"), "M")


def _month_numbers(values) -> np.ndarray:
    """Months since 1970-01 as integers, whatever datetime unit the values carry."""
    return np.asarray(values).astype("datetime64[M]").astype(np.int64)


def _ym(value) -> str:
    """'1985-03' for a timestamp, a datetime64 or a month number from _month_numbers."""
    if isinstance(value, (int, np.integer)):
        return str(np.datetime64(int(value), "M"))
    return pd.Timestamp(value).strftime("%Y-%m")


def _stem(label: str) -> str:
    """'data/wineind.csv' or 'https://host/x/wineind.csv?raw=1' -> 'wineind'."""
    if label == UNNAMED_INPUT:
        return "sales"
    base = re.split(r"[\\/]", label.split("?")[0].split("#")[0])[-1]

    return base.rsplit(".", 1)[0] if "." in base.strip(".") else base or "sales"


# Bytes to text ----------------------------------------------------------------------

def _read_source(source, source_name) -> tuple[str, bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return source_name or UNNAMED_INPUT, bytes(source)

    label = source_name or os.fspath(source)
    try:
        with open(source, "rb") as handle:
            return label, handle.read()
    except OSError as error:
        raise DataError(
            f"{label}: cannot read the file ({error.strerror or error}). Check the "
            "path; URLs are downloaded by the training command, not read here."
        ) from None


def check_encoding(name: str) -> str:
    """`name` if Python can encode and decode text in it (str.encode refuses
    unknown names and byte-to-byte codecs such as base64 alike); ValueError saying
    what to give otherwise."""
    try:
        "\n".encode(name)
    except LookupError:
        raise ValueError(f"unknown text encoding {name[:40]!r}: give a name such as "
                         "utf-8, cp1252 or latin-1.") from None
    return name


def _decode(raw: bytes, label: str, encoding: str) -> str:
    """Text with the byte-order mark removed and every line ending turned into \\n, so
    that Windows (\\r\\n) and old Mac (\\r) files count lines like any other."""
    single_byte_newline = "\n".encode(check_encoding(encoding)) == b"\n"
    if single_byte_newline:
        _refuse_binary(raw, label)

    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as error:
        raise _undecodable(raw, label, encoding, error) from None
    except UnicodeError as error:
        # Codecs such as punycode or idna fail without saying where.
        raise DataError(f"{label} is not valid {encoding} text ({str(error)[:200]}). "
                        "Re-save the file as UTF-8, or pass its real encoding "
                        "(--encoding).") from None
    text = text.removeprefix("\ufeff")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")

    junk = _control_character(raw, text, single_byte_newline)
    if junk:
        line = text.count("\n", 0, junk.start()) + 1
        raise DataError(
            f"{label} is not a CSV text file: line {line} contains the control "
            f"character U+{ord(junk.group()):04X}, which text files do not have. "
            + EXPORT_AS_TEXT
        )
    return text


def _control_character(raw: bytes, text: str, single_byte_newline: bool):
    """The first control character in the text, or None. In ASCII-based encodings a
    control character is a single byte, and deleting every allowed byte finds one much
    faster than a search of the text."""
    if single_byte_newline and not raw.translate(None, ALLOWED_BYTES):
        return None
    return CONTROL_CHARACTERS.search(text)


def _refuse_binary(raw: bytes, label: str) -> None:
    kind = next((k for s, k in BINARY_SIGNATURES.items() if raw.startswith(s)), None)
    nul = raw.find(b"\x00")
    if kind is None and nul < 0:
        return

    where = f"a NUL byte at line {_line_of_byte(raw, nul)} (byte offset {nul})"
    found = f"it starts like {kind}" if kind else f"it contains {where}"
    fix = EXPORT_AS_TEXT
    if kind == "UTF-16 text":
        # Spreadsheets' "Unicode text" export: readable as it is.
        fix = ("Load it with encoding='utf-16' (--encoding utf-16), or export it as "
               "CSV text in UTF-8.")
    raise DataError(f"{label} is not a CSV text file: {found}. {fix}")


def _undecodable(raw, label, encoding, error: UnicodeDecodeError) -> DataError:
    line = _line_of_byte(raw, error.start)
    byte = raw[error.start:error.start + 1].hex()
    is_utf8 = codecs.lookup(encoding).name == "utf-8"
    suggestion = "'cp1252' or 'latin-1'" if is_utf8 else "'utf-8'"

    return DataError(
        f"{label}: line {line} is not valid {encoding} text (byte 0x{byte} at byte "
        f"offset {error.start}). Re-save the file as UTF-8 (spreadsheets call it "
        f"'CSV UTF-8'), or pass the file's real encoding, e.g. encoding={suggestion} "
        "(--encoding)."
    )


# A line of a sales file is a date, a number and perhaps a name; the CSV reader
# itself stops at 131,072 characters per value.
MAX_LINE_CHARS = 100_000


def _refuse_long_lines(text: str, label: str) -> None:
    """About 0.2 s per million lines; a file shorter than the limit needs no look."""
    if len(text) <= MAX_LINE_CHARS:
        return
    lines = text.split("\n")
    if max(map(len, lines)) <= MAX_LINE_CHARS:
        return
    number, long = next((n, line) for n, line in enumerate(lines, 1)
                        if len(line) > MAX_LINE_CHARS)
    raise DataError(
        f"{label}: line {number} is {len(long)} characters long, more than the "
        f"{MAX_LINE_CHARS} a line of a sales history can need: {_clip(long, 60)!r}. "
        "This is not a CSV export of monthly sales; check the file."
    )


def _line_of_byte(raw: bytes, offset: int) -> int:
    before = raw[:offset]
    return before.count(b"\n") + before.replace(b"\r\n", b"").count(b"\r") + 1


# Text to records --------------------------------------------------------------------

def _read_header(text: str, label: str) -> tuple[str, list[str]]:
    if not text.strip():
        raise DataError(
            f"{label} is empty. Export the sales history as CSV with a header line "
            "such as 'date,sales' and one line per month."
        )
    first = text[:text.find("\n")] if "\n" in text else text
    if not first.strip():
        raise DataError(
            f"{label}: line 1 is empty, but it must be the header naming the columns "
            "(e.g. 'date,sales'). Delete the empty lines above the header."
        )

    if first.lower().startswith("sep="):
        raise DataError(
            f"{label}: line 1 {Clipped(first)!r} is a spreadsheet's separator hint, "
            "not the header. Delete that line so the column names come first."
        )

    splits = {sep: next(csv.reader([first], delimiter=sep)) for sep in SEPARATORS}
    wide = {sep: fields for sep, fields in splits.items() if len(fields) > 1}
    if not wide:
        raise DataError(
            f"{label}: the header (line 1) {Clipped(first)!r} has only one column, "
            "but a date and a sales column are needed, separated by "
            f"{_separator_names()}. Export the file with one of these separators."
        )
    separator = _pick_separator(text, wide, label)

    return separator, [_clean_name(name) for name in wide[separator]]


def _pick_separator(text: str, wide: dict[str, list[str]], label: str) -> str:
    """The separator that splits the header; if several do, the one that splits the
    first data lines into as many fields as the header."""
    if len(wide) == 1:
        return next(iter(wide))

    sample = [line for line in text.split("\n", 101)[1:101] if line.strip()]
    consistent = [
        sep for sep, fields in wide.items()
        if all(len(row) == len(fields) for row in csv.reader(sample, delimiter=sep))
    ]
    if len(consistent) == 1:
        return consistent[0]

    names = " and ".join(f"{SEPARATORS[sep]} ({sep!r})" for sep in wide)
    raise DataError(
        f"{label}: cannot tell the column separator: the header (line 1) splits on "
        f"both {names}. Export the file with a single separator, and quote values that "
        "contain it."
    )


def _separator_names() -> str:
    names = [f"{word} ({sep!r})" for sep, word in SEPARATORS.items()]
    return ", ".join(names[:-1]) + " or " + names[-1]


def _clean_name(name: str) -> str:
    return name.strip().strip("\ufeff").strip()


def _read_records(
    text, separator, header, label, notes
) -> tuple[pd.DataFrame, np.ndarray, dict[int, int]]:
    """Every data line as stripped strings (columns numbered from 0), with the physical
    line number each record starts on, and for each column that had a value with
    spaces around it the first line of one. Blank lines are dropped and noted; a line
    with fewer or more fields than the header is refused."""
    width = len(header)
    try:
        table = pd.read_csv(
            io.StringIO(text), sep=separator, header=None, names=range(width),
            dtype=str, keep_default_na=False, skip_blank_lines=False, engine="c",
        )
    except pd.errors.ParserError as error:
        raise _malformed(text, separator, header, label, error) from None
    starts = _record_lines(table, text)
    padded = {}
    if _has_padding(text, separator):
        stripped = table.apply(lambda column: column.str.strip())
        for column in table.columns:
            changed = (stripped[column] != table[column]).to_numpy().copy()
            changed[0] = False  # the header
            if changed.any():
                padded[column] = int(starts[np.argmax(changed)])
        table = stripped

    # A blank line reads as empty values, so only lines ending empty can be blank.
    blank = (table[width - 1] == "").to_numpy().copy()
    maybe = np.flatnonzero(blank)
    blank[maybe] = (table.iloc[maybe] == "").all(axis=1).to_numpy()
    blank[0] = False  # the header
    _refuse_short_records(table, starts, blank, text, separator, header, label)
    if blank.any():
        notes.append(
            f"skipped {int(blank.sum())} empty line(s): {_some(starts[blank].tolist())}"
        )

    keep = ~blank
    keep[0] = False
    if not keep.any():
        raise DataError(
            f"{label} has a header but no data lines. Add one line per month below the "
            f"header {separator.join(header)!r}."
        )
    return table[keep].reset_index(drop=True), starts[keep], padded


def _has_padding(text: str, separator: str) -> bool:
    """Whether any value may start or end with white space. Stripping a million values
    costs more than the rest of the load, so it runs only when some space touches a
    separator, a quote or a line end."""
    spaces = [" ", "\u00a0"] + (["\t"] if separator != "\t" else [])
    edges = [separator, "\n", '"']
    present = [space for space in spaces if space in text]
    touching = any(space + edge in text or edge + space in text
                   for space in present for edge in edges)
    return touching or text[:1] in present or text[-1:] in present


def _record_lines(table: pd.DataFrame, text: str) -> np.ndarray:
    """Physical line each record starts on. It differs from the record number only
    when a quoted value spans lines, so the newlines inside values are counted then."""
    physical = text.count("\n") + (not text.endswith("\n"))
    numbers = np.arange(1, len(table) + 1)
    if len(table) == physical:
        return numbers

    inside = sum(table[column].str.count("\n") for column in table.columns).to_numpy()
    return numbers + np.concatenate(([0], np.cumsum(inside)[:-1]))


def _refuse_short_records(table, starts, blank, text, separator, header, label) -> None:
    """A line with fewer fields than the header reads as empty trailing values, so
    count the fields of the lines whose last value is empty: by counting separators
    where the line has no quotes, with the csv module where it has."""
    suspects = np.flatnonzero((table[len(header) - 1] == "").to_numpy() & ~blank)
    if not len(suspects):
        return

    ends = np.r_[starts[1:], text.count("\n") + (not text.endswith("\n")) + 1]
    physical = np.array(text.split("\n"), dtype=object)
    single = physical[starts[suspects] - 1].astype(np.dtypes.StringDType())
    one_line = ends[suspects] - starts[suspects] == 1
    plain = one_line & (np.strings.find(single, '"') < 0)
    fields = np.zeros(len(suspects), dtype=np.int64)
    fields[plain] = np.strings.count(single[plain], separator) + 1
    for at in np.flatnonzero(~plain):
        record = "\n".join(physical[starts[suspects[at]] - 1:ends[suspects[at]] - 1])
        fields[at] = len(next(csv.reader(io.StringIO(record), delimiter=separator)))

    short = np.flatnonzero(fields < len(header))
    if len(short):
        index, count = suspects[short[0]], fields[short[0]]
        record = "\n".join(physical[starts[index] - 1:ends[index] - 1])
        raise DataError(
            f"{label}: line {starts[index]} has {count} field(s) but the header has "
            f"{len(header)} ({_listing(header)}): {_clip(record)!r}. The line looks "
            "cut off; complete or delete it (was the whole file copied?)."
        )


def _malformed(text, separator, header, label, error) -> DataError:
    """Find the physical line the parser choked on, which pandas reports only as a
    record number."""
    reader = csv.reader(io.StringIO(text), delimiter=separator, strict=True)
    start = 1
    try:
        for record in reader:
            if len(record) > len(header):
                return DataError(
                    f"{label}: line {start} has {len(record)} fields but the header "
                    f"has {len(header)} ({_listing(header)}). A value probably "
                    f"contains the {SEPARATORS[separator]} {separator!r} without "
                    "quotes, such as a thousands separator; quote such values or "
                    "remove the separator."
                )
            start = reader.line_num + 1
    except csv.Error as problem:
        if "unexpected end of data" in str(problem):
            return DataError(
                f"{label}: the quote opened on line {start} is never closed, so the "
                "rest of the file would read as one value. Close or remove the quote."
            )
        return DataError(f"{label}: line {start} is not valid CSV ({problem}). Fix it.")

    return DataError(f"{label} cannot be read as CSV ({error}). Re-export the file.")


# Records to rows --------------------------------------------------------------------

def _pick_columns(
    records, lines, header, columns, label, notes, default_series, explicit_name
) -> tuple[pd.DataFrame, bool]:
    """Rows with the columns line, series, date_text and sales_text."""
    date_at = _column_index(header, columns.date, label)
    sales_at = _column_index(header, columns.sales, label)
    if date_at == sales_at:
        raise DataError(
            f"{label}: the date column {columns.date!r} is also the sales column "
            f"{columns.sales!r}; one column cannot hold both. Name the date column "
            "with --date-col and the sales column with --sales-col.")
    series_at = None
    if columns.series is not None and (
        columns.series in header or columns.series != Columns.series
    ):
        series_at = _column_index(header, columns.series, label)
    if series_at in (date_at, sales_at):
        raise DataError(
            f"{label}: the series column {columns.series!r} is also the "
            f"{'date' if series_at == date_at else 'sales'} column; every line would "
            "be a series of its own. Name the column that holds the series with "
            "--series-col, or leave it out for a file of one series.")
    _note_unused(records, header, {date_at, sales_at, series_at}, notes)

    if series_at is None:
        series = pd.Series(default_series, index=records.index, dtype=str)
    elif explicit_name is not None:
        raise DataError(
            f"{label} has the series column {columns.series!r}, so its series are "
            f"named there; series_name={explicit_name!r} (--series-name) names the one "
            "series of a file without a series column. Leave it out, or rename the "
            "series in the file."
        )
    else:
        series = records[series_at]
        _refuse_unnamed_series(series, lines, columns.series, label)
        _refuse_hidden_characters(series, lines, columns.series, label)
    rows = pd.DataFrame({
        "line": lines, "series": series,
        "date_text": records[date_at], "sales_text": records[sales_at],
    })

    return rows, series_at is not None


def _column_index(header: list[str], wanted: str, label: str) -> int:
    positions = [i for i, name in enumerate(header) if name == wanted]
    if len(positions) == 1:
        return positions[0]
    if positions:
        raise DataError(
            f"{label}: the header has {len(positions)} columns named {wanted!r} "
            f"(columns {', '.join(str(p + 1) for p in positions)}). Rename the extra "
            "ones so each name appears once."
        )

    found = _listing([repr(name) for name in header])
    close = [name for name in header if name.lower() == wanted.lower()]
    hint = f" Did you mean {close[0]!r}? Names are case-sensitive." if close else ""
    raise DataError(
        f"{label}: no column named {wanted!r} in the header (line 1); the columns "
        f"found are {found}.{hint} Name the columns to use with --date-col, "
        "--sales-col and --series-col (Columns(date=..., sales=..., series=...) in "
        "Python)."
    )


def _listing(names, limit: int = 20) -> str:
    """Names for a message, at most `limit` of them: a file with thousands of
    columns must not make a message of thousands of names."""
    names = [str(name) for name in names]
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class Clipped(str):
    """A value quoted in a message ({value!r}), cut to its first 100 characters."""

    def __repr__(self):
        if len(self) <= 100:
            return str.__repr__(self)
        return f"{str.__repr__(self[:100])}... ({len(self)} characters)"


def _note_unused(records, header, used: set, notes: list[str]) -> None:
    """Unused columns are ignored; an unnamed first column counting 0..n-1 is the row
    index pandas' to_csv() writes, and is said to be one."""
    ignored = []
    for position, name in enumerate(header):
        if position in used:
            continue
        if not name and _counts_rows(records[position].to_numpy(dtype=object)):
            notes.append(
                f"dropped column {position + 1}, an unnamed row index counting 0 to "
                f"{len(records) - 1} (as pandas' to_csv writes it)"
            )
        else:
            ignored.append(repr(name) if name else f"unnamed column {position + 1}")
    if ignored:
        notes.append(f"ignored unused column(s): {_listing(ignored)}")


def _counts_rows(values: np.ndarray) -> bool:
    """Whether the values are 0, 1, 2, ... up to the number of rows."""
    if values[0] != "0" or values[-1] != str(len(values) - 1):
        return False
    try:
        return bool((values.astype(np.int64) == np.arange(len(values))).all())
    except ValueError:
        return False


# Characters a series name may not hold: line breaks, tabs and other controls, and
# the invisible ones that reorder or hide text (bidirectional overrides, zero-width
# space, word joiner, byte-order mark). A name is how requests and summaries find a
# series; with one of these two names that look the same are not, or a printed name
# forges lines. Zero-width joiners stay: Persian and Indic scripts need them.
HIDDEN_IN_NAMES = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u2028-\u202e\u2060"
    "\u2066-\u2069\ufeff]")


def _refuse_hidden_characters(series: pd.Series, lines, column: str,
                              label: str) -> None:
    for name in pd.unique(series):
        hidden = HIDDEN_IN_NAMES.search(name)
        if hidden:
            line = lines[(series == name).to_numpy()][0]
            raise DataError(
                f"{label}: line {line}: the series name {Clipped(name)!r} in column "
                f"{column!r} contains U+{ord(hidden.group()):04X}, a line break, "
                "control or invisible character; a name with one reads like another "
                "name, or breaks the lines it is printed in. Rename the series.")


def _refuse_unnamed_series(series: pd.Series, lines, column: str, label: str) -> None:
    empty = (series == "").to_numpy()
    if empty.any():
        raise DataError(
            f"{label}: line {lines[empty][0]} has no value in the series column "
            f"{column!r} ({int(empty.sum())} line(s) in all: "
            f"{_some(lines[empty].tolist())}). Fill in the series name or delete the "
            "line."
        )


# Values -----------------------------------------------------------------------------

def _parse_values(rows, separator, label, notes, this_month) -> pd.DataFrame:
    """Adds day (the date as written), month, sales (float64) and problem (0 for a good
    line, else 1 + the index of its first problem kind in ROW_PROBLEMS)."""
    day = _parse_dates(rows["date_text"])
    month = day.astype("datetime64[M]")
    sales, sales_problems = _parse_sales(rows, separator, label, notes)

    unread = np.isnat(day)
    year = month.astype("datetime64[Y]").astype(np.int64) + 1970
    checks = {
        "date": unread,
        "early": ~unread & (year < EARLIEST_YEAR),
        "future": ~unread & (month > this_month),
        **sales_problems,
    }
    codes = np.arange(1, len(PROBLEM_KINDS) + 1)
    problem = np.select([checks[kind] for kind in PROBLEM_KINDS], codes, 0)

    return rows.assign(day=day, month=month, sales=sales, problem=problem)


def _parse_dates(texts: pd.Series) -> np.ndarray:
    """Each text read with the first DATE_FORMATS entry that fits, NaT if none does.
    Dates repeat a lot, so each distinct text is parsed once."""
    codes, distinct = pd.factorize(texts)
    distinct = np.asarray(distinct, dtype=object)
    days = np.full(len(distinct), np.datetime64("NaT"), dtype="datetime64[D]")
    for fmt in DATE_FORMATS:
        todo = np.isnat(days)
        if not todo.any():
            break
        parsed = pd.to_datetime(pd.Series(distinct[todo]), format=fmt, errors="coerce")
        days[todo] = parsed.to_numpy().astype("datetime64[D]")

    return days[codes]


def _parse_sales(rows, separator, label, notes) -> tuple[np.ndarray, dict]:
    """Sales as floats under the one number convention the file's values allow, and a
    mask per sales problem kind. Values that fit no convention are problems of their
    line, not votes on the convention."""
    values, grouped = _without_space_groups(rows["sales_text"].to_numpy(dtype=object))
    if grouped is not None:
        notes.append(f"spaces between digit groups read as thousands separators (line "
                     f"{rows['line'].iloc[grouped]}: "
                     f"{rows['sales_text'].iloc[grouped]!r})")
        # The convention is chosen on the values without those spaces; notes quote
        # the values as the file has them.
        rows = rows.assign(sales_text=values, shown_text=rows["sales_text"])
    shapes, inverse = _shapes(values)
    fits = {
        style: np.array([bool(style.shape.fullmatch(s)) for s in shapes], dtype=bool)
        for style in NUMBER_STYLES
    }
    readable_shape = fits[POINT_DECIMAL] | fits[COMMA_DECIMAL]
    style = _choose_style(rows, shapes, inverse, fits, separator, label, notes)

    readable = readable_shape[inverse]
    numbers = np.where(readable, values, "nan").astype(np.dtypes.StringDType())
    for mark, replacement in ((style.thousands, ""), (style.decimal, ".")):
        if mark != replacement and any(mark in s for s in shapes[readable_shape]):
            numbers = np.strings.replace(numbers, mark, replacement)
    sales = numbers.astype(np.float64) + 0.0  # + 0.0 turns -0.0 into 0.0

    empty = values == ""
    marker = np.zeros(len(values), dtype=bool)
    suspect = ~readable & ~empty
    if suspect.any():
        lowered = pd.Series(values[suspect], dtype=object).str.lower()
        marker[suspect] = lowered.isin(MISSING_MARKERS).to_numpy()
    unreadable = suspect & ~marker
    # A number too long for a float (1e400, 400 digits) reads as infinite.
    return sales, {"empty": empty, "missing": marker, "number": unreadable,
                   "negative": readable & (sales < 0),
                   "too_large": readable & (sales > MAX_SALES)}


# A number whose digit groups are separated by spaces (plain, no-break or narrow
# no-break): '12 333,35' in French or Swiss exports. A space is never a decimal mark,
# so such a number is read without its spaces; only a well-formed grouping counts.
SPACE_GROUPED = re.compile(r"-?\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?:[.,]\d+)?")


def _without_space_groups(values: np.ndarray) -> tuple[np.ndarray, int | None]:
    """The values with such spaces removed, and the position of the first value that
    had them (None if none did)."""
    texts = pd.Series(values, dtype=object)
    spaced = texts.str.contains("[ \u00a0\u202f]", regex=True, na=False)
    if not spaced.any():
        return values, None
    grouped = (spaced & texts.str.fullmatch(SPACE_GROUPED, na=False)).to_numpy()
    if not grouped.any():
        return values, None
    texts[grouped] = texts[grouped].str.replace("[ \u00a0\u202f]", "", regex=True)
    return texts.to_numpy(dtype=object), int(np.argmax(grouped))


def _shapes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct shapes of the values (every digit written as 9) and, for each value,
    the index of its shape. The values become a matrix of code points; as many columns
    as fit are packed into one integer key per row, and the keys of successive packs
    are numbered together, so no Python loop runs per value."""
    chars = values.astype(str)
    width = chars.dtype.itemsize // 4
    grid = chars.view(np.uint32).reshape(len(chars), width).astype(np.int64)
    grid[(grid >= ord("0")) & (grid <= ord("9"))] = ord("9")

    bits = max(int(grid.max()).bit_length(), 1)
    per_pack = 63 // bits
    inverse = np.zeros(len(grid), dtype=np.int64)
    for start in range(0, width, per_pack):
        key = np.zeros(len(grid), dtype=np.int64)
        for column in grid.T[start:start + per_pack]:
            key = (key << bits) | column
        pack_codes, pack_keys = pd.factorize(key)
        inverse, _ = pd.factorize(inverse * len(pack_keys) + pack_codes)
    _, first = np.unique(inverse, return_index=True)
    shapes = grid[first].astype(np.uint32).view(chars.dtype).ravel()

    return shapes, inverse


def _choose_style(rows, shapes, inverse, fits, separator, label, notes) -> NumberStyle:
    """The convention every readable value fits. When both fit and some value has a
    mark ('1,664'), only a comma-separated file settles it: there a ',' inside a number
    comes quoted, which is how spreadsheets export thousands separators."""
    readable = fits[POINT_DECIMAL] | fits[COMMA_DECIMAL]
    possible = [style for style in NUMBER_STYLES if fits[style][readable].all()]
    marked = readable & np.array([("." in s) or ("," in s) for s in shapes], dtype=bool)

    if not possible:
        raise _mixed_styles(rows, inverse, fits, label)
    if len(possible) == 1:
        style = possible[0]
    elif not marked.any() or separator == ",":
        style = POINT_DECIMAL
    else:
        raise _ambiguous_numbers(rows, inverse, marked, label)

    grouped = readable & np.array([style.thousands in s for s in shapes], dtype=bool)
    if style.decimal != "." or grouped.any():
        where = np.flatnonzero((grouped if grouped.any() else marked)[inverse])[0]
        value = rows["sales_text"].iloc[where]
        shown = rows.get("shown_text", rows["sales_text"]).iloc[where]
        thousands = (f" and {style.thousands!r} as thousands separator"
                     if grouped.any() else "")
        notes.append(
            f"numbers read with {style.decimal!r} as decimal mark{thousands} (line "
            f"{rows['line'].iloc[where]}: {shown!r} = {_convert(value, style):.15g})"
        )
    return style


def _convert(value: str, style: NumberStyle) -> float:
    return float(value.replace(style.thousands, "").replace(style.decimal, "."))


def _ambiguous_numbers(rows, inverse, marked, label) -> DataError:
    where = np.flatnonzero(marked[inverse])[0]
    value, line = rows["sales_text"].iloc[where], rows["line"].iloc[where]
    mark = "," if "," in value else "."
    as_thousands = _convert(value, COMMA_DECIMAL if mark == "." else POINT_DECIMAL)
    as_decimal = _convert(value, POINT_DECIMAL if mark == "." else COMMA_DECIMAL)

    return DataError(
        f"{label}: the sales numbers are ambiguous: every value with a mark looks "
        f"like {value!r} (line {line}), which is {as_thousands:.15g} if {mark!r} "
        f"separates thousands but {as_decimal:.15g} if {mark!r} is the decimal mark, "
        "and no value in the file tells which. Export the sales without thousands "
        "separators, or with decimals on every value (1664,81 or 1664.81), and load "
        "again."
    )


def _mixed_styles(rows, inverse, fits, label) -> DataError:
    only_point = np.flatnonzero((fits[POINT_DECIMAL] & ~fits[COMMA_DECIMAL])[inverse])
    only_comma = np.flatnonzero((fits[COMMA_DECIMAL] & ~fits[POINT_DECIMAL])[inverse])
    point, comma = rows.iloc[only_point[0]], rows.iloc[only_comma[0]]

    return DataError(
        f"{label}: the sales numbers mix two conventions: line {point['line']} has "
        f"{point['sales_text']!r}, readable only with '.' as decimal mark, and line "
        f"{comma['line']} has {comma['sales_text']!r}, readable only with ',' as "
        "decimal mark. Export every number with the same convention and load again."
    )


# Series checks. Each takes the rows of the series still in, records in `rejected`
# (series name -> reason) why it leaves a series out, and returns the rows left. ----

def _reject_bad_rows(rows: pd.DataFrame, rejected: dict, this_month) -> pd.DataFrame:
    """A series with any bad line is out, reported by its first bad line."""
    bad = rows[rows["problem"] > 0]
    if bad.empty:
        return rows

    counts = bad.groupby("series", sort=False).size()
    for row in bad.drop_duplicates("series").itertuples():
        kind = PROBLEM_KINDS[row.problem - 1]
        value = row.sales_text if kind in SALES_PROBLEMS else row.date_text
        reason = ROW_PROBLEMS[kind].format(
            line=row.line, value=Clipped(value), today=_ym(this_month),
            formats=", ".join(DATE_FORMATS.values()),
        )
        more = counts[row.series] - 1
        rejected[row.series] = reason + (f" ({more} more bad line(s) in this series.)"
                                         if more else "")

    return rows[~rows["series"].isin(rejected)]


def _drop_current_month(rows: pd.DataFrame, notes: list, this_month) -> pd.DataFrame:
    """Lines of the month that is not over yet are left out, and said so: its sales
    so far would read as a sudden fall in every series that has it."""
    current = (rows["month"] == this_month).to_numpy()
    if not current.any():
        return rows
    lines = rows["line"].to_numpy()[current]
    listed = _some([str(n) for n in lines[:LISTED]], total=len(lines))
    notes.append(
        f"left out {len(lines)} line(s) of {_ym(this_month)}, the current month, "
        f"which is not over (line(s) {listed}): a part of a month would read as a "
        "fall in sales. Load the file again once the month has ended."
    )
    return rows[~current]


def _sort(rows: pd.DataFrame) -> pd.DataFrame:
    """By series name, month, day and line, so that lines of one month sit side by
    side. `code` numbers the series in name order."""
    code, _ = pd.factorize(rows["series"], sort=True)
    order = np.lexsort((rows["line"].to_numpy(), rows["day"].to_numpy(),
                        rows["month"].to_numpy(), code))

    return rows.assign(code=code).iloc[order].reset_index(drop=True)


def _pairs(rows: pd.DataFrame, same: list[str]) -> np.ndarray:
    """For each row: does the row before it have the same series and `same` columns?"""
    match = np.zeros(len(rows), dtype=bool)
    if len(rows) > 1:
        code = rows["code"].to_numpy()
        match[1:] = code[1:] == code[:-1]
        for column in same:
            values = rows[column].to_numpy()
            match[1:] &= values[1:] == values[:-1]
    return match


def _first_per_series(rows: pd.DataFrame, indices: np.ndarray) -> list[int]:
    _, first = np.unique(rows["code"].to_numpy()[indices], return_index=True)
    return indices[first].tolist()


def _without_rejected(rows: pd.DataFrame, rejected: dict) -> pd.DataFrame:
    return rows[~rows["series"].isin(rejected)].reset_index(drop=True)


def _reject_sub_monthly(rows: pd.DataFrame, rejected: dict) -> pd.DataFrame:
    """Two different dates in one month mean daily or weekly data, which a monthly
    model would read as a month repeated."""
    other_day = _pairs(rows, ["month"]) & ~_pairs(rows, ["day"])
    found = np.flatnonzero(other_day)
    if not len(found):
        return rows

    per_month = rows.groupby(["series", "month"], sort=False).size()
    for index in _first_per_series(rows, found):
        before, row = rows.iloc[index - 1], rows.iloc[index]
        busiest = int(per_month[row["series"]].max())
        rejected[row["series"]] = (
            f"lines {before['line']} ({before['date_text']!r}) and {row['line']} "
            f"({row['date_text']!r}) are different dates in the same month "
            f"{_ym(row['month'])} (up to {busiest} lines in one month): the data looks "
            "daily or weekly, but each month must appear once. Aggregate it to one "
            "total per month first (e.g. sum by month) and load again."
        )

    return _without_rejected(rows, rejected)


def _drop_duplicates(rows: pd.DataFrame, rejected: dict, notes: list) -> pd.DataFrame:
    """A line repeating a month with the same sales is dropped and noted, never summed;
    the same month with different sales is a conflict only the user can settle."""
    same_day = _pairs(rows, ["day"])
    repeated = same_day & _pairs(rows, ["sales"])
    for index in _first_per_series(rows, np.flatnonzero(same_day & ~repeated)):
        before, row = rows.iloc[index - 1], rows.iloc[index]
        rejected[row["series"]] = (
            f"month {_ym(row['month'])} appears twice with different sales: line "
            f"{before['line']} has {before['sales_text']!r} and line {row['line']} has "
            f"{row['sales_text']!r}. Rows are never summed or averaged; keep the right "
            "line, delete the other and load again."
        )

    kept = ~rows["series"].isin(rejected).to_numpy()
    _note_repeats(rows, np.flatnonzero(repeated & kept), notes)
    return rows[~repeated & kept].reset_index(drop=True)


def _note_repeats(rows: pd.DataFrame, repeats: np.ndarray, notes: list) -> None:
    if not len(repeats):
        return

    lines = rows["line"].to_numpy()
    several = rows["series"].nunique() > 1
    described = [
        f"line {lines[i]} (same as line {lines[i - 1]}, {_ym(rows['month'].iloc[i])}"
        + (f", series {rows['series'].iloc[i]!r})" if several else ")")
        for i in repeats[:LISTED]
    ]
    notes.append(
        f"dropped {len(repeats)} line(s) repeating an earlier line exactly (same month "
        f"and sales; not summed): {_some(described, total=len(repeats))}"
    )


def _close_gaps(rows, rejected, notes, fill_gaps) -> pd.DataFrame:
    """Missing months inside a series are refused, or filled by linear interpolation
    between the neighbouring months when the caller chose so."""
    number = _month_numbers(rows["month"])
    step = np.diff(number, prepend=number[:1])
    gap = _pairs(rows, []) & (step > 1)
    if not gap.any():
        return rows
    coarse = _coarse_series(rows, step)
    if coarse:
        rejected.update(coarse)
        return _close_gaps(_without_rejected(rows, rejected), rejected, notes,
                           fill_gaps)
    if fill_gaps == "interpolate":
        return _interpolate(rows, notes)

    holes = rows[gap].assign(step=step[gap], number=number[gap])
    spans = rows.groupby("code", sort=False)["month"].agg(["first", "last"])
    for code, series_holes in holes.groupby("code", sort=False):
        name = series_holes["series"].iloc[0]
        rejected[name] = _gap_reason(series_holes, spans.loc[code])

    return _without_rejected(rows, rejected)


# Names of the regular spacings a series of totals is commonly exported at.
CADENCES = {3: "quarterly", 6: "half-yearly", 12: "yearly"}


# Lines the same number of months apart, three or more in a row, are a stretch of
# totals of a coarser period (four quarters), not a few lost months.
COARSE_RUN = 3


def _coarse_series(rows: pd.DataFrame, step: np.ndarray) -> dict:
    """{name: why} for each series with a stretch of lines that lie the same number
    of months apart (two or more; `COARSE_RUN` such steps in a row), or whose lines
    all do. Such lines hold the totals of a coarser period, not months with holes:
    filling between them would invent most of those months and read each quarter's
    total as one month's sales, so they are refused even when gaps may be filled.
    `step`: months since the row before, as `_close_gaps` computes it."""
    paired = _pairs(rows, [])
    reasons = {}
    for rows_of_series in rows.groupby("code", sort=False).indices.values():
        steps = np.where(paired[rows_of_series], step[rows_of_series], 0)[1:]
        if not (steps > 1).any():
            continue
        months = rows["month"].to_numpy()[rows_of_series]
        name = rows["series"].iloc[rows_of_series[0]]
        if len(steps) >= 2 and (steps == steps[0]).all():
            start, length = 0, len(steps)
        else:
            start, length = _longest_equal_run(steps)
            if length < COARSE_RUN:
                continue
        apart = int(steps[start])
        kind = CADENCES.get(apart, f"{apart}-monthly")
        shown = ", ".join(_ym(m) for m in months[start:start + 3])
        where = (f"its {len(months)} lines are all" if length == len(steps) else
                 f"from {_ym(months[start])} to {_ym(months[start + length])} its "
                 f"{length + 1} lines are")
        reasons[name] = (
            f"{where} {apart} months apart ({shown}, ...): this looks like {kind} "
            "data, but the model learns from monthly sales, one line per month. "
            "Export the sales per month; filling the months in between would invent "
            "them and read each period's total as one month's sales."
        )
    return reasons


def _longest_equal_run(steps: np.ndarray) -> tuple[int, int]:
    """(start, length) of the longest run of equal steps above 1."""
    best, start = (0, 0), 0
    for i in range(1, len(steps) + 1):
        if i == len(steps) or steps[i] != steps[start]:
            if steps[start] > 1 and i - start > best[1]:
                best = (start, i - start)
            start = i
    return best


def _gap_reason(holes: pd.DataFrame, span: pd.Series) -> str:
    """`holes`: the rows right after each run of missing months of one series."""
    count = int((holes["step"] - 1).sum())
    missing: list[int] = []
    for number, step in zip(holes["number"], holes["step"]):
        missing.extend(range(number - step + 1, number))
        if len(missing) >= LISTED:
            break

    return (
        f"{count} month(s) missing between {_ym(span['first'])} and "
        f"{_ym(span['last'])}: {_some([_ym(m) for m in missing], total=count)}. Every "
        "month is needed: treating the rest as contiguous would shift the seasons. Add "
        "the missing lines, or load with fill_gaps='interpolate' (--fill-gaps "
        "interpolate) to fill each missing month linearly between its neighbours; "
        "filled months are noted."
    )


def _interpolate(rows: pd.DataFrame, notes: list) -> pd.DataFrame:
    """Lay every series out on its full run of months, then fill the holes. Each hole
    lies between two known months of its own series, so one linear interpolation over
    the whole column never mixes two series."""
    code, number = rows["code"].to_numpy(), _month_numbers(rows["month"])
    starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
    ends = np.r_[starts[1:], len(code)] - 1
    first, length = number[starts], number[ends] - number[starts] + 1

    offset = np.r_[0, np.cumsum(length)[:-1]]
    series_of_row = np.repeat(np.arange(len(starts)), ends - starts + 1)
    sales = np.full(length.sum(), np.nan)
    at = offset[series_of_row] + number - first[series_of_row]
    sales[at] = rows["sales"].to_numpy()
    filled = np.isnan(sales)

    grid_number = np.repeat(first - offset, length) + np.arange(length.sum())
    grid = pd.DataFrame({
        "series": np.repeat(rows["series"].to_numpy()[starts], length),
        "month": grid_number.astype("datetime64[M]"),
        "sales": pd.Series(sales).interpolate(method="linear").to_numpy(),
    })
    _note_filled(grid, filled, notes)
    return grid


def _note_filled(grid: pd.DataFrame, filled: np.ndarray, notes: list) -> None:
    for name, months in grid[filled].groupby("series", sort=True):
        values = ", ".join(f"{_ym(m)} = {v:.10g}"
                           for m, v in zip(months["month"], months["sales"]))
        notes.append(
            f"series {name!r}: filled {len(months)} missing month(s) by linear "
            f"interpolation between neighbours (fill_gaps='interpolate'): {values}"
        )


# A series that starts with at least this many months of 0 was not on sale yet.
PRE_LAUNCH_MONTHS = 3


def _drop_leading_zeros(rows: pd.DataFrame, notes: list) -> pd.DataFrame:
    """Months of 0 before a series' first sale are left out, and said so, when there
    are at least PRE_LAUNCH_MONTHS of them: a product not on sale yet has no demand
    to learn from, and counted as history they would make a launch look like
    intermittent demand and a jump from nothing. A month or two of 0 at the start
    stay (a slow start is history). A series of zeros only is kept whole (the
    models for intermittent series take it)."""
    sold = pd.Series(rows["sales"].to_numpy() > 0, index=rows.index)
    by_series = sold.groupby(rows["series"], sort=False)
    before = ~by_series.cummax() & by_series.transform("any")
    run = before.groupby(rows["series"], sort=False).transform("sum")
    drop = (before & (run >= PRE_LAUNCH_MONTHS)).to_numpy()
    if not drop.any():
        return rows
    for name, months in rows[drop].groupby("series", sort=False)["month"]:
        first_sale = _ym(months.iloc[-1] + pd.DateOffset(months=1))
        notes.append(f"series {name!r}: {len(months)} month(s) of 0 before its first "
                     f"sale ({first_sale}) left out; months before a product was on "
                     "sale say nothing about its demand")
    return rows[~drop]


def _note_trailing_zeros(rows: pd.DataFrame, notes: list) -> None:
    """Say so when a series ends in a run of at least PRE_LAUNCH_MONTHS months of 0
    longer than any run of 0 before it: a product taken off sale looks like that,
    and its forecast (which still follows the years it sold) should not be used.
    The months stay: they may as well be a pause, and the history is the seller's."""
    for name, sales in rows.groupby("series", sort=False)["sales"]:
        sold = sales.to_numpy() > 0
        if not sold.any():
            continue
        last_sale = len(sold) - 1 - int(np.argmax(sold[::-1]))
        trailing = len(sold) - 1 - last_sale
        if trailing < PRE_LAUNCH_MONTHS:
            continue
        longest = max((len(list(run)) for was_sold, run
                       in itertools.groupby(sold[:last_sale]) if not was_sold),
                      default=0)
        if trailing > longest:
            since = _ym(rows.loc[sales.index[last_sale + 1], "month"])
            notes.append(f"series {name!r}: its last {trailing} months are 0 (since "
                         f"{since}), a longer run than any before; if it is no longer "
                         "sold, its forecast, which follows the months it sold, "
                         "should not be used")


def _reject_short(rows: pd.DataFrame, rejected: dict, min_months: int) -> pd.DataFrame:
    spans = rows.groupby("series", sort=False)["month"].agg(["size", "first", "last"])
    # Training asks for 6 months and serves a shorter series a simpler model; a
    # caller asking for two years or more wants a season learned.
    purpose = "to learn a yearly season" if min_months >= 24 else "to train on"
    for name, span in spans[spans["size"] < min_months].iterrows():
        rejected[name] = (
            f"only {span['size']} month(s) of history ({_ym(span['first'])} to "
            f"{_ym(span['last'])}), but at least {min_months} are needed {purpose} "
            f"(min_months={min_months}). Load a longer history."
        )

    return _without_rejected(rows, rejected)


# Result -----------------------------------------------------------------------------

def _refuse_if_needed(rows, rejected, label, has_series, strict, notes) -> None:
    """Raise when no series is left, or when strict and any series was left out."""
    if not rejected or (len(rows) and not strict):
        return

    also = f" Also noted: {'; '.join(notes)}." if notes else ""
    if not has_series:
        raise DataError(f"{label}: {next(iter(rejected.values()))}{also}")
    if len(rows):
        name, reason = next(iter(rejected.items()))
        raise DataError(
            f"{label}: series {Clipped(name)!r}: {reason} Strict mode refuses the "
            "whole file for one bad series; without it the other series would load."
        )

    listed = [f"Series {Clipped(n)!r}: {r}"
              for n, r in list(rejected.items())[:LISTED]]
    more = (f" And {len(rejected) - LISTED} more series with problems."
            if len(rejected) > LISTED else "")
    raise DataError(f"{label}: no series could be loaded. {' '.join(listed)}{more}")


def _frame(rows: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "series": pd.Series(rows["series"].to_numpy(), dtype=str),
        "date": rows["month"].to_numpy().astype("datetime64[ns]"),
        "sales": rows["sales"].to_numpy(dtype="float64"),
    })


def _some(items: list, total: int | None = None) -> str:
    """'a, b, c' or 'a, b, c, d, e and 7 more' for long lists."""
    total = len(items) if total is None else total
    shown = ", ".join(str(item) for item in items[:LISTED])
    return shown + (f" and {total - LISTED} more" if total > LISTED else "")
