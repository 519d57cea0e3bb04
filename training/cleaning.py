"""Gross errors in a sales history: found, and kept away from the models' fits.

A month that a supplier recorded as 0 in a series selling 20,000 a month (a stock-out,
a missing delivery note, a lost digit) is not demand. Log-scale models read it as a
fall of ten orders of magnitude: the lag models carry that change forward a year at a
time and their forecast runs to the ceiling, the smoothing models drop their level. The
backtest never sees it when the month is newer than its last cut-off, so the gate
cannot catch it either.

So before the forecasting models are fitted, each series' gross errors are replaced by
what its season and neighbours say the month should have been. A month is a gross
error when all of these hold:

- on log1p(sales) (in the unit `features.log_unit` gives), its distance from a robust
  expectation (running median of the seasonally adjusted series over 13 months, plus
  the median month-of-year effect) is beyond `FENCE` interquartile ranges of all
  months' distances (the rule of Tukey's outer fences, as R's `forecast::tsoutliers`
  uses);
- that distance is more than a factor `FACTOR` either way: real one-month shocks
  (a hurricane, a tax deadline) move sales by a factor of two to four and stay;
- it is part of a run of at most `MAX_RUN` consecutive months that each differ from
  the same month a year away by more than that factor: a longer run is the series
  changing (a product discontinued), not an error, and is left as it is.

Only series of at least `MIN_MONTHS` months with fewer than `MAX_ZERO_SHARE` zero months
are examined; intermittent series are zeros by nature. Every kind is fitted on the
cleaned series, the baselines too (a seasonal naive that repeats a stock-out is a bar
anything clears), and the backtest does not score the replaced months
(training/backtest.py); the metadata lists each replaced month.
"""

import numpy as np

from training.features import SEASON_LENGTH, log_unit

FENCE = 3.0
FACTOR = 5.0
MAX_RUN = 2
MIN_MONTHS = 3 * SEASON_LENGTH
MAX_ZERO_SHARE = 1 / 3
# Half of the running median's window: 13 months, one full season and its centre.
_HALF = SEASON_LENGTH // 2


def _running_median(values: np.ndarray) -> np.ndarray:
    """Median of each month and up to six on either side (fewer at the ends)."""
    n = len(values)
    padded = np.pad(values, _HALF, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * _HALF + 1)
    return np.nanmedian(windows[:n], axis=1)


def expected_log_sales(z: np.ndarray, first: int) -> np.ndarray:
    """A robust expectation of each month of the log series `z` (first month number
    `first`): running median of the seasonally adjusted series plus the median
    month-of-year effect. One wild month moves neither."""
    calendar = (first + np.arange(len(z))) % SEASON_LENGTH
    deviation = z - _running_median(z)
    effects = np.array([np.median(deviation[calendar == m]) if np.any(calendar == m)
                        else 0.0 for m in range(SEASON_LENGTH)])
    effects -= effects.mean()
    return _running_median(z - effects[calendar]) + effects[calendar]


def _off_the_year(z: np.ndarray) -> np.ndarray:
    """Months more than FACTOR away from the same month a year earlier (the first
    year: a year later). Unlike the running median, this does not give way to a run
    of low months: a product off sale for six months is six months off the year."""
    other = np.r_[z[SEASON_LENGTH:2 * SEASON_LENGTH], z[:-SEASON_LENGTH]]
    return np.abs(z - other) > np.log(FACTOR)


def _in_short_runs(flagged: np.ndarray, off: np.ndarray) -> np.ndarray:
    """`flagged` without the months whose run of consecutive `off` (or flagged)
    months is longer than MAX_RUN."""
    kept = flagged.copy()
    start = None
    for i, flag in enumerate(np.r_[flagged | off, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start > MAX_RUN:
                kept[start:i] = False
            start = None
    return kept


def gross_errors(sales: np.ndarray, first: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the gross errors in one series' month-by-month `sales` (no gaps;
    first month number `first`) and, for those, the sales the fits use instead."""
    sales = np.asarray(sales, dtype=np.float64)
    none = np.array([], dtype=np.int64), np.array([], dtype=np.float64)
    if (len(sales) < MIN_MONTHS or not np.isfinite(sales).all() or sales.min() < 0
            or np.mean(sales == 0) >= MAX_ZERO_SHARE):
        return none
    unit = log_unit(sales)
    z = np.log1p(sales * unit)
    expected = expected_log_sales(z, first)
    distance = z - expected
    q1, q3 = np.percentile(distance, [25, 75])
    spread = FENCE * (q3 - q1)
    flagged = (((distance < q1 - spread) | (distance > q3 + spread))
               & (np.abs(distance) > np.log(FACTOR)))
    where = np.flatnonzero(_in_short_runs(flagged, _off_the_year(z)))
    return where, np.expm1(expected[where]) / unit


def for_fitting(months: np.ndarray, sales: np.ndarray) -> tuple[np.ndarray, list]:
    """One series' `sales` (rows in any order, month numbers `months`) with its gross
    errors replaced, as a copy in the same row order, and the replacements as
    (month, recorded, used) tuples. A series with gaps or repeated months is
    returned as it is: nothing here can say what its neighbours are."""
    months = np.asarray(months, dtype=np.int64)
    out = np.array(sales, dtype=np.float64)
    order = np.argsort(months, kind="stable")
    ordered = months[order]
    if len(ordered) == 0 or np.any(np.diff(ordered) != 1):
        return out, []
    where, instead = gross_errors(out[order], int(ordered[0]))
    rows = order[where]
    replaced = [(int(months[r]), float(out[r]), float(v))
                for r, v in zip(rows, instead)]
    out[rows] = instead
    return out, replaced
