"""Forecast error metrics (RMSE, MAE, MAPE, sMAPE, MASE) and MASE's scale, as the
backtest (`training.backtest`) and the benchmarks score with them; and
`holdout_scores`, one time-ordered holdout beside the baselines, which reproduces the
published baseline scores of the shared series (`tests/test_training.py`)."""

import math

import numpy as np
import pandas as pd

from training.models import SEASON_LENGTH, make_model

DEFAULT_HOLDOUT = 12
# Scored beside the model by `holdout_scores` (the backtest has its own list,
# `training.selection.BASELINES`).
BASELINES = ("seasonal-naive", "linear")


def seasonal_scale(history: np.ndarray) -> float | None:
    """In-sample MAE of seasonal naive: the denominator of MASE.

    None when the history is too short for one seasonal difference or when it is
    exactly periodic (every month equals the one a year before), where MASE is
    undefined rather than infinite.
    """
    if len(history) <= SEASON_LENGTH:
        return None
    scale = float(np.mean(np.abs(history[SEASON_LENGTH:] - history[:-SEASON_LENGTH])))
    return scale if scale > 0 else None


def smape(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Symmetric MAPE in percent (0 to 200); a month where both are zero counts 0."""
    denominator = np.abs(actual) + np.abs(predicted)
    ratio = np.divide(2 * np.abs(predicted - actual), denominator,
                      out=np.zeros_like(denominator), where=denominator > 0)
    return float(np.mean(ratio) * 100)


def point_metrics(actual, predicted, scale) -> dict:
    """RMSE, MAE, MAPE (%), sMAPE (%) and MASE; undefined is None, never inf/NaN.

    MAPE is undefined as soon as one actual is zero: dropping those months would
    flatter the model, so the whole figure is reported as undefined instead.
    `scale` is the MASE denominator, one number or one per month (months of
    several series or cut-offs, each scaled by its own history); MASE is None
    when any scale is missing.
    """
    actual = np.asarray(actual, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    error = predicted - actual
    mae = float(np.mean(np.abs(error)))

    mape = None
    if np.all(actual != 0):
        mape = float(np.mean(np.abs(error / actual)) * 100)
    scale = np.broadcast_to(np.asarray(scale if scale is not None else np.nan,
                                       dtype=np.float64), error.shape)
    mase = None
    if np.all(np.isfinite(scale) & (scale > 0)):
        mase = float(np.mean(np.abs(error) / scale))

    return {
        "rmse": float(math.sqrt(np.mean(error**2))),
        "mae": mae,
        "mape": mape,
        "smape": smape(actual, predicted),
        "mase": mase,
    }


def holdout_scores(rows: pd.DataFrame, kind, holdout: int = DEFAULT_HOLDOUT) -> dict:
    """Fit on all but the last `holdout` months of one series; score those months.

    `rows` holds one series (`date`, `sales`) in time order. Returns the metrics of
    `kind` and of each baseline, all fitted on the same months and scored on the
    same held-out months.
    """
    train, test = rows.iloc[:-holdout], rows.iloc[-holdout:]
    scale = seasonal_scale(train["sales"].to_numpy())
    # The kinds fitted on a whole file at once tell its series apart by name.
    fields, asked = (part[["date"]].assign(series="holdout") for part in (train, test))

    scores = {}
    for name in dict.fromkeys([kind, *BASELINES]):
        model = make_model(name).fit(fields, train["sales"].to_numpy())
        predicted = model.predict(asked)
        scores[name] = point_metrics(test["sales"].to_numpy(), predicted, scale)
    return {
        "holdout_months": holdout,
        "train_end": train["date"].iloc[-1].strftime("%Y-%m"),
        "scores": scores,
    }
