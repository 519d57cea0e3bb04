"""The forecasting models: scikit-learn estimators from raw rows to monthly sales.

Every model here takes raw rows (a DataFrame with a `date` column, and a `series`
column for `SalesForecaster`) and returns sales, so the service never rebuilds
features itself: it hands the rows to the fitted estimator loaded from the artifact.
"""

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline

from training.features import CalendarFeatures, dates_column, month_index

SEASON_LENGTH = 12


class SeasonalNaive(RegressorMixin, BaseEstimator):
    """Sales of the same month one year earlier: the bar every model must clear.

    After the history ends, each month repeats the last observed value of the same
    calendar month. Inside the history, a month gets the value twelve months
    before it (the first year, which has none, gets its own value).
    """

    def fit(self, X, y):
        months = month_index(dates_column(X))
        self.first_ = int(months.min())
        self.last_ = int(months.max())
        self.values_ = np.full(self.last_ - self.first_ + 1, np.nan)
        self.values_[months - self.first_] = np.asarray(y, dtype=np.float64)
        return self

    def predict(self, X):
        months = month_index(dates_column(X))
        ahead = months > self.last_
        years_back = np.where(ahead, -(-(months - self.last_) // SEASON_LENGTH), 1)
        source = months - SEASON_LENGTH * years_back
        source = np.where(source < self.first_, months, source)
        source = np.clip(source, self.first_, self.last_)
        return self.values_[source - self.first_]


def _regression(season: bool) -> Pipeline:
    return Pipeline(
        [("calendar", CalendarFeatures(season=season)), ("regression", LinearRegression())]
    )


# Named model kinds users can ask for. "linear" is the seed's regression of sales on
# a time index, kept so its scores can always be compared with the others.
MODEL_KINDS = {
    "seasonal": lambda: _regression(season=True),
    "linear": lambda: _regression(season=False),
    "seasonal-naive": SeasonalNaive,
}
DEFAULT_MODEL = "seasonal"


def make_model(kind: str):
    """A fresh, unfitted estimator of the named kind."""
    try:
        return MODEL_KINDS[kind]()
    except KeyError:
        allowed = ", ".join(sorted(MODEL_KINDS))
        raise ValueError(f"Unknown model kind {kind!r}; choose one of: {allowed}.") from None


class SalesForecaster(RegressorMixin, BaseEstimator):
    """One model per series behind a single estimator over raw rows.

    `models` maps a series name to a model kind (or to an unfitted estimator);
    series not named there get `default`. `predict` takes rows with `date` and
    `series` columns and routes each row to its series' fitted model.
    """

    def __init__(self, models=None, default: str = DEFAULT_MODEL):
        self.models = models
        self.default = default

    def fit(self, X: pd.DataFrame, y):
        y = np.asarray(y, dtype=np.float64)
        chosen = self.models or {}
        self.models_ = {}
        self.last_month_ = {}
        for name, rows in X.groupby("series", sort=True).indices.items():
            spec = chosen.get(name, self.default)
            estimator = make_model(spec) if isinstance(spec, str) else clone(spec)
            self.models_[name] = estimator.fit(X.iloc[rows], y[rows])
            self.last_month_[name] = dates_column(X.iloc[rows]).max()
        self.series_ = list(self.models_)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        out = np.empty(len(X), dtype=np.float64)
        for name, rows in X.groupby("series", sort=False).indices.items():
            if name not in self.models_:
                raise ValueError(
                    f"Unknown series {name!r}; this model knows "
                    f"{len(self.series_)} series: {', '.join(self.series_[:10])}"
                    + (", ..." if len(self.series_) > 10 else "")
                )
            out[rows] = self.models_[name].predict(X.iloc[rows])
        return out
