"""Scores on a time-ordered holdout, always beside the seasonal-naive baseline."""

import math

import numpy as np
import pandas as pd

from training.models import SEASON_LENGTH, make_model

DEFAULT_HOLDOUT = 12
# Compared with the chosen model on every series, whatever the user picked.
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


def point_metrics(actual, predicted, scale: float | None) -> dict:
    """RMSE, MAE, MAPE (%) and MASE; a metric that is undefined is None, never inf/NaN.

    MAPE is undefined as soon as one actual is zero: dropping those months would
    flatter the model, so the whole figure is reported as undefined instead.
    """
    actual = np.asarray(actual, dtype=np.float64)
    error = np.asarray(predicted, dtype=np.float64) - actual
    mae = float(np.mean(np.abs(error)))

    mape = None
    if np.all(actual != 0):
        mape = float(np.mean(np.abs(error / actual)) * 100)

    return {
        "rmse": float(math.sqrt(np.mean(error**2))),
        "mae": mae,
        "mape": mape,
        "mase": mae / scale if scale else None,
    }


def holdout_scores(rows: pd.DataFrame, kind, holdout: int = DEFAULT_HOLDOUT) -> dict:
    """Fit on all but the last `holdout` months of one series; score those months.

    `rows` holds one series (`date`, `sales`) in time order. Returns the metrics of
    `kind` and of each baseline, all fitted on the same months and scored on the
    same held-out months.
    """
    train, test = rows.iloc[:-holdout], rows.iloc[-holdout:]
    scale = seasonal_scale(train["sales"].to_numpy())

    scores = {}
    for name in dict.fromkeys([kind, *BASELINES]):
        model = make_model(name).fit(train[["date"]], train["sales"].to_numpy())
        predicted = model.predict(test[["date"]])
        scores[name] = point_metrics(test["sales"].to_numpy(), predicted, scale)
    return {
        "holdout_months": holdout,
        "train_end": train["date"].iloc[-1].strftime("%Y-%m"),
        "scores": scores,
    }
