"""Calendar features for monthly sales: a trend index and a month-of-year season."""

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

# Months in a season: the yearly cycle every model and check here looks for.
SEASON_LENGTH = 12


def month_index(dates) -> np.ndarray:
    """Months since year 0 as integers, so consecutive months differ by exactly 1."""
    dates = pd.DatetimeIndex(dates)
    return (dates.year * 12 + dates.month - 1).to_numpy(dtype=np.int64)


def months_of(X) -> np.ndarray:
    """`month_index` of the `date` column of raw rows.

    Rows whose dates are already parsed (the loader's frame, the service's table)
    take a pure numpy path: backtests call this thousands of times, and parsing
    through pandas dominated their run time.
    """
    values = X["date"] if isinstance(X, pd.DataFrame) else np.asarray(X)[:, 0]
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.datetime64):
        return values.astype("datetime64[M]").astype(np.int64) + 1970 * 12
    return month_index(dates_column(X))


def dates_column(X) -> pd.DatetimeIndex:
    """The `date` column of raw rows as month starts, whatever its string format."""
    if isinstance(X, pd.DataFrame):
        values = X["date"]
    else:
        values = np.asarray(X)[:, 0]
    return pd.DatetimeIndex(pd.to_datetime(values)).to_period("M").to_timestamp()


class CalendarFeatures(TransformerMixin, BaseEstimator):
    """Turn raw rows with a `date` column into a trend and month-of-year indicators.

    The trend counts months from the first month seen in `fit`, so a fitted
    transformer maps the same date to the same numbers in training and in the
    service. With `season=False` only the trend is produced: that is the seed's
    plain regression of sales on a time index.
    """

    def __init__(self, season: bool = True):
        self.season = season

    def fit(self, X, y=None):
        self.origin_ = int(months_of(X).min())
        return self

    def transform(self, X):
        months = months_of(X)
        trend = (months - self.origin_).astype(np.float64)[:, None]
        if not self.season:
            return trend

        # January is the reference level; eleven indicators keep the design full rank.
        month_of_year = months % 12
        season = (month_of_year[:, None] == np.arange(1, 12)[None, :]).astype(
            np.float64)
        return np.hstack([trend, season])

    def get_feature_names_out(self, input_features=None):
        names = ["trend"]
        if self.season:
            names += [f"month_{m:02d}" for m in range(2, 13)]
        return np.asarray(names, dtype=object)


# log1p's "+1" is one item when sales are counts. For amounts in a large unit (sales
# in millions, 0.8 to 2.5 a month) it outweighs the sales themselves: the log models
# turn additive and a tenfold error no longer looks tenfold. Such series are read in
# a unit a power of ten smaller, enough for a typical month to reach this figure.
TYPICAL_MONTH = 1000.0
MAX_UNIT_POWER = 15
# Counts, as far as the unit goes: a series of whole numbers but for a month filled
# in between two others (--fill-gaps) or a stray correction.
COUNTS_WHOLE_SHARE = 0.9


def log_unit(sales) -> float:
    """What one series' `sales` are multiplied by before any log1p: 1 for counts (at
    least COUNTS_WHOLE_SHARE of the months whole numbers: they keep their +1 of one
    item) and for amounts whose median positive month already reaches TYPICAL_MONTH;
    otherwise the power of ten that brings it there, at most 10**MAX_UNIT_POWER.
    Amounts under TYPICAL_MONTH that differ by a power of ten (the same sales in
    other units) are read alike."""
    sales = np.asarray(sales, dtype=np.float64)
    sales = sales[np.isfinite(sales)]
    positive = sales[sales > 0]
    if not len(positive) or np.mean(np.mod(sales, 1) == 0) >= COUNTS_WHOLE_SHARE:
        return 1.0
    typical = float(np.median(positive))
    if typical >= TYPICAL_MONTH:
        return 1.0
    # The margin keeps a typical month of exactly 1 (or 0.1) at the power that
    # brings it to 1,000, whatever log10's last bit says.
    power = int(np.ceil(np.log10(TYPICAL_MONTH / typical) - 1e-9))
    power = min(MAX_UNIT_POWER, power)
    return 10.0 ** power

