"""The forecasting models: scikit-learn estimators from raw rows to monthly sales.

Every model here takes raw rows (a DataFrame with a `date` column, and a `series`
column for `SalesForecaster` and the pooled models) and returns sales, so the service
never rebuilds features itself: it hands the rows to the fitted estimator loaded from
the artifact. Models that forecast from recent months keep the history they need in
their fitted state, so `predict` on future months works from the raw rows alone.

The kinds, and why each is there:

- `seasonal-naive`: the same month one year earlier; the bar every model must clear.
- `linear`: the seed's regression on a time index, kept as a second baseline.
- `mean`: the mean of the history, for a series too short to show a season and for
  intermittent demand (training.selection decides).
- `seasonal`, `log-seasonal`: trend plus month-of-year, on sales or on log sales
  (seasonal swings that grow with the level, as in airline passengers).
- `recent-seasonal`, `recent-log-seasonal`: the same, fitted on the last four years
  only, so an old trend that has since turned does not drag the forecast.
- `lag`, `pooled-lag`: the change on the same month a year earlier, on log sales,
  predicted from the last twelve such changes and rolled forward one month at a time.
  `pooled-lag` learns one set of coefficients from every series in the file at once
  (the changes are unit-free, so areas of any size can share them).
- `theta`, `damped`: exponential smoothing of seasonally adjusted log sales, with
  the Theta method's gentle drift or with a trend that fades month by month. They
  err differently from the regressions and the lag models, which is what a blend
  of them needs. In a file of several series each series' month-of-year effects
  lean on the file's mean season as far as they are noisy.
- `airline`: the seasonal ARIMA most often fitted to monthly sales,
  ARIMA(0,1,1)(0,1,1)12 on log sales, written in numpy: a classical yardstick next
  to the blend, and one more model the quality gate may fall back on.
"""

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.pipeline import Pipeline

from training.cleaning import for_fitting
from training.features import SEASON_LENGTH, CalendarFeatures, log_unit, months_of


