"""Prediction intervals from backtest errors, per months ahead, split-conformal style.

Errors of the served model on the backtest are divided by their series' MASE scale
(the typical size of a year-on-year change), so series of any size can share them.
For each number of months ahead h, the interval half-width is the empirical
quantile of the scaled errors at h and its neighbours (h-1, h+1: a dozen origins
alone give too few errors per month), with the finite-sample rank of split conformal
prediction, ceil((n + 1) * level) of n; widths never shrink as h grows. A series'
interval is the point forecast plus or minus that quantile times its own scale.

Beyond the backtested horizon the width grows like the square root of the months
ahead, from the last calibrated width: an assumption (errors of a random walk), not a
measurement, and the metadata says so.

Coverage is measured honestly: quantiles calibrated on the older half of the
backtest origins are checked against the actuals of the newer half. The intervals
that are served are then calibrated on all origins.

A known shortcoming of pooling: in a file whose series err very differently in
their own units (a ramp or a level shift next to steady series), the one with the
largest scaled errors widens every series' bands, and the coverage measured over the
file hides it. Quantiles per series would need more backtest origins than the
backtest has (19 errors per months ahead for a 95% rank).

Bounds are clipped at zero when sales cannot be negative (all history non-negative),
which makes the lower bound conservative there: the stated coverage is measured
after clipping.
"""

import math

import numpy as np
import pandas as pd

from training.evaluate import seasonal_scale

LEVELS = (80, 95)
NEIGHBOURS = 1


def series_scale(sales: np.ndarray) -> float:
    """The unit of a series' errors: the MASE scale, else a cruder spread, else 1;
    0 for a series that never changes, whose bands are then 0 wide, as its errors
    were (its level is no spread: the file's pooled quantiles times its level made
    its bands wider than its level)."""
    if len(sales) and np.ptp(sales) == 0:
        return 0.0
    scale = seasonal_scale(sales)
    if scale:
        return scale
    if len(sales) > 1 and np.mean(np.abs(np.diff(sales))) > 0:
        return float(np.mean(np.abs(np.diff(sales))))
    if np.mean(np.abs(sales)) > 0:
        return float(np.mean(np.abs(sales)))
    return 1.0


def scaled_errors(rows: pd.DataFrame, column: str, scales: dict) -> pd.DataFrame:
    """Absolute errors of `column` in units of each row's scale (at its origin where
    defined, the series' whole-history scale otherwise)."""
    scale = rows["scale"].to_numpy(dtype=np.float64)
    fallback = rows["series"].map(scales).to_numpy(dtype=np.float64)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, fallback)
    error = np.abs(rows[column].to_numpy(dtype=np.float64) - rows["actual"].to_numpy())
    # A series that never changes has no unit (scale 0): its errors, 0 or not, say
    # nothing of the others' and are left out of the pool.
    scaled = np.divide(error, scale, out=np.full(len(error), np.nan), where=scale > 0)
    out = pd.DataFrame({"series": rows["series"].to_numpy(),
                        "origin": rows["origin"].to_numpy(),
                        "horizon": rows["horizon"].to_numpy(), "error": scaled})
    return out[np.isfinite(out["error"])]


def conformal_quantile(values: np.ndarray, level: int) -> float:
    """The ceil((n+1) * level)-th smallest of n values (the largest when that rank
    is past n, fewer than fewest_errors(level): too few values to promise the level,
    so the widest seen is used, and the metadata says where)."""
    values = np.sort(values)
    rank = math.ceil((len(values) + 1) * level / 100)
    return float(values[min(rank, len(values)) - 1])


def fewest_errors(level: int) -> int:
    """The fewest errors whose conformal quantile at `level` is not simply the widest
    one seen: 4 for 80%, 19 for 95%."""
    return math.ceil(level / (100 - level))


def errors_per_months_ahead(errors: pd.DataFrame, horizon: int) -> list[int]:
    """How many scaled errors each months-ahead quantile of `calibrate` rests on."""
    ahead = errors["horizon"].to_numpy()
    return [int(np.sum(np.abs(ahead - h) <= NEIGHBOURS)) for h in range(1, horizon + 1)]


def thin_levels(metadata: dict) -> list[str]:
    """A sentence per level whose half-width is the widest error seen somewhere, from
    the `intervals` metadata (older versions lack the keys: nothing to say)."""
    counts = metadata.get("errors_per_months_ahead") or []
    sentences = []
    for level, ahead in metadata.get("widest_seen", {}).items():
        seen = sorted({counts[h - 1] for h in ahead})
        errors = (f"{seen[0]}" if len(seen) == 1 else f"{seen[0]} to {seen[-1]}")
        months = ("every month ahead" if len(ahead) == len(counts)
                  else f"{len(ahead)} of {len(counts)} months ahead")
        sentences.append(
            f"the {level}% half-width is the widest of {errors} backtest errors at "
            f"{months} (a {level}% promise needs {fewest_errors(int(level))}; a "
            "longer history or more series give more)")
    return sentences


