"""training.data: every messy CSV is read to exactly the right numbers or refused with a
message naming the file, the line or value, what is wrong and what to do."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.data import (
    DATE_FORMATS,
    FILL_GAPS,
    LISTED,
    Columns,
    DataError,
    load_sales,
)

DATA = Path(__file__).parent / "data"

# 40 months of the real wine series with cents added, so decimals are exercised.
MONTHS = pd.date_range("1980-01-01", periods=40, freq="MS")
WHOLE = pd.read_csv(DATA / "wineind.csv")["sales"].iloc[:40].tolist()
CENTS = [f"{n}.81" for n in WHOLE]  # the canonical spelling of each value


def expected(values, name="shop", months=MONTHS) -> pd.DataFrame:
    return pd.DataFrame({
        "series": pd.Series([name] * len(values), dtype=str),
        "date": pd.DatetimeIndex(months).astype("datetime64[ns]"),
        "sales": np.array([float(v) for v in values], dtype="float64"),
    })


def csv_bytes(values, sep=",", dates=None, header="date{sep}sales",
              newline="\n") -> bytes:
    dates = [f"{m:%Y-%m-%d}" for m in MONTHS] if dates is None else dates
    lines = [header.format(sep=sep)] + [f"{d}{sep}{v}" for d, v in zip(dates, values)]
    return (newline.join(lines) + newline).encode()


def write(tmp_path: Path, content: bytes, name="shop.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def refuse(source, *parts, **options) -> DataError:
    """Load must fail with one paragraph containing `parts` in this order."""
    pattern = ".*".join(re.escape(part) for part in parts)
    with pytest.raises(DataError, match=pattern) as caught:
        load_sales(source, **options)
    assert "\n" not in str(caught.value)
    return caught.value


@pytest.fixture(scope="module")
def wineind() -> pd.DataFrame:
    """The clean reference series, read without the loader."""
    raw = pd.read_csv(DATA / "wineind.csv")
    return expected(raw["sales"], name="wineind", months=pd.to_datetime(raw["date"]))


# Reference files ---------------------------------------------------------------------

def test_clean_wineind_loads_all_176_months_exactly(wineind):
    loaded = load_sales(DATA / "wineind.csv")

    pd.testing.assert_frame_equal(loaded.frame, wineind)
    assert (loaded.notes, loaded.rejected) == ([], {})
    assert loaded.source == str(DATA / "wineind.csv")


@pytest.mark.parametrize(
    "name, notes",
    [
        ("wineind_dates_yyyy_slash_mm.csv", []),
        ("wineind_index_col_thousands.csv", [
            "dropped column 1, an unnamed row index counting 0 to 175 (as pandas' "
            "to_csv writes it)",
            "numbers read with '.' as decimal mark and ',' as thousands separator "
            "(line 2: '15,136' = 15136)",
        ]),
    ],
    ids=["year/month dates", "index column and quoted thousands"],
)
def test_awkward_exports_recover_wineind_exactly(wineind, name, notes):
    loaded = load_sales(DATA / name, series_name="wineind")

    pd.testing.assert_frame_equal(loaded.frame, wineind)
    assert loaded.notes == notes


def test_gaps_are_refused_by_default_listing_months_and_the_fix():
    refuse(
        DATA / "wineind_gaps_and_duplicate.csv",
        "wineind_gaps_and_duplicate.csv: 3 month(s) missing between 1980-01 and "
        "1994-08: 1985-03, 1990-07, 1990-08.",
        "contiguous would shift the seasons",
        "fill_gaps='interpolate' (--fill-gaps interpolate)",
        "line 148 (same as line 147, 1992-05)",
    )


def test_gaps_are_filled_linearly_only_when_asked_and_each_is_noted(wineind):
    loaded = load_sales(DATA / "wineind_gaps_and_duplicate.csv", series_name="wineind",
                        fill_gaps="interpolate")

    frame = loaded.frame.set_index("date")["sales"]
    filled = {"1985-03-01": (21845 + 22394) / 2,
              "1990-07-01": 22316 + (25421 - 22316) / 3,
              "1990-08-01": 22316 + (25421 - 22316) * 2 / 3}
    for month, value in filled.items():
        assert frame[month] == pytest.approx(value, rel=1e-12)
    known = wineind.set_index("date")["sales"].drop(pd.to_datetime(list(filled)))
    pd.testing.assert_series_equal(frame.drop(pd.to_datetime(list(filled))), known)
    assert len(loaded.frame) == 176
    assert loaded.notes == [
        "dropped 1 line(s) repeating an earlier line exactly (same month and sales; "
        "not summed): line 148 (same as line 147, 1992-05)",
        "series 'wineind': filled 3 missing month(s) by linear interpolation between "
        "neighbours (fill_gaps='interpolate'): 1985-03 = 22119.5, 1990-07 = 23351, "
        "1990-08 = 24386",
    ]


def test_txhousing_loads_26_areas_of_187_months():
    loaded = load_sales(DATA / "txhousing_sales.csv")

    raw = pd.read_csv(DATA / "txhousing_sales.csv").sort_values(["series", "date"])
    assert loaded.frame["series"].nunique() == 26
    assert (loaded.frame.groupby("series").size() == 187).all()
    np.testing.assert_array_equal(loaded.frame["sales"], raw["sales"].astype(float))
    np.testing.assert_array_equal(loaded.frame["series"], raw["series"])
    assert loaded.rejected == {}


# Separators and number conventions ---------------------------------------------------

def german(text: str) -> str:
    """'15136.81' -> '15.136,81'."""
    whole, cents = text.split(".")
    return f"{int(whole):,}".replace(",", ".") + "," + cents


@pytest.mark.parametrize(
    "sep, spell",
    [
        (",", str),
        (";", str),
        ("\t", str),
        (";", lambda v: v.replace(".", ",")),
        (";", german),
        ("\t", german),
        (",", lambda v: f'"{int(v[:-3]):,}{v[-3:]}"'),
        (",", lambda v: f'"{v.replace(".", ",")}"'),
    ],
    ids=["comma", "semicolon", "tab", "semicolon, decimal comma",
         "semicolon, 1.664,81", "tab, 1.664,81", "comma, quoted 1,664.81",
         "comma, quoted decimal comma"],
)
def test_separator_and_number_convention_are_detected(tmp_path, sep, spell):
    path = write(tmp_path, csv_bytes([spell(v) for v in CENTS], sep=sep))

    loaded = load_sales(path)

    pd.testing.assert_frame_equal(loaded.frame, expected(CENTS))


def test_quoted_thousands_in_a_comma_file_are_thousands(tmp_path):
    path = write(tmp_path, csv_bytes([f'"{n:,}"' for n in WHOLE]))

    loaded = load_sales(path)

    pd.testing.assert_frame_equal(loaded.frame, expected(WHOLE))
    assert loaded.notes == [
        "numbers read with '.' as decimal mark and ',' as thousands separator (line 2: "
        "'15,136' = 15136)"
    ]


@pytest.mark.parametrize("space", [" ", "\u00a0", "\u202f"],
                         ids=["space", "no-break space", "narrow no-break space"])
def test_spaces_between_digit_groups_are_thousands_separators(tmp_path, space):
    """As French and Swiss spreadsheets export them: 15 136,81."""
    spelled = [german(v).replace(".", space) for v in CENTS]
    path = write(tmp_path, csv_bytes(spelled, sep=";"))

    loaded = load_sales(path)

    pd.testing.assert_frame_equal(loaded.frame, expected(CENTS))
    assert loaded.notes == [
        f"spaces between digit groups read as thousands separators (line 2: "
        f"{spelled[0]!r})",
        # No '.' in the file, so none is said to be its thousands separator.
        f"numbers read with ',' as decimal mark (line 2: {spelled[0]!r} = 15136.81)"]


def test_decimal_comma_is_noted(tmp_path):
    path = write(tmp_path, csv_bytes([german(v) for v in CENTS], sep=";"))

    assert load_sales(path).notes == [
        "numbers read with ',' as decimal mark and '.' as thousands separator "
        "(line 2: '15.136,81' = 15136.81)"
    ]


@pytest.mark.parametrize(
    "sep, spelled, as_thousands, as_decimal",
    [(";", "15,136", "15136", "15.136"), (";", "15.136", "15136", "15.136"),
     ("\t", "15,136", "15136", "15.136")],
    ids=["semicolon 1,664", "semicolon 1.664", "tab 1,664"],
)
def test_truly_ambiguous_numbers_are_refused(tmp_path, sep, spelled, as_thousands,
                                             as_decimal):
    mark = spelled[2]
    values = [f"{n:,}".replace(",", mark) for n in WHOLE]
    path = write(tmp_path, csv_bytes(values, sep=sep))

    refuse(path, f"shop.csv: the sales numbers are ambiguous", f"{spelled!r} (line 2)",
           f"{as_thousands} if {mark!r} separates thousands",
           f"{as_decimal} if {mark!r} is the decimal mark",
           "without thousands separators, or with decimals on every value")


def test_one_unambiguous_value_settles_the_convention_for_the_file(tmp_path):
    values = [f"{n:,}".replace(",", ".") for n in WHOLE]
    values[-1] = "1.664,5"  # only readable with a decimal comma
    path = write(tmp_path, csv_bytes(values, sep=";"))

    loaded = load_sales(path)

    assert loaded.frame["sales"].tolist() == [float(n) for n in WHOLE[:-1]] + [1664.5]


def test_mixed_number_conventions_are_refused(tmp_path):
    values = ['"1,664.5"'] * 20 + ['"1.664,5"'] * 20
    path = write(tmp_path, csv_bytes(values))

    refuse(path, "shop.csv: the sales numbers mix two conventions",
           "line 2 has '1,664.5'", "line 22 has '1.664,5'", "same convention")


# Bytes, encodings and line endings ---------------------------------------------------

@pytest.mark.parametrize(
    "prefix, newline",
    [(b"\xef\xbb\xbf", "\n"), (b"", "\r\n"), (b"\xef\xbb\xbf", "\r\n"), (b"", "\r")],
    ids=["BOM", "Windows CRLF", "BOM and CRLF", "old Mac CR"],
)
def test_byte_order_mark_and_line_endings_read_exactly(tmp_path, prefix, newline):
    path = write(tmp_path, prefix + csv_bytes(CENTS, newline=newline))

    loaded = load_sales(path)

    pd.testing.assert_frame_equal(loaded.frame, expected(CENTS))


def test_line_numbers_count_physical_lines_with_windows_endings(tmp_path):
    values = list(CENTS)
    values[4] = "n/a"
    path = write(tmp_path, b"\xef\xbb\xbf" + csv_bytes(values, newline="\r\n"))

    refuse(path, "shop.csv: line 6: sales value 'n/a' marks a missing")


def latin1_file(tmp_path) -> Path:
    lines = ["date,sales,series"] + [f"{m:%Y-%m},{v},Montréal"
                                     for m, v in zip(MONTHS, CENTS)]
    return write(tmp_path, ("\n".join(lines) + "\n").encode("latin-1"))


def test_non_utf8_bytes_are_refused_with_line_offset_and_fix(tmp_path):
    refuse(latin1_file(tmp_path), "shop.csv: line 2 is not valid utf-8 text",
           "byte 0xe9 at byte offset 40", "Re-save the file as UTF-8",
           "encoding='cp1252' or 'latin-1' (--encoding)")


def test_the_encoding_argument_reads_other_encodings(tmp_path):
    loaded = load_sales(latin1_file(tmp_path), encoding="latin-1")

    pd.testing.assert_frame_equal(loaded.frame, expected(CENTS, name="Montréal"))


def test_utf16_reads_with_its_encoding_and_is_refused_without(tmp_path):
    path = write(tmp_path, csv_bytes(CENTS).decode().encode("utf-16"))

    refuse(path, "shop.csv is not a CSV text file: it starts like UTF-16 text. Load "
           "it with encoding='utf-16' (--encoding utf-16)")
    pd.testing.assert_frame_equal(load_sales(path, encoding="utf-16").frame,
                                  expected(CENTS))


@pytest.mark.parametrize(
    "content, found",
    [
        (b"date,sales\n1980-01,15\x0036\n", "it contains a NUL byte at line 2 (byte "
                                            "offset 21)"),
        (b"PK\x03\x04\x14\x00\x06\x00", "it starts like a ZIP archive (an Excel .xlsx "
                                        "workbook is one)"),
        (b"date,sales\n1980-01,1\n1980-02,2\x1a\n", "line 3 contains the control "
                                                   "character U+001A"),
    ],
    ids=["NUL byte", "xlsx workbook", "control character"],
)
def test_binary_junk_is_not_a_csv_text_file(tmp_path, content, found):
    refuse(write(tmp_path, content), "shop.csv is not a CSV text file", found,
           "Export the data from its program as CSV text")


def test_bytes_input_is_named_by_source_name(wineind):
    content = (DATA / "wineind.csv").read_bytes()

    loaded = load_sales(content, source_name="upload.csv", series_name="wineind")

    pd.testing.assert_frame_equal(loaded.frame, wineind)
    assert loaded.source == "upload.csv"
    assert load_sales(content).frame["series"].iloc[0] == "sales"
    refuse(content[:11], "uploaded data has a header but no data lines")


# Dates -------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", DATE_FORMATS, ids=DATE_FORMATS.values())
def test_every_accepted_date_format_reads_to_the_first_of_the_month(tmp_path, fmt):
    path = write(tmp_path, csv_bytes(CENTS, dates=[f"{m:{fmt}}" for m in MONTHS]))

    pd.testing.assert_frame_equal(load_sales(path).frame, expected(CENTS))


@pytest.mark.parametrize(
    "day", [lambda m: m + pd.offsets.MonthEnd(0), lambda m: m.replace(day=15)],
    ids=["month ends", "mid-month"],
)
def test_any_single_day_of_a_month_stands_for_the_month(tmp_path, day):
    dates = [f"{day(m):%Y-%m-%d}" for m in MONTHS]

    loaded = load_sales(write(tmp_path, csv_bytes(CENTS, dates=dates)))

    pd.testing.assert_frame_equal(loaded.frame, expected(CENTS))


@pytest.mark.parametrize("bad", ["1980-13-01", "13/01/1980", "Jan-80", "Sept-1980",
                                 "sometime"])
def test_unreadable_dates_are_refused_naming_line_and_value(tmp_path, bad):
    dates = [f"{m:%Y-%m}" for m in MONTHS]
    dates[7] = bad

    refuse(write(tmp_path, csv_bytes(CENTS, dates=dates)),
           f"shop.csv: line 9: date {bad!r} is not a date in an accepted format",
           ", ".join(DATE_FORMATS.values()), "export the dates as YYYY-MM-DD")


@pytest.mark.parametrize("step, rows", [("D", 120), ("W-MON", 60)],
                         ids=["daily", "weekly"])
def test_several_days_in_a_month_are_refused_as_daily_or_weekly(tmp_path, step, rows):
    days = pd.date_range("1980-01-01", periods=rows, freq=step)
    dates = [f"{d:%Y-%m-%d}" for d in days]

    refuse(write(tmp_path, csv_bytes(["5"] * rows, dates=dates)),
           f"shop.csv: lines 2 ({dates[0]!r}) and 3 ({dates[1]!r}) are different dates "
           "in the same month 1980-01", "looks daily or weekly",
           "Aggregate it to one total per month")


def test_months_after_the_current_one_are_refused(tmp_path):
    months = pd.date_range("2024-01-01", periods=40, freq="MS")  # to 2027-04
    dates = [f"{m:%Y-%m}" for m in months]

    refuse(write(tmp_path, csv_bytes(CENTS, dates=dates)),
           "shop.csv: line 38: date '2027-01' is after the current month (2026-12)",
           "cannot contain the future", "(3 more bad line(s) in this series.)",
           today="2026-12-15")
    assert len(load_sales(write(tmp_path, csv_bytes(CENTS, dates=dates)),
                          today="2027-05-01").frame) == 40


def test_the_current_month_is_left_out_and_said_so(tmp_path):
    months = pd.date_range("2024-01-01", periods=40, freq="MS")  # to 2027-04
    dates = [f"{m:%Y-%m}" for m in months]

    loaded = load_sales(write(tmp_path, csv_bytes(CENTS, dates=dates)),
                        today="2027-04-30")

    assert len(loaded.frame) == 39
    assert loaded.frame["date"].max() == pd.Timestamp("2027-03-01")
    assert loaded.notes == [
        "left out 1 line(s) of 2027-04, the current month, which is not over "
        "(line(s) 41): a part of a month would read as a fall in sales. Load the file "
        "again once the month has ended."]


def test_a_year_before_1800_is_refused_as_a_typo(tmp_path):
    dates = [f"{m:%Y-%m}" for m in MONTHS]
    dates[0] = "0980-01"

    refuse(write(tmp_path, csv_bytes(CENTS, dates=dates)),
           "line 2: date '0980-01' is before 1800", "Correct the year")


# Columns -----------------------------------------------------------------------------

def test_missing_column_lists_the_columns_and_the_options(tmp_path):
    path = write(tmp_path, csv_bytes(CENTS, header="Date{sep}Sales"))

    refuse(path, "shop.csv: no column named 'date' in the header (line 1)",
           "the columns found are 'Date', 'Sales'", "Did you mean 'Date'?",
           "--date-col, --sales-col and --series-col")


def test_other_column_names_and_unused_columns(tmp_path):
    lines = [" Month ;Units;Store;price"] + [
        f"{m:%Y-%m};{v};Main;1" for m, v in zip(MONTHS, CENTS)]
    path = write(tmp_path, ("\n".join(lines) + "\n").encode())

    columns = Columns(date="Month", sales="Units", series="Store")

    loaded = load_sales(path, columns=columns)

    pd.testing.assert_frame_equal(loaded.frame, expected(CENTS, name="Main"))
    assert loaded.notes == ["ignored unused column(s): 'price'"]


def test_a_named_series_column_must_exist(tmp_path):
    refuse(write(tmp_path, csv_bytes(CENTS)), "no column named 'store'",
           "the columns found are 'date', 'sales'",
           columns=Columns(series="store"))


def test_a_column_named_twice_is_refused(tmp_path):
    path = write(tmp_path, csv_bytes([f"{v},1" for v in CENTS],
                                     header="date{sep}sales{sep}sales"))

    refuse(path, "shop.csv: the header has 2 columns named 'sales' (columns 2, 3)")


# Duplicates --------------------------------------------------------------------------

def test_identical_repeated_lines_are_dropped_and_noted_never_summed(tmp_path):
    dates = [f"{m:%Y-%m}" for m in MONTHS]
    path = write(tmp_path, csv_bytes(CENTS[:10] + CENTS[9:10] + CENTS[10:],
                                     dates=dates[:10] + dates[9:10] + dates[10:]))

    loaded = load_sales(path)

    pd.testing.assert_frame_equal(loaded.frame, expected(CENTS))
    assert loaded.notes == [
        "dropped 1 line(s) repeating an earlier line exactly (same month and sales; "
        "not summed): line 12 (same as line 11, 1980-10)"
    ]


def test_conflicting_values_for_a_month_are_refused_naming_both_lines(tmp_path):
    dates = [f"{m:%Y-%m}" for m in MONTHS]
    path = write(tmp_path, csv_bytes(CENTS[:10] + ["1"] + CENTS[10:],
                                     dates=dates[:10] + dates[9:10] + dates[10:]))

    refuse(path, "shop.csv: month 1980-10 appears twice with different sales: line 11 "
           f"has {CENTS[9]!r} and line 12 has '1'", "never summed or averaged")


# Sales values ------------------------------------------------------------------------

@pytest.mark.parametrize(
    "value, problem",
    [
        ("", "line 9: the sales value is empty. Fill it in, or delete the line"),
        ("-12.5", "line 9: sales value '-12.5' is negative, but sales must be >= 0. "
                  "Net returns"),
        ("twelve", "line 9: sales value 'twelve' is not a number as the loader reads "
                   "them. Write plain numbers"),
        ("+12", "line 9: sales value '+12' is not a number as the loader reads them"),
        ("1e308", "line 9: sales value '1e308' is above 2^53 (about 9.007e15)"),
        ("1e16", "line 9: sales value '1e16' is above 2^53"),
        ('"$1,234"', "line 9: sales value '$1,234' is not a number"),
        ("1 2345", "line 9: sales value '1 2345' is not a number"),
        ("NaN", "line 9: sales value 'NaN' marks a missing or infinite value"),
        ("inf", "line 9: sales value 'inf' marks a missing or infinite value"),
        ("1e999", "line 9: sales value '1e999' is above 2^53"),
        ("9" * 400, "line 9: sales value '" + "9" * 100 + "'... (400 characters) is "
                    "above 2^53"),
    ],
    ids=["empty", "negative", "word", "plus sign", "far too large", "just too large",
         "currency", "space grouping", "NaN", "inf", "overflow", "400 digits"],
)
def test_bad_sales_values_are_refused_naming_line_and_value(tmp_path, value, problem):
    values = list(CENTS)
    values[7] = value

    refuse(write(tmp_path, csv_bytes(values)), f"shop.csv: {problem}")


def test_the_largest_exact_whole_number_is_still_sales(tmp_path):
    values = ["9007199254740992"] + CENTS[1:]

    loaded = load_sales(write(tmp_path, csv_bytes(values)))

    assert loaded.frame["sales"].iloc[0] == 2.0 ** 53


def test_negative_zero_is_zero(tmp_path):
    values = ["-0"] + CENTS[1:]

    loaded = load_sales(write(tmp_path, csv_bytes(values)))

    assert str(loaded.frame["sales"].iloc[0]) == "0.0"


def test_a_history_too_short_for_a_season_is_refused(tmp_path):
    path = write(tmp_path, csv_bytes(CENTS[:20]))

    refuse(path, "shop.csv: only 20 month(s) of history (1980-01 to 1981-08), but at "
           "least 36 are needed to learn a yearly season (min_months=36)")
    assert len(load_sales(path, min_months=12).frame) == 20


def test_a_history_shorter_than_training_takes_is_refused_without_a_season_claim(
        tmp_path):
    # Training takes 6 months and serves 6 to 11 the mean: no season is needed.
    path = write(tmp_path, csv_bytes(CENTS[:5]))

    refuse(path, "shop.csv: only 5 month(s) of history (1980-01 to 1980-05), but at "
           "least 6 are needed to train on (min_months=6)", min_months=6)


# File structure ----------------------------------------------------------------------

@pytest.mark.parametrize(
    "content, parts",
    [
        (b"", ["shop.csv is empty", "header line such as 'date,sales'"]),
        (b" \n\n", ["shop.csv is empty"]),
        (b"date,sales\n", ["shop.csv has a header but no data lines"]),
        (b"date,sales\n\n,\n", ["shop.csv has a header but no data lines"]),
        (b"date sales\n1980-01 5\n", [
            "the header (line 1) 'date sales' has only one column",
            "comma (','), semicolon (';') or tab ('\\t')"]),
        (b"\ndate,sales\n1980-01,5\n", ["line 1 is empty, but it must be the header"]),
        (b"sep=;\ndate;sales\n1980-01;5\n", [
            "line 1 'sep=;' is a spreadsheet's separator hint, not the header"]),
        (csv_bytes(CENTS) + b"1983-05", [
            "shop.csv: line 42 has 1 field(s) but the header has 2 (date, sales): "
            "'1983-05'", "looks cut off"]),
        (csv_bytes(CENTS[:5]) + b"1980-06-01,1,664\n", [
            "shop.csv: line 7 has 3 fields but the header has 2",
            "contains the comma ',' without quotes"]),
        (csv_bytes(CENTS[:5]) + b'1980-06-01,"1664\n1980-07-01,5\n', [
            "shop.csv: the quote opened on line 7 is never closed"]),
        (b"date;sales,x\n1980-01;5,1\n1980-02,5;1\n", [
            "cannot tell the column separator", "comma (',') and semicolon (';')"]),
    ],
    ids=["empty file", "only blank lines", "header only", "header and empty lines",
         "one column", "blank first line", "separator hint", "truncated last line",
         "too many fields", "unclosed quote", "two separators"],
)
def test_broken_structure_is_refused_clearly(tmp_path, content, parts):
    refuse(write(tmp_path, content), *parts)


def test_blank_lines_are_skipped_and_noted(tmp_path):
    content = csv_bytes(CENTS).replace(b"\n1980-03", b"\n\n1980-03") + b"\n"

    loaded = load_sales(write(tmp_path, content))

    pd.testing.assert_frame_equal(loaded.frame, expected(CENTS))
    assert loaded.notes == ["skipped 2 empty line(s): 4, 43"]


def test_a_separator_ending_every_line_is_an_ignored_empty_column(tmp_path):
    content = csv_bytes(CENTS).replace(b"\n", b",\n")

    loaded = load_sales(write(tmp_path, content))

    pd.testing.assert_frame_equal(loaded.frame, expected(CENTS))
    assert loaded.notes == ["ignored unused column(s): unnamed column 3"]


def test_padding_around_values_is_ignored(tmp_path):
    values = [f"  {v} " for v in CENTS]

    loaded = load_sales(write(tmp_path, csv_bytes(values, sep=";")))

    pd.testing.assert_frame_equal(loaded.frame, expected(CENTS))


def test_a_value_spanning_lines_keeps_later_line_numbers_physical(tmp_path):
    lines = ["date,sales,note"] + [f"{m:%Y-%m},{v}," for m, v in zip(MONTHS, CENTS)]
    lines[1] += '"checked\nby hand"'
    lines[8] = lines[8].replace(CENTS[7], "oops")

    refuse(write(tmp_path, ("\n".join(lines) + "\n").encode()),
           "shop.csv: line 10: sales value 'oops' is not a number")


# Several series ----------------------------------------------------------------------

def several(tmp_path, bad: dict[str, tuple[int, str]], names=("Austin", "Dallas")):
    """A file of the named series, where bad[name] = (row, value) spoils one value."""
    lines = ["date,sales,series"]
    for name in names:
        values = list(CENTS)
        if name in bad:
            values[bad[name][0]] = bad[name][1]
        lines += [f"{m:%Y-%m},{v},{name}" for m, v in zip(MONTHS, values)]
    return write(tmp_path, ("\n".join(lines) + "\n").encode())


def test_a_bad_series_is_rejected_and_the_others_load(tmp_path):
    loaded = load_sales(several(tmp_path, {"Dallas": (3, "-1")}))

    pd.testing.assert_frame_equal(loaded.frame, expected(CENTS, name="Austin"))
    assert loaded.rejected == {
        "Dallas": "line 45: sales value '-1' is negative, but sales must be >= 0. Net "
                  "returns against the sales of the same month before exporting."
    }


def test_strict_refuses_the_file_for_its_first_bad_series_in_the_file(tmp_path):
    path = several(tmp_path, {"Dallas": (3, "-1"), "Austin": (30, "x")},
                   names=("Dallas", "Austin", "Houston"))

    assert set(load_sales(path).rejected) == {"Austin", "Dallas"}
    refuse(path, "shop.csv: series 'Dallas': line 5: sales value '-1' is negative",
           "Strict mode refuses the whole file", strict=True)


def test_when_no_series_survives_each_reason_is_listed_up_to_a_cap(tmp_path):
    names = [f"area{i}" for i in range(LISTED + 2)]
    path = several(tmp_path, {name: (0, "x") for name in names}, names=names)

    error = refuse(path, "shop.csv: no series could be loaded.",
                   "Series 'area0': line 2: sales value 'x' is not a number",
                   "Series 'area1': line 42:", "And 2 more series with problems.")
    assert f"area{LISTED}" not in str(error)


def test_empty_series_name_is_refused(tmp_path):
    path = several(tmp_path, {}, names=("Austin", ""))

    refuse(path, "shop.csv: line 42 has no value in the series column 'series'",
           "(40 line(s) in all: 42, 43, 44, 45, 46 and 35 more)")


def test_gaps_fill_within_each_series_and_never_across(tmp_path):
    lines = ["date,sales,series"]
    lines += [f"{m:%Y-%m},{10 * i},A" for i, m in enumerate(MONTHS) if i != 20]
    lines += [f"{m:%Y-%m},{1000 + i},B" for i, m in enumerate(MONTHS)
              if i not in (0, 5)]
    path = write(tmp_path, ("\n".join(lines) + "\n").encode())

    refuse(path, "shop.csv: no series could be loaded.",
           "Series 'A': 1 month(s) missing between 1980-01 and 1983-04: 1981-09.",
           "Series 'B': 1 month(s) missing between 1980-02 and 1983-04: 1980-06.")
    loaded = load_sales(path, fill_gaps="interpolate")

    a, b = (loaded.frame[loaded.frame["series"] == s] for s in "AB")
    assert a["sales"].tolist() == [10.0 * i for i in range(40)]
    assert b["sales"].tolist() == [1000.0 + i for i in range(1, 40)]
    assert b["date"].iloc[0] == MONTHS[1]


@pytest.mark.parametrize("fill_gaps", [None, "interpolate"])
def test_quarterly_and_yearly_series_are_refused_not_filled(tmp_path, fill_gaps):
    lines = ["date,sales,series"]
    lines += [f"{m:%Y-%m},{300 + i},Q" for i, m in enumerate(MONTHS) if i % 3 == 0]
    lines += [f"{y}-06,{4000 + y},Y" for y in range(1990, 1996)]
    lines += [f"{m:%Y-%m},{10 * i},M" for i, m in enumerate(MONTHS)]
    path = write(tmp_path, ("\n".join(lines) + "\n").encode())

    loaded = load_sales(path, fill_gaps=fill_gaps)

    assert loaded.frame["series"].unique().tolist() == ["M"]
    assert loaded.rejected["Q"] == (
        "its 14 lines are all 3 months apart (1980-01, 1980-04, 1980-07, ...): this "
        "looks like quarterly data, but the model learns from monthly sales, one line "
        "per month. Export the sales per month; filling the months in between would "
        "invent them and read each period's total as one month's sales.")
    assert "are all 12 months apart (1990-06, 1991-06, 1992-06, ...): this looks " \
        "like yearly data" in loaded.rejected["Y"]
    assert loaded.notes == []


def test_years_of_quarters_before_monthly_lines_are_refused_not_filled(tmp_path):
    quarters = [f"{m:%Y-%m},{900 + i}" for i, m in enumerate(MONTHS[:24]) if i % 3 == 0]
    months = [f"{m:%Y-%m},{300 + i}" for i, m in enumerate(MONTHS) if i > 24]
    path = write(tmp_path, ("\n".join(["date,sales", *quarters, *months]) + "\n")
                 .encode())

    refuse(path, "shop.csv: from 1980-01 to 1981-10 its 8 lines are 3 months apart "
           "(1980-01, 1980-04, 1980-07, ...): this looks like quarterly data",
           fill_gaps="interpolate")


def test_a_file_of_quarters_alone_says_so(tmp_path):
    lines = ["date,sales"] + [f"{m:%Y-%m},{300 + i}" for i, m in enumerate(MONTHS)
                              if i % 2 == 0]

    refuse(write(tmp_path, ("\n".join(lines) + "\n").encode()),
           "shop.csv: its 20 lines are all 2 months apart (1980-01, 1980-03, 1980-05, "
           "...): this looks like 2-monthly data")


def test_a_line_too_long_for_a_sales_file_is_refused_by_number(tmp_path):
    content = b"date,sales\n1980-01,1\n1980-02," + b"9" * 200_000 + b"\n"

    refuse(write(tmp_path, content), "shop.csv: line 3 is 200008 characters long, "
           "more than the 100000 a line of a sales history can need: '1980-02,999")


def test_a_long_bad_value_is_quoted_cut_to_its_start(tmp_path):
    content = f'date,sales\n1980-01,"{"7" * 5000}x"\n'.encode()

    error = refuse(write(tmp_path, content),
                   f"line 2: sales value '{'7' * 100}'... (5001 characters) is not a "
                   "number")
    assert len(str(error)) < 500


def test_a_codec_that_fails_without_a_position_is_still_a_clear_refusal(tmp_path):
    refuse(write(tmp_path, b"date,sales\n1980-01,1\n"),
           "shop.csv is not valid punycode text (", "(--encoding)",
           encoding="punycode")


@pytest.mark.parametrize("name", ["", "   ", " wine ", "wine\nred"])
def test_a_series_name_a_file_could_not_hold_is_refused(tmp_path, name):
    path = write(tmp_path, csv_bytes([1.0] * 40))

    refuse(path, "series_name (--series-name) must be a non-empty name without "
           f"leading or trailing spaces or control characters", series_name=name)


def test_a_series_name_for_a_file_with_a_series_column_is_refused(tmp_path):
    path = several(tmp_path, {})

    refuse(path, "shop.csv has the series column 'series', so its series are named "
           "there; series_name='x' (--series-name)", series_name="x")


def test_many_series_and_rows_load_by_vectorised_paths(tmp_path):
    rng = np.random.default_rng(7)
    names = [f"s{i:03d}" for i in range(300)]
    sales = rng.integers(0, 10**6, size=(300, 48)) / 100
    months = pd.date_range("2001-01-01", periods=48, freq="MS")
    frame = pd.DataFrame({"date": np.tile(months.strftime("%Y-%m"), 300),
                          "sales": sales.ravel(), "series": np.repeat(names, 48)})
    path = tmp_path / "many.csv"
    frame.sample(frac=1, random_state=1).to_csv(path, index=False)

    loaded = load_sales(path)

    assert loaded.frame["series"].tolist() == np.repeat(names, 48).tolist()
    np.testing.assert_array_equal(loaded.frame["sales"], sales.ravel())
    assert loaded.frame["date"].tolist() == list(months) * 300


# Interface ---------------------------------------------------------------------------

def test_summary_is_json_ready():
    loaded = load_sales(DATA / "wineind_gaps_and_duplicate.csv",
                        fill_gaps="interpolate", series_name="wineind")

    summary = json.loads(json.dumps(loaded.summary()))

    assert summary["rows"] == 176
    assert summary["series"] == [{"name": "wineind", "first": "1980-01-01",
                                  "last": "1994-08-01", "months": 176}]
    assert summary["notes"] == loaded.notes and summary["rejected"] == {}


@pytest.mark.parametrize(
    "options, message",
    [({"fill_gaps": "zero"}, f"fill_gaps must be None or one of {FILL_GAPS}"),
     ({"min_months": 0}, "min_months must be a positive integer, got 0"),
     ({"encoding": "klingon"}, "unknown text encoding 'klingon'")],
    ids=["fill_gaps", "min_months", "encoding"],
)
def test_wrong_options_are_caller_errors(options, message):
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        load_sales(DATA / "wineind.csv", **options)
    assert not isinstance(caught.value, DataError)


def test_unreadable_path_is_refused(tmp_path):
    refuse(tmp_path / "nope.csv", "nope.csv: cannot read the file (No such file",
           "Check the path")


def test_a_file_of_thousands_of_columns_gets_short_messages(tmp_path):
    extra = ",".join(f"c{i}" for i in range(5000))
    ones = ",".join("1" for _ in range(5000))
    rows = "".join(f"{m:%Y-%m-%d},{v},{ones}\n" for m, v in zip(MONTHS, CENTS))
    path = write(tmp_path, f"date,sales,{extra}\n{rows}".encode())

    loaded = load_sales(path)
    error = refuse(path, "no column named 'amount'", "'c17' and 4982 more",
                   columns=Columns(sales="amount"))

    assert loaded.notes[-1].endswith("'c19' and 4980 more")
    assert len(str(error)) < 1000


@pytest.mark.parametrize("name, code", [
    ('"a\rb"', "U+000A"),  # a quoted CR, read as a line break like every other
    ('"a\tb"', "U+0009"),
    ("\u202eabc", "U+202E"),  # right-to-left override
    ("a\u200bb", "U+200B"),  # zero-width space
    ("\ufeffa", "U+FEFF"),
])
def test_a_series_name_with_a_hidden_character_is_refused(tmp_path, name, code):
    content = ("date,sales,series\n2000-01-01,1,plain\n"
               f"2000-01-01,1,{name}\n").encode()

    refuse(write(tmp_path, content), "shop.csv: line 3: the series name",
           f"contains {code}", "Rename the series.")


def test_joiners_that_scripts_need_are_kept_in_names(tmp_path):
    name = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # Persian, ZWNJ
    content = "date,sales,series\n" + "".join(
        f"{m:%Y-%m-%d},{i},{name}\n" for i, m in enumerate(MONTHS))

    loaded = load_sales(write(tmp_path, content.encode()), min_months=1)

    assert loaded.frame["series"].unique().tolist() == [name]


@pytest.mark.parametrize("column, role", [("date", "date"), ("sales", "sales")])
def test_a_series_column_that_is_the_date_or_sales_column_is_refused(tmp_path,
                                                                     column, role):
    refuse(write(tmp_path, csv_bytes(CENTS)),
           f"the series column {column!r} is also the {role} column",
           columns=Columns(series=column))


@pytest.mark.parametrize("columns", [Columns(date="sales"), Columns(sales="date")],
                         ids=["--date-col sales", "--sales-col date"])
def test_one_column_named_for_both_date_and_sales_is_refused(tmp_path, columns):
    refuse(write(tmp_path, csv_bytes(CENTS)),
           f"the date column {columns.date!r} is also the sales column "
           f"{columns.sales!r}; one column cannot hold both", columns=columns)


def test_spaces_removed_around_series_names_are_said(tmp_path):
    content = ("date,sales,series\n" + "".join(
        f"{m:%Y-%m-%d},{i},{'a' if i < 20 else 'a '}\n" for i, m in enumerate(MONTHS)))

    loaded = load_sales(write(tmp_path, content.encode()))

    assert loaded.frame["series"].unique().tolist() == ["a"]
    assert loaded.notes == [
        "removed the spaces around series names (the first on line 22); names that "
        "differ only by such spaces are read as one series"]


def test_months_of_zero_before_the_first_sale_are_left_out_and_said(tmp_path):
    """A product launched later: its months before the launch are not demand. A
    series of zeros only is kept whole; zeros after the first sale stay, and so do
    one or two at the start (a slow start)."""
    content = "date,sales,series\n" + "".join(
        f"{m:%Y-%m-%d},{v},{name}\n"
        for name, values in (("launched", [0] * 14 + [5, 0, 7] + [9] * 23),
                             ("never", [0] * 40), ("always", [3] * 40),
                             ("slow", [0, 0] + [4] * 38))
        for m, v in zip(pd.date_range("2000-01-01", periods=40, freq="MS"), values))
    path = write(tmp_path, content.encode())

    loaded = load_sales(path, min_months=6)

    sizes = loaded.frame.groupby("series").size().to_dict()
    assert sizes == {"always": 40, "launched": 26, "never": 40, "slow": 40}
    launched = loaded.frame[loaded.frame["series"] == "launched"]
    assert launched["date"].iloc[0] == pd.Timestamp("2001-03-01")
    assert launched["sales"].tolist()[:3] == [5.0, 0.0, 7.0]
    assert loaded.notes == ["series 'launched': 14 month(s) of 0 before its first sale "
                            "(2001-03) left out; months before a product was on sale "
                            "say nothing about its demand"]


def test_a_series_that_stopped_selling_is_said_to_have_stopped(tmp_path):
    """Months of 0 at the end, a longer run than any before, are kept and noted: a
    product taken off sale. A run no longer than earlier ones (intermittent demand)
    or shorter than three months is not."""
    content = "date,sales,series\n" + "".join(
        f"{m:%Y-%m-%d},{v},{name}\n"
        for name, values in (("stopped", [8] * 30 + [0] * 10),
                             ("lumpy", ([6] * 6 + [0] * 4) * 4),
                             ("pause", [8] * 38 + [0] * 2),
                             ("never", [0] * 40))
        for m, v in zip(pd.date_range("2000-01-01", periods=40, freq="MS"), values))

    loaded = load_sales(write(tmp_path, content.encode()), min_months=6)

    assert loaded.frame.groupby("series").size().to_dict() == {
        "lumpy": 40, "never": 40, "pause": 40, "stopped": 40}
    assert loaded.notes == ["series 'stopped': its last 10 months are 0 (since "
                            "2002-07), a longer run than any before; if it is no "
                            "longer sold, its forecast, which follows the months it "
                            "sold, should not be used"]
