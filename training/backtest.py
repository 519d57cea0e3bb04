"""Rolling-origin backtests: refit at several cut-offs, forecast the months after each.

A cut-off ("origin") is the last month a model may see. At each origin every
candidate is fitted on the months up to it and forecasts the next `horizon` months,
which are then compared with what really happened. Origins are calendar months
shared by all series of a file, so a pooled model sees every series cut at the same
moment, as it would in real life; nothing is ever shuffled.

The result is one tidy table, a row per (series, origin, months ahead), with the
actual value, the MASE scale of the series as known at that origin, and one column
of forecasts per candidate (NaN where a candidate cannot be fitted on that series).

Gross errors (training/cleaning.py) are kept out of both sides: every kind, the
baselines included, is fitted at each origin on the series with its gross errors
replaced, the MASE scale comes from that series too, and a month the whole history
marks as a gross error is not scored (no forecast can be judged by a stock-out or a
misplaced digit; scoring it would reward whichever model happened to copy it).
"""

import logging
import time

import numpy as np
import pandas as pd

from training.evaluate import seasonal_scale
from training.features import log_unit, month_index
from training.cleaning import for_fitting
from training.models import POOLED_KINDS, bounded, ceiling_for, fits_on, make_model

DEFAULT_HORIZON = 12
DEFAULT_ORIGINS = 8
# Months between consecutive origins: windows overlap, so every calendar month is
# forecast from several distances, and eight origins span three years of data.
DEFAULT_STEP = 3
KEY_COLUMNS = ["series", "origin", "horizon", "month", "actual", "scale"]
# A backtest still running after this many seconds (a file of hundreds of series)
# says how far it got after each origin, so a long run is not a silent one.
PROGRESS_AFTER = 10.0

log = logging.getLogger("training")


def with_months(frame: pd.DataFrame) -> pd.DataFrame:
    """The loader's frame plus an integer `month` column (months since year 0)."""
    if "month" in frame:
        return frame
    return frame.assign(month=month_index(frame["date"]))


def rolling_origins(frame: pd.DataFrame, count: int = DEFAULT_ORIGINS,
                    step: int = DEFAULT_STEP, horizon: int = DEFAULT_HORIZON,
                    end: int | None = None) -> list[int]:
    """`count` origins, oldest first; the newest leaves `horizon` months after it.

    `end` is the last month the backtest may use as an actual (default: the last
    month of the data), so an outer evaluation can run an inner backtest that never
    looks past its own cut-off.
    """
    if end is None:
        end = int(with_months(frame)["month"].max())
    newest = end - horizon
    return [newest - step * i for i in reversed(range(count))]


