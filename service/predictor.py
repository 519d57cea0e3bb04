"""Answers for one loaded model version, computed once when the version loads.

A monthly model can only be asked about a bounded set of months: from the first
month of a series' history to `MAX_MONTHS_AHEAD` after its last. The predictor asks
the fitted scikit-learn estimator about every one of those months in a single call
when the version loads, and afterwards answers each request from that table. So a
request costs a dictionary look-up instead of building a DataFrame, every answer is
exactly what the estimator's own `predict` returns, and a model that cannot answer
(an exception, a NaN, an infinity) is refused before it ever serves.
"""

import calendar
import unicodedata
from operator import getitem, itemgetter

import numpy as np
import pandas as pd

from service.errors import BadRequest, UnknownSeries
from service.http import check_fields
from training.data import Clipped

MAX_MONTHS_AHEAD = 60
# Interval levels served with every forecast row, as the training job stores them.
INTERVAL_LEVELS = ("80", "95")
INSTANCE_FIELDS = frozenset({"date", "series"})
# The parts of a version's metadata that hold an entry per series, as (section, key
# inside it); None: the section itself is keyed by series name. With thousands of
# series they are nearly all of it (31 of the 32 MB of 3,000 series).
PER_SERIES_PARTS = (("evaluation", None), ("backtest", "series"),
                    ("intervals", "series"))
_GET_DATE = itemgetter("date")
_GET_SERIES = itemgetter("series")


def parse_month(text) -> int:
    """`YYYY-MM` or `YYYY-MM-DD` as months since year 0; ValueError otherwise."""
    # isascii: str.isdigit and int() also take other scripts' digits ("١٩٩٥-01").
    if not isinstance(text, str) or len(text) not in (7, 10) or not text.isascii():
        raise ValueError
    if text[4] != "-" or (len(text) == 10 and text[7] != "-"):
        raise ValueError
    year, month = int(text[:4]), int(text[5:7])
    if not (text[:4].isdigit() and text[5:7].isdigit() and 1 <= month <= 12):
        raise ValueError
    if len(text) == 10 and not (text[8:].isdigit()
                                and 1 <= int(text[8:]) <= _days_in(year, month)):
        raise ValueError
    return year * 12 + month - 1


def _days_in(year: int, month: int) -> int:
    """Days in a month of the proleptic Gregorian calendar (2019-02-30 is no date)."""
    if month == 2:
        return 29 if calendar.isleap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def month_label(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}-01"


class SeriesTable:
    """Every answerable month of one series, with the forecast rows pre-built.

    A forecast row carries the 80% and 95% prediction intervals the training job
    calibrated (half-widths per month ahead in the metadata). The lower bounds are
    clipped at zero when the version says sales cannot be negative, and every bound
    is kept on its side of the point forecast. A version without intervals (trained
    before they existed) answers null bounds. `calibrated` says whether the widths
    were measured on the backtest (False for a series too short for one: they come
    from its own year-on-year spread; None without intervals).
    """

    def __init__(self, name: str, first: int, last: int, values: np.ndarray,
                 widths: dict | None = None, floor: float | None = None):
        self.name = name
        self.first = first
        self.last = last
        # The forecast starts the month after: a series that stopped before the
        # others of its file forecasts months its file already has.
        self.history_ends = month_label(last)[:7]
        self.values = values.tolist()
        self.calibrated = bool(widths.get("calibrated")) if widths else None
        # The two spellings clients send most, "1995-01" and "1995-01-01" (how
        # /forecast writes dates), straight to the value: the fast path of
        # `Predictor.predict` and `Predictor.values`. Other days of the month, and
        # anything malformed or out of range, take the checked path.
        self.by_text = {}
        for offset, value in enumerate(self.values):
            label = month_label(first + offset)
            self.by_text[label[:7]] = self.by_text[label] = value
        ahead = np.arange(last + 1, last + 1 + MAX_MONTHS_AHEAD)
        point = values[ahead - first]
        self.forecast_rows = [
            {"date": month_label(int(m)), "sales": self.values[m - first]}
            for m in ahead
        ]
        for level in INTERVAL_LEVELS:
            lower, upper = interval_bounds(point, (widths or {}).get(level), floor)
            for row, low, high in zip(self.forecast_rows, lower, upper):
                row[f"lower_{level}"] = low
                row[f"upper_{level}"] = high

    def value(self, month: int, position: str) -> float:
        offset = month - self.first
        if offset < 0 or month > self.last + MAX_MONTHS_AHEAD:
            raise BadRequest(
                f"{position}: month {month_label(month)[:7]} is outside what this "
                f"model answers for series {self.name!r}: "
                f"{month_label(self.first)[:7]} to "
                f"{month_label(self.last + MAX_MONTHS_AHEAD)[:7]} (its history and "
                f"{MAX_MONTHS_AHEAD} months after it)."
            )
        return self.values[offset]