class SeasonalNaive(RegressorMixin, BaseEstimator):
    """Sales of the same month one year earlier: the bar every model must clear.

    After the history ends, each month repeats the last observed value of the same
    calendar month. Inside the history, a month gets the value twelve months
    before it (the first year, which has none, gets its own value).
    """

    def fit(self, X, y):
        months = months_of(X)
        self.first_ = int(months.min())
        self.last_ = int(months.max())
        self.values_ = np.full(self.last_ - self.first_ + 1, np.nan)
        self.values_[months - self.first_] = np.asarray(y, dtype=np.float64)
        return self

    def predict(self, X):
        months = months_of(X)
        ahead = months > self.last_
        years_back = np.where(ahead, -(-(months - self.last_) // SEASON_LENGTH), 1)
        source = months - SEASON_LENGTH * years_back
        source = np.where(source < self.first_, months, source)
        source = np.clip(source, self.first_, self.last_)
        return self.values_[source - self.first_]


class RecentWindow(RegressorMixin, BaseEstimator):
    """Fit `estimator` on the last `months` months of the history only."""

    def __init__(self, estimator=None, months: int = 48):
        self.estimator = estimator
        self.months = months

    def fit(self, X, y):
        stamps = months_of(X)
        keep = stamps > stamps.max() - self.months
        self.estimator_ = clone(self.estimator).fit(X[keep], np.asarray(y)[keep])
        return self

    def predict(self, X):
        return self.estimator_.predict(X)


def _history(X, y) -> tuple[int, np.ndarray]:
    """First month and the month-by-month values of one series (no gaps allowed)."""
    months = months_of(X)
    first, last = int(months.min()), int(months.max())
    values = np.full(last - first + 1, np.nan)
    values[months - first] = np.asarray(y, dtype=np.float64)
    if np.isnan(values).any():
        raise ValueError(f"The history has {int(np.isnan(values).sum())} missing "
                         "months; lag models need every month (fill or refuse gaps in "
                         "the loader first).")
    return first, values


def _histories(X, y, usable) -> dict:
    """{series: (first month, month-by-month values)} of the rows X (with a `series`
    column) for every series whose values `usable` accepts."""
    y = np.asarray(y, dtype=np.float64)
    out = {}
    for name, rows in X.groupby("series", sort=True).indices.items():
        first, values = _history(X.iloc[rows], y[rows])
        if usable(values):
            out[name] = (first, values)
    return out


def _each_series(X, fitted, who: str, answer) -> np.ndarray:
    """`answer(name, rows)` for the rows X of each series, every one of which must be
    in `fitted` (`who` names the model in the refusal)."""
    out = np.empty(len(X), dtype=np.float64)
    for name, rows in X.groupby("series", sort=False).indices.items():
        if name not in fitted:
            raise ValueError(f"{who} was not fitted on series {name!r} (too short or "
                             "negative).")
        out[rows] = answer(name, X.iloc[rows])
    return out


def _log_history(X, y, months: int, who: str) -> tuple[int, np.ndarray]:
    """First month and log1p of one series' sales, at least `months` long and never
    negative (`who` names the model in the refusal)."""
    first, values = _history(X, y)
    if len(values) < months or values.min() < 0:
        raise ValueError(f"{who} needs at least {months} months of non-negative "
                         f"sales, got {len(values)} months (minimum {values.min():g}).")
    return first, np.log1p(values)


class _SeasonalChangeAR:
    """The arithmetic shared by `LagForecaster` and `PooledLagForecaster`.

    On z = log1p(sales) the target is the change on the same month a year earlier,
    d[t] = z[t] - z[t-12], and the features are the `lags` previous changes
    d[t-1] ... d[t-lags]. A forecast runs month by month: each predicted change is
    added to the value (observed or predicted) twelve months before, and becomes a
    feature of the next month.
    """

    @staticmethod
    def changes(values: np.ndarray) -> np.ndarray:
        z = np.log1p(values)
        return z[SEASON_LENGTH:] - z[:-SEASON_LENGTH]

    @staticmethod
    def design(values: np.ndarray, lags: int) -> tuple[np.ndarray, np.ndarray]:
        d = _SeasonalChangeAR.changes(values)
        rows = len(d) - lags
        if rows <= 0:
            return np.empty((0, lags)), np.empty(0)
        X = np.stack([d[lags - k:lags - k + rows] for k in range(1, lags + 1)], axis=1)
        return X, d[lags:]

    @staticmethod
    def roll(regression, values: np.ndarray, lags: int, ahead: int,
             seen=(-np.inf, np.inf)) -> np.ndarray:
        """`values` extended by `ahead` recursively forecast months.

        Each forecast change is kept within `seen`, the smallest and largest yearly
        change the regression learned from. Fed a change it never saw (a product
        taken off sale: log1p(0) after years of thousands), an explosive regression
        would otherwise swing further every month and carry the forecast to its
        ceiling within a year, through the other series too when it is pooled.
        """
        z = list(np.log1p(values))
        d = list(_SeasonalChangeAR.changes(values))
        coef, intercept = regression.coef_, float(regression.intercept_)
        low, high = seen
        for _ in range(ahead):
            change = intercept + float(np.dot(coef, d[-1:-lags - 1:-1]))
            change = min(max(change, low), high)
            d.append(change)
            z.append(z[-SEASON_LENGTH] + change)
        # Bounded so that a runaway extrapolation stays a (very wrong) finite number.
        return np.expm1(np.clip(np.asarray(z), -50.0, 50.0))

    @staticmethod
    def fitted(regression, values: np.ndarray, lags: int) -> np.ndarray:
        """One-month-ahead fitted values; the first months, with no lags, as seen."""
        X, _ = _SeasonalChangeAR.design(values, lags)
        out = values.astype(np.float64).copy()
        if len(X):
            z = np.log1p(values)
            start = SEASON_LENGTH + lags
            predicted = z[start - SEASON_LENGTH:len(values) - SEASON_LENGTH] \
                + regression.predict(X)
            out[start:] = np.expm1(np.clip(predicted, -50.0, 50.0))
        return out

    @staticmethod
    def seen(histories) -> tuple[float, float]:
        """The smallest and largest yearly change of log sales in `histories`."""
        changes = np.concatenate([_SeasonalChangeAR.changes(v) for v in histories])
        return float(changes.min()), float(changes.max())

    @staticmethod
    def answer(regression, first: int, values: np.ndarray, lags: int,
               months: np.ndarray, seen=(-np.inf, np.inf)) -> np.ndarray:
        last = first + len(values) - 1
        ahead = max(0, int(months.max()) - last)
        path = _SeasonalChangeAR.roll(regression, values, lags, ahead, seen)
        path[:len(values)] = _SeasonalChangeAR.fitted(regression, values, lags)
        # Months before the history have nothing to go on: the first month stands in.
        return path[np.clip(months - first, 0, None)]


def min_months_for_lags(lags: int) -> int:
    """Shortest history a lag model fits on: the year before the first yearly
    change, `lags` changes as the first row's features, then two years of rows."""
    return SEASON_LENGTH + lags + 2 * SEASON_LENGTH


class LagForecaster(RegressorMixin, BaseEstimator):
    """Yearly change of log sales from the last `lags` yearly changes, recursively.

    See `_SeasonalChangeAR` for the arithmetic. Sales must be non-negative (log1p).
    """

    def __init__(self, lags: int = 12, alpha: float = 1.0):
        self.lags = lags
        self.alpha = alpha

    def fit(self, X, y):
        self.first_, self.values_ = _history(X, y)
        if len(self.values_) < min_months_for_lags(self.lags) or self.values_.min() < 0:
            raise ValueError(f"LagForecaster needs at least "
                             f"{min_months_for_lags(self.lags)} months of non-negative "
                             f"sales, got {len(self.values_)} months (minimum "
                             f"{self.values_.min():g}).")
        features, target = _SeasonalChangeAR.design(self.values_, self.lags)
        self.regression_ = Ridge(alpha=self.alpha).fit(features, target)
        self.seen_ = _SeasonalChangeAR.seen([self.values_])
        return self

    def predict(self, X):
        months = months_of(X)
        # Versions written before `seen_` existed roll forward unbounded, as fitted.
        return _SeasonalChangeAR.answer(self.regression_, self.first_, self.values_,
                                        self.lags, months,
                                        getattr(self, "seen_", (-np.inf, np.inf)))


class PooledLagForecaster(RegressorMixin, BaseEstimator):
    """`LagForecaster` with one regression learned from every series at once.

    Takes rows with `date` and `series`; keeps each series' history so it can
    forecast any of them. Series too short for the lags still contribute nothing to
    the fit and cannot be asked about (the caller decides which series use it).
    """

    def __init__(self, lags: int = 12, alpha: float = 1.0):
        self.lags = lags
        self.alpha = alpha

    def fit(self, X, y):
        self.histories_ = _histories(
            X, y, lambda v: len(v) >= min_months_for_lags(self.lags) and v.min() >= 0)
        designs = [_SeasonalChangeAR.design(v, self.lags)
                   for _, v in self.histories_.values()]
        features, targets = [f for f, _ in designs], [t for _, t in designs]
        if not features:
            raise ValueError(f"PooledLagForecaster needs at least one series with "
                             f"{min_months_for_lags(self.lags)} months of non-negative "
                             "sales; none has.")
        self.regression_ = Ridge(alpha=self.alpha).fit(np.vstack(features),
                                                       np.concatenate(targets))
        self.seen_ = _SeasonalChangeAR.seen(v for _, v in self.histories_.values())
        return self

    def predict(self, X):
        seen = getattr(self, "seen_", (-np.inf, np.inf))

        def answer(name, rows):
            first, values = self.histories_[name]
            return _SeasonalChangeAR.answer(self.regression_, first, values,
                                            self.lags, months_of(rows), seen)

        return _each_series(X, self.histories_, type(self).__name__, answer)


def seasonal_deviations(z: np.ndarray, first: int) -> tuple[np.ndarray, np.ndarray]:
    """Calendar month (0-11) and deviation from the trend of each month of a (log)
    series that has a trend: the centred 2x12 moving average of classical
    decomposition, which leaves out the first and last six months."""
    n = len(z)
    kernel = np.r_[0.5, np.ones(SEASON_LENGTH - 1), 0.5] / SEASON_LENGTH
    trend = np.convolve(z, kernel, mode="valid")
    half = SEASON_LENGTH // 2
    calendar = (first + np.arange(half, n - half)) % SEASON_LENGTH
    return calendar, z[half:n - half] - trend


def seasonal_adjustment(z: np.ndarray, first: int) -> np.ndarray:
    """Month-of-year effects of a (log) series, indexed by calendar month 0-11.

    Classical decomposition: each calendar month's effect is the mean of its
    deviations from the trend (`seasonal_deviations`), centred on zero.
    """
    means, _ = _month_means(*seasonal_deviations(z, first))
    return means - means.mean()


def _month_means(calendar: np.ndarray, deviation: np.ndarray) -> tuple:
    """Each calendar month's mean deviation (0 for a month with none) and how many
    deviations each mean rests on."""
    counts = np.bincount(calendar, minlength=SEASON_LENGTH)
    sums = np.bincount(calendar, weights=deviation, minlength=SEASON_LENGTH)
    return sums / np.maximum(counts, 1), counts


# Smoothing parameters tried by the exponential-smoothing models: a grid searched
# all at once (one numpy pass over the months for every combination) is cheaper and
# steadier on short histories than a numerical optimiser.
_ALPHAS = np.linspace(0.05, 1.0, 20)
_BETAS = np.array([0.01, 0.03, 0.06, 0.1, 0.2])
_PHIS = np.array([0.8, 0.85, 0.9, 0.95, 0.98])


def _ses(a: np.ndarray, alphas: np.ndarray) -> tuple:
    """Simple exponential smoothing of `a` for every alpha at once: the sums of
    squared one-month-ahead errors, the one-month-ahead forecasts month by month
    (the first month forecasts itself), and the final level."""
    level = np.full(len(alphas), a[0])
    sse = np.zeros(len(alphas))
    path = [level]
    for value in a[1:]:
        path.append(level)
        error = value - level
        sse += error ** 2
        level = level + alphas * error
    return sse, np.array(path), level


def _damped(a: np.ndarray, alpha, beta, phi) -> tuple:
    """Additive damped-trend smoothing of `a` for arrays of parameters at once: the
    sums of squared one-month-ahead errors, the one-month-ahead forecasts month by
    month (the first month forecasts itself), and the final level and slope."""
    level = np.full(alpha.shape, a[0])
    slope = np.full(alpha.shape, a[1] - a[0])
    sse = np.zeros(alpha.shape)
    path = [level]
    for value in a[1:]:
        forecast = level + phi * slope
        path.append(forecast)
        error = value - forecast
        sse += error ** 2
        level = forecast + alpha * error
        slope = phi * slope + alpha * beta * error
    return sse, np.array(path), level, slope


# "theta": simple exponential smoothing plus half the straight-line slope of the
# adjusted series (the Theta method's drift), a trend that keeps going gently.
# "damped": a smoothed level and slope whose slope fades by a factor `phi` each month
# ahead, so a recent turn bends the forecast but does not run away.
SMOOTHING_TRENDS = ("theta", "damped")


def _check_trend(trend: str) -> None:
    if trend not in SMOOTHING_TRENDS:
        raise ValueError(f"Unknown smoothing trend {trend!r}; choose one of: "
                         f"{', '.join(SMOOTHING_TRENDS)}.")


class SmoothingForecaster(RegressorMixin, BaseEstimator):
    """Exponential smoothing of seasonally adjusted log sales (`trend`: one of
    `SMOOTHING_TRENDS`).

    z = log1p(sales) loses its month-of-year effects (`seasonal_adjustment`); what is
    left is smoothed and extrapolated, then the effects are added back. The
    smoothing parameters are those with the smallest one-month-ahead squared error
    on the history, searched on a fixed grid. In-history months answer with the
    one-month-ahead fitted values, months before the history with the first month.
    Sales must be non-negative (log1p).
    """

    def __init__(self, trend: str = "theta"):
        self.trend = trend

    def fit(self, X, y):
        _check_trend(self.trend)
        first, z = _log_history(X, y, 2 * SEASON_LENGTH, type(self).__name__)
        return self._fit_log(first, z, seasonal_adjustment(z, first))

    def _fit_log(self, first: int, z: np.ndarray, effects: np.ndarray):
        """Fit on log sales `z` from month `first` without the month-of-year
        `effects`."""
        self.first_, self.effects_ = first, effects
        adjusted = z - self.effects_[(self.first_ + np.arange(len(z))) % SEASON_LENGTH]
        if self.trend == "theta":
            sse, path, levels = _ses(adjusted, _ALPHAS)
            best = int(np.argmin(sse))
            self.alpha_, self.level_ = float(_ALPHAS[best]), float(levels[best])
            self.slope_ = float(np.polyfit(np.arange(len(z)), adjusted, 1)[0]) / 2
            # The drift of the Theta method h months ahead is slope * (h + offset).
            self.offset_ = (1 - (1 - self.alpha_) ** len(z)) / self.alpha_ - 1
        else:
            alpha, beta, phi = (g.ravel() for g in np.meshgrid(_ALPHAS, _BETAS, _PHIS))
            sse, path, levels, slopes = _damped(adjusted, alpha, beta, phi)
            best = int(np.argmin(sse))
            self.alpha_, self.beta_, self.phi_ = (float(alpha[best]), float(beta[best]),
                                                  float(phi[best]))
            self.level_, self.slope_ = float(levels[best]), float(slopes[best])
        self.fitted_ = path[:, best]
        return self

    def _ahead(self, ahead: np.ndarray) -> np.ndarray:
        """Seasonally adjusted log sales `ahead` (>= 1) months after the history."""
        if self.trend == "theta":
            return self.level_ + self.slope_ * (ahead + self.offset_)
        fading = self.phi_ * (1 - self.phi_ ** ahead) / (1 - self.phi_)
        return self.level_ + fading * self.slope_

    def predict(self, X):
        months = months_of(X)
        last = self.first_ + len(self.fitted_) - 1
        level = self.fitted_[np.clip(months - self.first_, 0, len(self.fitted_) - 1)]
        ahead = months > last
        level[ahead] = self._ahead((months[ahead] - last).astype(np.float64))
        calendar = np.maximum(months, self.first_) % SEASON_LENGTH
        return np.expm1(np.clip(level + self.effects_[calendar], -50.0, 50.0))


def shrunk_effects(deviations: dict, shapers=None) -> tuple[dict, dict]:
    """Month-of-year effects of every series of a file, each moved towards the
    file's mean profile as far as its own noise warrants, and the share of its own
    effects each series keeps. The mean profile is that of the series named in
    `shapers` (all of them by default, or when none of those is in `deviations`).

    `deviations` maps a series to `seasonal_deviations` of its log sales. A
    series' own effects are those of `seasonal_adjustment`; each is the mean of a
    few deviations, so its noise (estimation variance) is the spread of the
    deviations around their month's mean divided by how many there are. How far
    the series' true season lies from the mean profile is its own effects' mean
    squared distance from it less that noise (never below 0). A series keeps the
    share distance / (distance + noise) of its own effects, a James-Stein weight
    per series: a noisy season close to the others' leans on them, a season
    clearly its own (a college town's) keeps it. A file of one series keeps its
    own effects.

    Approximations: a series takes part in the mean it is compared with, so in a
    file of a few series its distance is understated and it leans on the others a
    little more than the reasoning above says; and when no series has more than
    one year of deviations (a file of 24-month histories) no noise can be measured,
    so none is assumed and every series keeps its own effects.
    """
    own, variance, inverse_count = {}, {}, {}
    for name, (calendar, deviation) in deviations.items():
        means, counts = _month_means(calendar, deviation)
        own[name] = means - means.mean()
        residuals = deviation - means[calendar]
        freedom = len(deviation) - np.count_nonzero(counts)
        variance[name] = residuals @ residuals / freedom if freedom > 0 else np.nan
        inverse_count[name] = np.mean(1 / np.maximum(counts, 1))
    if len(own) < 2:
        return own, dict.fromkeys(own, 1.0)

    # A series with one year of deviations shows no spread of its own: it is
    # taken to be as noisy as the file's other series are on average.
    known = [v for v in variance.values() if np.isfinite(v)]
    typical = float(np.mean(known)) if known else 0.0
    shaping = [own[name] for name in own if shapers is None or name in shapers]
    mean_profile = np.mean(shaping or list(own.values()), axis=0)
    effects, weights = {}, {}
    for name, profile in own.items():
        noise = inverse_count[name] * (variance[name] if np.isfinite(variance[name])
                                       else typical)
        seen = float(((profile - mean_profile) ** 2).mean())
        distance = max(0.0, seen - noise)
        weights[name] = distance / seen if seen > 0 else 1.0
        effects[name] = weights[name] * profile + (1 - weights[name]) * mean_profile
    return effects, weights


class PooledSmoothingForecaster(RegressorMixin, BaseEstimator):
    """`SmoothingForecaster` on every series of a file at once, with each series'
    month-of-year effects shrunk towards the file's mean profile (`shrunk_effects`).

    Series in one file (areas of one market, shops of one chain) mostly share a
    season, and a series' own effects are means of a handful of noisy years;
    the rest of the smoothing is each series' own. Takes rows with `date` and
    `series`. Series the smoothing cannot fit (too short, negative) are left out,
    as `PooledLagForecaster` leaves them, and cannot be asked about. In a file of
    one series it forecasts exactly as `SmoothingForecaster`.
    """

    def __init__(self, trend: str = "theta"):
        self.trend = trend

    def fit(self, X, y):
        _check_trend(self.trend)
        logs = {name: (first, np.log1p(values)) for name, (first, values)
                in _histories(X, y, lambda v: fits_on(self.trend, v)).items()}
        if not logs:
            raise ValueError(f"PooledSmoothingForecaster needs at least one series "
                             f"with {2 * SEASON_LENGTH} months of non-negative "
                             "sales; none has.")

        # A series of mostly zeros has a season of log jumps between nothing and
        # something: it may lean on the others', but must not shape theirs. Nor
        # may a series that never changes (a flat fee, a placeholder): its flat
        # profile is no measurement of the file's season, and would pull every
        # other series' season towards none.
        steady = {name for name, (_, z) in logs.items()
                  if np.mean(z == 0) < INTERMITTENT_SHARE and np.ptp(z) > 0}
        effects, self.weights_ = shrunk_effects(
            {name: seasonal_deviations(z, first) for name, (first, z) in logs.items()},
            steady)
        self.models_ = {name: SmoothingForecaster(trend=self.trend)._fit_log(
            first, z, effects[name]) for name, (first, z) in logs.items()}
        return self

    def predict(self, X):
        return _each_series(X, self.models_, type(self).__name__,
                            lambda name, rows: self.models_[name].predict(rows))


# Moving-average coefficients tried by the airline model, searched like the smoothing
# parameters: every (theta, seasonal theta) pair in one numpy pass over the months.
_MA = np.linspace(0.0, 0.95, 20)


def _airline_errors(w: np.ndarray, theta, big_theta) -> np.ndarray:
    """One-month-ahead errors e[t] of the airline model on the doubly differenced
    series `w`, for arrays of coefficients at once (rows: months). Errors before the
    first month are taken as zero (conditional sum of squares)."""
    e = np.zeros((len(w) + SEASON_LENGTH + 1, len(theta)))
    pad = SEASON_LENGTH + 1
    for t, value in enumerate(w, start=pad):
        e[t] = (value + theta * e[t - 1] + big_theta * e[t - SEASON_LENGTH]
                - theta * big_theta * e[t - SEASON_LENGTH - 1])
    return e[pad:]


class AirlineForecaster(RegressorMixin, BaseEstimator):
    """The airline model, ARIMA(0,1,1)(0,1,1)12 on log1p(sales), the classical
    benchmark for monthly seasonal series.

    The change of the yearly change, w[t] = (z[t] - z[t-1]) - (z[t-12] - z[t-13]),
    is taken as e[t] - theta e[t-1] - Theta e[t-12] + theta Theta e[t-13] with e a
    random shock. theta and Theta are the pair with the smallest sum of squared
    one-month-ahead errors on the history, searched on a fixed grid. Forecasts set
    future shocks to zero and undo the two differences, so the last trend and the
    recent seasonal shape carry forward, tempered by the smoothing the two
    coefficients imply. In-history months answer with the one-month-ahead fitted
    values (the first 13 months with themselves), months before the history with
    the first month. Sales must be non-negative (log1p).
    """

    def fit(self, X, y):
        self.first_, z = _log_history(X, y, 3 * SEASON_LENGTH, type(self).__name__)
        w = np.diff(z)[SEASON_LENGTH:] - np.diff(z)[:-SEASON_LENGTH]
        theta, big_theta = (g.ravel() for g in np.meshgrid(_MA, _MA))
        errors = _airline_errors(w, theta, big_theta)
        best = int(np.argmin((errors ** 2).sum(axis=0)))
        self.theta_, self.big_theta_ = float(theta[best]), float(big_theta[best])
        self.z_ = z
        # The last 13 shocks are all a forecast needs of the past errors.
        self.shocks_ = errors[-(SEASON_LENGTH + 1):, best]
        self.fitted_ = z.copy()
        self.fitted_[SEASON_LENGTH + 1:] -= errors[:, best]
        return self

    def _ahead(self, months: int) -> np.ndarray:
        """Log sales for the `months` months after the history."""
        z = np.r_[self.z_, np.zeros(months)]
        e = np.r_[self.shocks_, np.zeros(months)]
        n, pad = len(self.z_), SEASON_LENGTH + 1
        for h in range(months):
            t, k = n + h, pad + h
            w = (-self.theta_ * e[k - 1] - self.big_theta_ * e[k - SEASON_LENGTH]
                 + self.theta_ * self.big_theta_ * e[k - SEASON_LENGTH - 1])
            z[t] = z[t - 1] + z[t - SEASON_LENGTH] - z[t - SEASON_LENGTH - 1] + w
        return z[n:]

    def predict(self, X):
        months = months_of(X)
        last = self.first_ + len(self.z_) - 1
        level = self.fitted_[np.clip(months - self.first_, 0, len(self.z_) - 1)]
        ahead = months > last
        if ahead.any():
            path = self._ahead(int(months[ahead].max() - last))
            level[ahead] = path[months[ahead] - last - 1]
        return np.expm1(np.clip(level, -50.0, 50.0))


def _regression(season: bool, log: bool = False, recent: int | None = None):
    model = Pipeline([("calendar", CalendarFeatures(season=season)),
                      ("regression", LinearRegression())])
    if log:
        # numpy ufuncs, not lambdas: the artifact's unpickler builds only allowed
        # names. A runaway exponential is capped by SalesForecaster's ceiling.
        model = TransformedTargetRegressor(regressor=model, func=np.log1p,
                                           inverse_func=np.expm1, check_inverse=False)
    if recent:
        model = RecentWindow(model, months=recent)
    return model


RECENT_MONTHS = 48
# A series with at least this share of months at 0 is intermittent demand: the
# quality gate serves it apart (training/selection.py), and the shared season of
# `theta` and `damped` is not shaped by it.
INTERMITTENT_SHARE = 1 / 3
# Served forecasts are capped at this many times the largest month: a guard against
# overflow, not a judgement of plausibility. A known shortcoming: the backtest judges
# 1 to 12 months ahead only, so a trend carried further (a ramp-up that has just
# ended, a launch still growing) can climb towards the cap by month 60 unchecked.
CEILING_FACTOR = 100.0

# Named model kinds users can ask for. "linear" is the seed's regression of sales on
# a time index, kept so its scores can always be compared with the others.
MODEL_KINDS = {
    "seasonal": lambda: _regression(season=True),
    "log-seasonal": lambda: _regression(season=True, log=True),
    "recent-seasonal": lambda: _regression(season=True, recent=RECENT_MONTHS),
    "recent-log-seasonal": lambda: _regression(season=True, log=True,
                                               recent=RECENT_MONTHS),
    "linear": lambda: _regression(season=False),
    "seasonal-naive": SeasonalNaive,
    "mean": lambda: Pipeline([("calendar", CalendarFeatures(season=False)),
                              ("mean", DummyRegressor(strategy="mean"))]),
    "lag": LagForecaster,
    "pooled-lag": PooledLagForecaster,
    "theta": lambda: PooledSmoothingForecaster(trend="theta"),
    "damped": lambda: PooledSmoothingForecaster(trend="damped"),
    "airline": AirlineForecaster,
}
# Kinds fitted once on every series of a file rather than once per series.
POOLED_KINDS = frozenset({"pooled-lag", "theta", "damped"})
DEFAULT_MODEL = "seasonal"

# What a kind needs from a series' history before it may be fitted on it.
_LOG_KINDS = {"log-seasonal", "recent-log-seasonal", "lag", "pooled-lag", "theta",
              "damped", "airline"}
_MIN_MONTHS = {"seasonal-naive": 1, "mean": 1, "linear": 2,
               "seasonal": 2 * SEASON_LENGTH,
               "log-seasonal": 2 * SEASON_LENGTH, "recent-seasonal": 2 * SEASON_LENGTH,
               "recent-log-seasonal": 2 * SEASON_LENGTH,
               "lag": min_months_for_lags(12), "pooled-lag": min_months_for_lags(12),
               "theta": 2 * SEASON_LENGTH, "damped": 2 * SEASON_LENGTH,
               "airline": 3 * SEASON_LENGTH}


def fits_on(kind: str, sales: np.ndarray) -> bool:
    """Whether `kind` can be fitted on one series' history of `sales`."""
    if len(sales) < _MIN_MONTHS[kind]:
        return False
    return kind not in _LOG_KINDS or bool(np.min(sales) >= 0)


def make_model(kind: str):
    """A fresh, unfitted estimator of the named kind."""
    try:
        return MODEL_KINDS[kind]()
    except KeyError:
        allowed = ", ".join(sorted(MODEL_KINDS))
        raise ValueError(f"Unknown model kind {kind!r}; choose one of: "
                         f"{allowed}.") from None


def as_weights(spec) -> dict:
    """A series' model spec as {kind or estimator: weight}; weights sum to one."""
    if isinstance(spec, dict):
        total = float(sum(spec.values()))
        if not spec or total <= 0:
            raise ValueError(f"A blend of models needs positive weights, got {spec!r}.")
        return {kind: float(w) / total for kind, w in spec.items() if w > 0}
    return {spec: 1.0}


class UnitFactors(dict):
    """{series: factor} of a forecaster that fitted some series in a smaller unit
    (`SalesForecaster.units_`), where a plain dict would hold factors of 1 alone.

    The class is there for services of releases written before `units_` existed:
    they load such a model without dividing the factor out and answer a thousand
    times too much (or the forecast cap) as if nothing were wrong. Their allow-list
    unpickler does not know this name, so they refuse the model instead. Known
    shortcoming: releases that do divide it out but predate this class refuse the
    model too, although they would serve it right."""


class SalesForecaster(RegressorMixin, BaseEstimator):
    """The models of every series behind a single estimator over raw rows.

    `models` maps a series name to a model kind, an unfitted estimator, or a blend
    `{kind: weight}` (the forecast is the weighted mean of the kinds' forecasts);
    series not named there get `default`. Pooled kinds are fitted once on every
    series and shared. `predict` takes rows with `date` and `series` columns and
    routes each row to its series' models.

    When every training sale is non-negative, forecasts are floored at zero: a
    falling trend may not promise negative sales. Forecasts are also capped at
    `CEILING_FACTOR` times the largest absolute sale of the series, so that an
    exponential trend extrapolated for years stays a finite number.

    Every kind is fitted on sales whose gross errors (a stock-out month recorded as
    0, say) are replaced, so seasonal naive too repeats the replacement rather than
    the error; `cleaned_` lists them per series as (month number, recorded, used).
    Amounts in a large unit are fitted in a smaller one (`units_`, the factor from
    `features.log_unit`), so that the log models read them as they read counts.
    """

    def __init__(self, models=None, default=DEFAULT_MODEL):
        self.models = models
        self.default = default

    def fit(self, X: pd.DataFrame, y):
        y = np.asarray(y, dtype=np.float64)
        chosen = self.models or {}
        groups = X.groupby("series", sort=True).indices
        self.blends_ = {name: as_weights(chosen.get(name, self.default))
                        for name in groups}
        self.floor_ = 0.0 if len(y) and y.min() >= 0 else None

        months = months_of(X)
        fitting, self.cleaned_ = y.copy(), {}
        for name, rows in groups.items():
            fitting[rows], replaced = for_fitting(months[rows], y[rows])
            if replaced:
                self.cleaned_[name] = replaced
        # From the cleaned sales: a misplaced digit must not lift the cap with it.
        self.ceiling_ = {name: ceiling_for(fitting[rows])
                         for name, rows in groups.items()}
        # The models see each series in the unit its logs need (features.log_unit);
        # predict divides it out again. Judged on the sales as recorded, as the
        # gross-error check judges them: a replacement is rarely a whole number, and
        # must not make counts read as amounts.
        units = {name: log_unit(y[rows]) for name, rows in groups.items()}
        self.units_ = (units if all(f == 1.0 for f in units.values())
                       else UnitFactors(units))
        for name, rows in groups.items():
            fitting[rows] *= self.units_[name]

        self.pooled_ = {}
        needed = {k for blend in self.blends_.values() for k in blend}
        for kind in sorted(needed & POOLED_KINDS):
            # Learned from every series, also those that do not use it: more data.
            self.pooled_[kind] = make_model(kind).fit(X, fitting)

        self.models_ = {}
        for name, rows in groups.items():
            self.models_[name] = {
                self._key(spec): (self._fit_one(spec, X.iloc[rows], fitting[rows]), w)
                for spec, w in self.blends_[name].items()
            }
        self.series_ = list(self.models_)
        return self

    @staticmethod
    def _key(spec) -> str:
        return spec if isinstance(spec, str) else type(spec).__name__

    def _fit_one(self, spec, X, y):
        if isinstance(spec, str) and spec in POOLED_KINDS:
            return self.pooled_[spec]
        estimator = make_model(spec) if isinstance(spec, str) else clone(spec)
        return estimator.fit(X, y)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        out = np.empty(len(X), dtype=np.float64)
        for name, rows in X.groupby("series", sort=False).indices.items():
            if name not in self.models_:
                raise ValueError(
                    f"Unknown series {name!r}; this model knows "
                    f"{len(self.series_)} series: {', '.join(self.series_[:10])}"
                    + (", ..." if len(self.series_) > 10 else "")
                )
            part = X.iloc[rows]
            fitted = self.models_[name]
            # Versions written before blends held one estimator per series.
            parts = fitted.values() if isinstance(fitted, dict) else [(fitted, 1.0)]
            blend = sum(w * np.asarray(m.predict(part), dtype=np.float64)
                        for m, w in parts)
            # Versions written before `units_` existed fitted every series as given.
            blend = blend / getattr(self, "units_", {}).get(name, 1.0)
            out[rows] = bounded(blend, getattr(self, "floor_", None),
                                getattr(self, "ceiling_", {}).get(name, np.inf))
        return out


def bounded(values: np.ndarray, floor: float | None, ceiling: float) -> np.ndarray:
    """Forecasts kept within [floor, ceiling] (see SalesForecaster); NaN stays NaN so
    that a broken model is still caught by the checks downstream."""
    values = np.clip(np.nan_to_num(values, nan=np.nan, posinf=ceiling, neginf=-ceiling),
                     -ceiling, ceiling)
    return values if floor is None else np.maximum(values, floor)


def ceiling_for(sales: np.ndarray) -> float:
    """CEILING_FACTOR times the largest month of `sales` (1 for a series of zeros,
    so that the cap is never 0; a series in a large unit, 0.0025 a month, keeps a
    cap its own size)."""
    largest = float(np.abs(sales).max())
    return CEILING_FACTOR * (largest if largest > 0 else 1.0)