def run_backtest(frame: pd.DataFrame, kinds, origins, horizon: int = DEFAULT_HORIZON,
                 min_train: int = 2) -> pd.DataFrame:
    """Forecasts of every kind at every origin, beside the actuals; see module doc."""
    frame = with_months(frame)
    unscored = gross_error_months(frame)
    parts = []
    started = time.monotonic()
    for done, origin in enumerate(origins):
        elapsed = time.monotonic() - started
        if elapsed > PROGRESS_AFTER:
            log.info("backtest: %d of %d cut-offs done in %.0f s (%d series)", done,
                     len(origins), elapsed, frame["series"].nunique())
        train = frame[frame["month"] <= origin]
        test = frame[(frame["month"] > origin) & (frame["month"] <= origin + horizon)]
        lengths = train.groupby("series").size()
        # Every series with a history at the cut-off is fitted, as the served model
        # fits every series of the file: whether a series goes on after the cut-off
        # is not known then, and a pooled kind learns from all of them. Only the
        # series with months after it are scored.
        known = [s for s in lengths.index if lengths[s] >= min_train]
        tested = set(test["series"])
        names = [s for s in known if s in tested]
        if not names:
            continue
        test = test[test["series"].isin(names)]
        if unscored:
            test = test[[(s, m) not in unscored
                         for s, m in zip(test["series"], test["month"])]]
        train = train[train["series"].isin(known)]
        # What every kind is fitted on: each series cut here, its gross errors
        # replaced as the months up to this cut-off show them (`cleaned`), in the
        # unit the log models need (`fitted`, see features.log_unit).
        cleaned = train["sales"].to_numpy(dtype=np.float64, copy=True)
        fitted = np.empty_like(cleaned)
        train_months = train["month"].to_numpy()
        units = {}
        for name, rows in train.groupby("series", sort=True).indices.items():
            # The unit from the sales as recorded, as SalesForecaster takes it.
            units[name] = log_unit(cleaned[rows])
            cleaned[rows] = for_fitting(train_months[rows], cleaned[rows])[0]
            fitted[rows] = cleaned[rows] * units[name]
        train = train.assign(cleaned=cleaned, fitted=fitted)
        # Split once per origin: every kind reuses the same per-series pieces.
        train_parts = {s: r for s, r in train.groupby("series", sort=True)}
        test_rows = test.groupby("series", sort=False).indices
        test_parts = {s: test.iloc[r] for s, r in test_rows.items()}

        part = pd.DataFrame({
            "series": test["series"].to_numpy(), "origin": origin,
            "horizon": test["month"].to_numpy() - origin,
            "month": test["month"].to_numpy(), "actual": test["sales"].to_numpy(),
        })
        scales = {s: seasonal_scale(r["cleaned"].to_numpy())
                  for s, r in train_parts.items()}
        part["scale"] = [scales[s] if scales[s] else np.nan for s in part["series"]]
        for kind in kinds:
            part[kind] = _forecast(kind, train, train_parts, test_parts, test_rows,
                                   units, len(test))
        parts.append(part)
    if not parts:
        # No series is long enough for any cut-off (a file of short series only).
        # The columns keep their types so the float checks downstream (isfinite)
        # see an empty float table rather than an empty table of objects.
        types = {"series": object, "origin": int, "horizon": int, "month": int,
                 "actual": float, "scale": float} | {kind: float for kind in kinds}
        return pd.DataFrame(columns=KEY_COLUMNS + list(kinds)).astype(types)
    return pd.concat(parts, ignore_index=True)


def gross_error_months(frame: pd.DataFrame) -> set[tuple[str, int]]:
    """(series, month) of every month the whole history marks as a gross error."""
    months = frame["month"].to_numpy()
    sales = frame["sales"].to_numpy(dtype=np.float64)
    return {(name, month)
            for name, rows in frame.groupby("series", sort=False).indices.items()
            for month, _, _ in for_fitting(months[rows], sales[rows])[1]}


def _forecast(kind: str, train, train_parts: dict, test_parts: dict, test_rows: dict,
              units: dict, count: int) -> np.ndarray:
    """One kind's forecasts of the test rows, NaN where it cannot be fitted. The
    same estimators SalesForecaster would fit, in the same units, without
    re-splitting the frame."""
    out = np.full(count, np.nan)
    eligible = [s for s, r in train_parts.items()
                if fits_on(kind, r["cleaned"].to_numpy())]
    # A pooled kind learns from every series it fits; forecasts are made for those
    # with months to score (all of a series' months after the cut-off may be gross
    # errors, or it may have none).
    scored = [s for s in eligible if s in test_parts]
    if not scored:
        return out
    # The bounds SalesForecaster puts on what it serves, so the backtest scores
    # exactly what would be served.
    floor = 0.0 if train["sales"].min() >= 0 else None
    if kind in POOLED_KINDS:
        rows = train["series"].isin(eligible).to_numpy()
        pooled = make_model(kind).fit(train[rows], train["fitted"].to_numpy()[rows])
    for name in scored:
        piece = train_parts[name]
        if kind in POOLED_KINDS:
            model = pooled
        else:
            model = make_model(kind).fit(piece, piece["fitted"].to_numpy())
        forecast = model.predict(test_parts[name]) / units[name]
        out[test_rows[name]] = bounded(forecast, floor,
                                       ceiling_for(piece["cleaned"].to_numpy()))
    return out