def equal_bands(metadata: dict) -> list[str]:
    """The series, from the `intervals` metadata, whose 80% and 95% bands are the
    same width: series without a backtest whose few months of spread give both
    levels the widest one seen (see `in_sample_quantiles`). A constant series, whose
    bands are all 0 wide, is not one of them."""
    return [name for name, widths in metadata.get("series", {}).items()
            if not widths.get("calibrated", True) and any(widths.get("80") or [])
            and widths["80"] == widths.get("95")]


def equal_bands_sentence(names: list[str], shown: str) -> str:
    """What `equal_bands` found, said once for the summary and the report; `shown`
    is the names as the caller lists them."""
    return (f"the 80% and 95% bands are the same width for {len(names)} series too "
            f"short to tell the two levels apart (not calibrated): {shown}")


def short_levels(coverage: dict) -> list[str]:
    """A sentence per level whose measured coverage fell more than two standard errors
    (of a share of that many months) below the level: the bands were too narrow for
    the months they were checked on, more than chance explains."""
    if not coverage.get("measured") or not coverage.get("months"):
        return []
    sentences = []
    for level in LEVELS:
        share, promised = coverage.get(str(level)), level / 100
        if share is None:
            continue
        spread = math.sqrt(promised * (1 - promised) / coverage["months"])
        if share < promised - 2 * spread:
            sentences.append(
                f"the {level}% interval held only {share:.0%} of the later backtest "
                f"months, well below {level}%: expect the bands to be too narrow for "
                "this data")
    return sentences


def calibrate(errors: pd.DataFrame, horizon: int) -> dict[int, np.ndarray] | None:
    """Scaled half-widths per level for months ahead 1..horizon; None without data."""
    if errors.empty:
        return None
    quantiles = {}
    for level in LEVELS:
        q = np.empty(horizon)
        for h in range(1, horizon + 1):
            near = errors["error"][(errors["horizon"] - h).abs() <= NEIGHBOURS]
            q[h - 1] = (conformal_quantile(near.to_numpy(), level) if len(near)
                        else np.nan)
        q = pd.Series(q).ffill().bfill().to_numpy()
        quantiles[level] = np.maximum.accumulate(q)
    return quantiles


# Year-on-year changes an uncalibrated interval needs before it rests on them: fewer
# (a series of 13 to 23 months) would make a 95% band of one or two changes, narrower
# than the deviations from the mean a series of 12 months gets.
MIN_CHANGES = 12


def in_sample_quantiles(sales: np.ndarray, horizon: int) -> dict[int, np.ndarray]:
    """For a series too short to backtest: the spread of its own year-on-year changes
    when it has at least MIN_CHANGES of them, else of its deviations from its mean,
    flat over the horizon. Not calibrated."""
    if len(sales) - 12 >= MIN_CHANGES:
        spread = np.abs(sales[12:] - sales[:-12])
    else:
        spread = np.abs(sales - sales.mean())
    scale = series_scale(sales)
    spread = spread / scale if scale else np.zeros(len(spread))
    return {level: np.full(horizon, conformal_quantile(spread, level))
            for level in LEVELS}


def half_widths(quantiles: dict, scale: float, months: int) -> dict[int, list]:
    """Half-widths for 1..months ahead in sales units; beyond the calibrated horizon
    they grow with the square root of the months ahead."""
    out = {}
    ahead = np.arange(1, months + 1)
    for level, q in quantiles.items():
        widths = q[-1] * np.sqrt(ahead / len(q))
        known = min(len(q), months)
        widths[:known] = q[:known]
        out[level] = (widths * scale).tolist()
    return out


def coverage(errors: pd.DataFrame, rows: pd.DataFrame, column: str, scales: dict,
             horizon: int, floor: float | None) -> dict:
    """Calibrate on the older half of the origins, count hits on the newer half."""
    origins = sorted(errors["origin"].unique())
    if len(origins) < 2:
        return {"measured": False, "reason": "fewer than two backtest origins"}
    split = origins[(len(origins) + 1) // 2 - 1]
    quantiles = calibrate(errors[errors["origin"] <= split], horizon)
    test = rows[(rows["origin"] > split) & np.isfinite(rows[column])]
    scale = test["scale"].to_numpy(dtype=np.float64)
    fallback = test["series"].map(scales).to_numpy(dtype=np.float64)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, fallback)
    point = test[column].to_numpy(dtype=np.float64)
    actual = test["actual"].to_numpy(dtype=np.float64)
    index = test["horizon"].to_numpy() - 1

    result = {"measured": True, "months": int(len(test)),
              "calibration_origins": [int(o) for o in origins if o <= split],
              "test_origins": [int(o) for o in origins if o > split]}
    for level, q in quantiles.items():
        lower, upper = bounds(point, q[index] * scale, floor)
        result[str(level)] = float(np.mean((actual >= lower) & (actual <= upper)))
    return result


def bounds(point, half_width, floor: float | None):
    """Lower and upper bounds around `point`; the lower one clipped at `floor`."""
    lower = point - half_width
    if floor is not None:
        lower = np.maximum(lower, floor)
    return np.minimum(lower, point), point + half_width