def interval_bounds(point: np.ndarray, widths, floor: float | None):
    """Lower and upper bounds as lists (None each when `widths` is missing)."""
    if widths is None or len(widths) < len(point):
        return [None] * len(point), [None] * len(point)
    half = np.abs(np.asarray(widths[:len(point)], dtype=np.float64))
    if not np.isfinite(half).all():
        raise ValueError("the model's interval widths are not all finite numbers")
    lower = point - half
    if floor is not None:
        lower = np.maximum(lower, floor)
    return np.minimum(lower, point).tolist(), (point + half).tolist()


class Predictor:
    def __init__(self, model, metadata: dict):
        self.version = metadata["version"]
        self.metadata = metadata
        spans = {s["name"]: (_month(s["first"]), _month(s["last"]))
                 for s in metadata["series"]}
        intervals = metadata.get("intervals") or {}
        floor = 0.0 if intervals.get("clipped_at_zero") else None
        widths = intervals.get("series") or {}
        self.tables = self._tabulate(model, spans, widths, floor)
        self.default_series = next(iter(self.tables)) if len(self.tables) == 1 else None
        # Series name -> SeriesTable.by_text; None (series left out) is there only
        # when the model has a single series to default to.
        self._by_text = {name: table.by_text for name, table in self.tables.items()}
        if self.default_series is not None:
            self._by_text[None] = self._by_text[self.default_series]
        # Names as typed loosely (Unicode spelling, case, outer spaces), for the
        # hint that answers an unknown name: a look-up, not a scan of thousands.
        # Training keeps names differing in case apart, so one typed loosely may be
        # as near to several: each is named.
        self._composed, self._loose = {}, {}
        for name in self.tables:
            self._composed.setdefault(_composed(name), name)
            self._loose.setdefault(_composed(name).casefold().strip(), []).append(name)

    @staticmethod
    def _tabulate(model, spans: dict, widths: dict,
                  floor: float | None) -> dict[str, SeriesTable]:
        names, months = [], []
        for name, (first, last) in spans.items():
            count = last + MAX_MONTHS_AHEAD - first + 1
            names.append(np.full(count, name, dtype=object))
            months.append(np.arange(first, first + count))
        months_all = np.concatenate(months)
        rows = pd.DataFrame({
            "date": pd.to_datetime({"year": months_all // 12,
                                    "month": months_all % 12 + 1, "day": 1}),
            "series": np.concatenate(names),
        })
        values = np.asarray(model.predict(rows), dtype=np.float64)
        if values.shape != (len(rows),):
            raise ValueError(f"the model's self-check asked for {len(rows)} values and "
                             f"got an array of shape {values.shape}")
        if not np.isfinite(values).all():
            bad = int((~np.isfinite(values)).sum())
            raise ValueError(f"the model's self-check produced {bad} non-finite values "
                             f"out of {len(rows)}")

        tables, start = {}, 0
        for name, (first, last) in spans.items():
            count = last + MAX_MONTHS_AHEAD - first + 1
            tables[name] = SeriesTable(name, first, last, values[start:start + count],
                                       widths.get(name), floor)
            start += count
        return tables

    def table(self, series, position: str = "series") -> SeriesTable:
        if series is None:
            if self.default_series is None:
                raise BadRequest(f"{position} is required: this model has "
                                 f"{len(self.tables)} series ({self._some_names()}).")
            return self.tables[self.default_series]
        if not isinstance(series, str):
            raise BadRequest(f"{position} must be a string, got "
                             f"{type(series).__name__}.")
        try:
            return self.tables[series]
        except KeyError:
            raise UnknownSeries(f"{position}: unknown series {series[:100]!r}; this "
                                f"model has {self._some_names()}."
                                f"{self._spelling(series)}") \
                from None

    def _spelling(self, series: str) -> str:
        """A hint when a known name differs only in Unicode normalisation (é as one
        character or as e plus an accent: the two look the same when printed), or
        in case and outer spaces (which an exact look-up does not forgive)."""
        wanted = _composed(series[:1000])
        same = self._composed.get(wanted)
        if same is not None:
            return (f" {same!r} looks the same but is spelled with other Unicode "
                    f"characters; ask for it as it is spelled in the model "
                    f"({same.encode('unicode_escape').decode()[:200]}).")
        near = self._loose.get(wanted.casefold().strip())
        if near is not None:
            shown = " or ".join(_quoted(n) for n in near[:3])
            more = f" (or {len(near) - 3} more)" if len(near) > 3 else ""
            return (f" Did you mean {shown}{more}? Names must match exactly, case "
                    "and spaces included.")
        return ""

    def _some_names(self) -> str:
        names = list(self.tables)
        shown = ", ".join(_quoted(n) for n in names[:10])
        if len(names) <= 10:
            return shown
        return (f"{shown} and {len(names) - 10} more (GET /model?series= lists "
                "them all)")

    def metadata_of(self, series: str) -> dict:
        """The metadata with its per-series parts cut to `series`, its entry in the
        list of series included; for an empty name, the list of series and the
        overall figures without the per-series parts. What a client showing one
        series needs, however many the model has."""
        kept = [self.table(series).name] if series else []
        narrowed = dict(self.metadata)
        if kept:
            narrowed["series"] = [s for s in self.metadata["series"]
                                  if s["name"] in kept]
        for section, key in PER_SERIES_PARTS:
            if section not in narrowed:
                continue  # a section the version lacks stays absent, never null
            part = narrowed[section]
            if key is None:
                narrowed[section] = _only(part, kept)
            elif isinstance(part, dict) and key in part:
                narrowed[section] = {**part, key: _only(part[key], kept)}
        return narrowed

    def forecast(self, series, horizon: int) -> tuple[SeriesTable, list]:
        table = self.table(series)
        return table, table.forecast_rows[:horizon]

    def predict(self, instances: list) -> list:
        """The value of every instance, in order; a 400 naming the first bad one.

        A batch of well-formed rows for tabulated months is answered by loops that
        run in C (`map` with `operator` getters), when every row has both fields or
        every row has only `date`: a row's size and the getters that find its fields
        check that it has no other. Then it costs one or two dictionary look-ups.
        Anything else (another day of the month, a missing, extra or unknown field
        or series, a row that is not an object, a batch mixing rows with and without
        `series`) sends the batch through the checked loop, which answers the same
        values or the error for the first bad row.
        """
        if not instances:
            return []
        lookup = self._by_text
        try:
            sizes = set(map(len, instances))
            if sizes == {2}:
                series = list(map(_GET_SERIES, instances))
                first = series[0]
                if series.count(first) == len(series):
                    return list(map(lookup[first].__getitem__,
                                    map(_GET_DATE, instances)))
                return _look_up(lookup, series, map(_GET_DATE, instances))
            if sizes == {1}:
                return list(map(lookup[None].__getitem__, map(_GET_DATE, instances)))
        except (KeyError, TypeError):
            pass
        return self._predict_checked(instances)

    def _predict_checked(self, instances: list) -> list:
        out = []
        for i, row in enumerate(instances):
            position = f"instances[{i}]"
            if not isinstance(row, dict):
                raise BadRequest(f"{position} must be an object with 'date' (and "
                                 f"'series'), got {type(row).__name__}.")
            # A misspelt "series" would otherwise fall back to the default series.
            check_fields(row, INSTANCE_FIELDS, position)
            table = self.table(row.get("series"), f"{position}.series")
            out.append(table.value(
                parse_request_month(row.get("date"), f"{position}.date"), position))
        return out

    def values(self, dates: list, series: list) -> list:
        """V2 infer: the value of each (date, series) pair, the fast way when every
        pair is tabulated; errors name `date[i]` or `series[i]`."""
        lookup = self._by_text
        try:
            return _look_up(lookup, series, dates)
        except (KeyError, TypeError):
            pass
        return [self.table(s, f"series[{i}]").value(
                    parse_request_month(d, f"date[{i}]"), f"date[{i}]")
                for i, (d, s) in enumerate(zip(dates, series))]


def _quoted(name: str) -> str:
    """A series name for a message, as the loader quotes one: a name may be as long
    as a CSV line, and every refusal lists some."""
    return repr(Clipped(name))


def _only(entries, names: list):
    """`entries` (name -> entry) cut to `names`; anything else as it is."""
    if not isinstance(entries, dict):
        return entries
    return {name: entries[name] for name in names if name in entries}


def _composed(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def _look_up(lookup: dict, series, dates) -> list:
    """`lookup[s][d]` for each pair, in a C loop; KeyError or TypeError on a miss."""
    return list(map(getitem, map(lookup.__getitem__, series), dates))


def parse_request_month(value, field: str) -> int:
    """The month of a request's date; a 400 naming `field` (instances[3].date for
    /predict, date[3] for a V2 tensor element) when it is not one."""
    try:
        return parse_month(value)
    except (ValueError, TypeError):
        shown = repr(value)[:40] if value is not None else "nothing"
        raise BadRequest(f"{field} must be a month as 'YYYY-MM' or "
                         f"'YYYY-MM-DD', got {shown}.") from None


def _month(text: str) -> int:
    return parse_month(text[:7])
