"""The whole training procedure on a loaded history, with no file or network I/O.

backtest every candidate -> choose and gate (`training.selection`) -> fit the chosen
models on all months -> calibrate intervals on the backtest errors
(`training.intervals`) -> scores for the metadata. The CLI publishes what this
returns; the quality benchmark runs it on histories cut at each evaluation origin, so
what is benchmarked is exactly what is published.
"""

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from training import backtest, intervals
from training.backtest import (DEFAULT_HORIZON, DEFAULT_STEP, rolling_origins,
                               run_backtest, with_months)
from training.cleaning import for_fitting
from training.evaluate import point_metrics
from training.models import MODEL_KINDS, SalesForecaster
from training.selection import (AUTO, BACKTEST_MONTHS, BASELINES, BLEND, CANDIDATES,
                                NAIVE, Choice, add_blend, choose)

# The service answers up to this many months after a history; intervals cover them.
FORECAST_MONTHS = 60
# Cut-offs of the backtest that training runs: six, three months apart, so with the
# default horizon the newest cut-off is 12 months before the end and the oldest 27.
# Four, ten and twelve were each worse on the design runs (docs/forecast-quality.md):
# more reach back into years unlike the months ahead, fewer judge on too little.
TRAINING_ORIGINS = 6
# Per-month backtest rows kept in the metadata for the page: the newest origin only.
PAGE_ORIGINS = 1

log = logging.getLogger("training")


@dataclass
class Outcome:
    model: SalesForecaster
    choices: dict[str, Choice]
    table: pd.DataFrame
    origins: list[int]
    intervals: dict
    evaluation: dict
    metrics: dict
    protocol: dict


def month_label(month: int) -> str:
    return f"{month // 12:04d}-{month % 12 + 1:02d}"


def candidate_kinds(requested: str) -> list[str]:
    kinds = list(CANDIDATES)
    if requested not in (AUTO, BLEND) and requested not in kinds:
        kinds.append(requested)
    return kinds


def fit_and_check(frame: pd.DataFrame, requested: str = AUTO, scope: str = "group",
                  horizon: int = DEFAULT_HORIZON, origins: int = TRAINING_ORIGINS,
                  step: int = DEFAULT_STEP) -> Outcome:
    """Backtest, choose, fit and calibrate; see the module doc."""
    if requested not in (AUTO, BLEND) and requested not in MODEL_KINDS:
        raise ValueError(f"Unknown model {requested!r}; choose auto, blend or one of: "
                         f"{', '.join(sorted(MODEL_KINDS))}.")
    frame = with_months(frame).sort_values(["series", "month"], ignore_index=True)
    cutoffs = rolling_origins(frame, origins, step, horizon)
    started = time.monotonic()
    table = run_backtest(frame, candidate_kinds(requested), cutoffs, horizon,
                         min_train=BACKTEST_MONTHS - horizon)
    table = add_blend(table)
    elapsed = time.monotonic() - started
    if elapsed > backtest.PROGRESS_AFTER:
        log.info("backtest: done in %.0f s; fitting the chosen models on every month "
                 "and calibrating the intervals (%d series)", elapsed,
                 frame["series"].nunique())

    choices = choose(frame, table, requested, scope)
    model = SalesForecaster(models={s: c.members for s, c in choices.items()})
    model.fit(frame[["date", "series"]], frame["sales"].to_numpy())
    table = table.assign(served=served_forecasts(table, choices))

    # The unit of each series' interval widths, from its sales as the models were
    # fitted on them: one gross error must not widen every interval with it.
    sales = {s: for_fitting(r["month"].to_numpy(), r["sales"].to_numpy())[0]
             for s, r in frame.groupby("series", sort=True)}
    interval_meta = calibrate_intervals(table, sales, horizon, model.floor_)
    scored = set(table["origin"].tolist())
    protocol = {"origins": [month_label(o) for o in cutoffs], "horizon": horizon,
                # The cut-offs that left some series enough history to be tested.
                "scored_origins": [month_label(o) for o in cutoffs if o in scored],
                "step_months": step, "refit_at_each_origin": True,
                "candidates": candidate_kinds(requested) + [BLEND]}
    positions = table.groupby("series", sort=False).indices
    evaluation = {s: series_evaluation(table.iloc[positions.get(s, [])], choices[s],
                                       protocol)
                  for s in choices}
    return Outcome(model=model, choices=choices, table=table, origins=cutoffs,
                   intervals=interval_meta, evaluation=evaluation,
                   metrics=overall_metrics(table, interval_meta), protocol=protocol)


def served_forecasts(table: pd.DataFrame, choices: dict, blends=None) -> np.ndarray:
    """Each row's forecast by the models serving its series: the weighted mean of
    the member columns available at that origin (a member a series was too short for
    at an early origin simply drops out there, as it would in the fit)."""
    out = np.full(len(table), np.nan)
    for name, rows in table.groupby("series").indices.items():
        members = blends[name] if blends is not None else choices[name].members
        columns = [k for k in members if k in table]
        if not columns:
            continue
        values = table.iloc[rows][columns].to_numpy(dtype=np.float64)
        weights = np.array([members[k] for k in columns])
        usable = np.isfinite(values)
        total = np.where(usable, values, 0.0) @ weights
        weight = usable @ weights
        out[rows] = np.divide(total, weight, out=np.full(len(rows), np.nan),
                              where=weight > 0)
    return out


def calibrate_intervals(table: pd.DataFrame, sales: dict, horizon: int,
                        floor: float | None) -> dict:
    scales = {s: intervals.series_scale(v) for s, v in sales.items()}
    rows = table[np.isfinite(table["served"])]
    errors = intervals.scaled_errors(rows, "served", scales)
    quantiles = intervals.calibrate(errors, horizon)
    coverage = (intervals.coverage(errors, rows, "served", scales, horizon, floor)
                if quantiles else {"measured": False, "reason": "no backtest errors"})
    # Named as the protocol's origins are, not as the month numbers they are counted in.
    for key in ("calibration_origins", "test_origins"):
        if key in coverage:
            coverage[key] = [month_label(origin) for origin in coverage[key]]

    counts = intervals.errors_per_months_ahead(errors, horizon) if quantiles else []
    widest = {str(level): [h for h, n in enumerate(counts, 1)
                           if n < intervals.fewest_errors(level)]
              for level in intervals.LEVELS}
    per_series = {}
    backtested = set(rows["series"])
    for name, values in sales.items():
        calibrated = quantiles is not None and name in backtested
        q = quantiles if calibrated else intervals.in_sample_quantiles(values, horizon)
        widths = intervals.half_widths(q, scales[name], FORECAST_MONTHS)
        per_series[name] = {"calibrated": calibrated, "scale": scales[name],
                            **{str(level): w for level, w in widths.items()}}
    return {
        "levels": list(intervals.LEVELS),
        "method": "split-conformal quantiles of backtest errors scaled by each "
                  "series' MASE scale, per months ahead (pooled with the neighbouring "
                  f"months ahead, over the file's series); beyond {horizon} months "
                  "the width grows with the square root of the months ahead "
                  "(assumed, not measured)",
        "clipped_at_zero": floor is not None,
        # The quantiles rest on this many errors per months ahead; where a level
        # needs more, its half-width is the widest error seen (months ahead listed).
        "errors_per_months_ahead": counts,
        "widest_seen": {level: h for level, h in widest.items() if h},
        "coverage": coverage,
        "series": per_series,
    }


def scores_of(rows: pd.DataFrame, column: str) -> dict | None:
    return finite_scores(rows["actual"].to_numpy(np.float64),
                         rows[column].to_numpy(np.float64),
                         rows["scale"].to_numpy(np.float64))


def finite_scores(actual: np.ndarray, forecast: np.ndarray,
                  scale: np.ndarray) -> dict | None:
    """Point metrics of the months with a forecast; None if there is none."""
    usable = np.isfinite(forecast)
    if not usable.any():
        return None
    return point_metrics(actual[usable], forecast[usable], scale[usable])


def per_horizon(rows: pd.DataFrame, column: str) -> list:
    # On arrays, not frames: per series, per column and per months ahead this runs
    # thousands of times for a file of hundreds of series.
    ahead = rows["horizon"].to_numpy()
    actual, scale = (rows[c].to_numpy(np.float64) for c in ("actual", "scale"))
    forecast = rows[column].to_numpy(np.float64)
    return [finite_scores(actual[at], forecast[at], scale[at])
            for h in np.unique(ahead) for at in [ahead == h]]


def series_evaluation(rows: pd.DataFrame, choice: Choice, protocol: dict) -> dict:
    """The backtest scores of one series; `rows` are its rows of the table."""
    result = {"served": choice.label, "tier": choice.tier, "reason": choice.reason,
              "backtest": {**protocol, "months_scored": int(len(rows))},
              # Kept for readers of the earlier holdout layout.
              "holdout_months": protocol["horizon"],
              "train_end": protocol["origins"][-1] if protocol["origins"] else None,
              "scores": {}, "per_horizon": {}, "relative_mase": choice.relative_mase}
    if rows.empty:
        return result
    columns = [c for c in (*CANDIDATES, BLEND) if c in rows]
    result["scores"] = {c: s for c in columns if (s := scores_of(rows, c)) is not None}
    result["scores"][choice.label] = scores_of(rows, "served")
    for column in dict.fromkeys([choice.label, *BASELINES]):
        source = "served" if column == choice.label else column
        result["per_horizon"][column] = per_horizon(rows, source)
    return result


def overall_metrics(table: pd.DataFrame, interval_meta: dict) -> dict:
    """The served model's backtest scores over every series, beside the baselines."""
    rows = table[np.isfinite(table["served"]) & np.isfinite(table[NAIVE])]
    if rows.empty:
        return {"backtest_months": 0}
    served, naive = scores_of(rows, "served"), scores_of(rows, NAIVE)
    linear = scores_of(rows, "linear") if rows["linear"].notna().all() else None
    scaled = (rows["scale"] > 0).to_numpy()  # NaN compares False
    left_out = []
    if scaled.any() and not scaled.all():
        # A series whose months repeat the year before has no MASE scale: MASE is
        # given over the other months, not left undefined for the whole file.
        left_out = sorted(set(rows["series"][~scaled]))
        for column, scores in (("served", served), (NAIVE, naive), ("linear", linear)):
            if scores is not None:
                scores["mase"] = scores_of(rows[scaled], column)["mase"]
    coverage = interval_meta["coverage"]
    return {
        "backtest_months": int(len(rows)),
        "served": served, "seasonal-naive": naive, "linear": linear,
        "mase_leaves_out": left_out,
        "relative_rmse": served["rmse"] / naive["rmse"] if naive["rmse"] else None,
        "coverage_80": coverage.get("80"), "coverage_95": coverage.get("95"),
    }


def backtest_rows_for_page(table: pd.DataFrame, choices: dict) -> dict:
    """The newest origin's forecasts per series, as rows a chart can draw."""
    newest = sorted(table["origin"].unique())[-PAGE_ORIGINS:] if len(table) else []
    out = {}
    for name, rows in table[table["origin"].isin(newest)].groupby("series"):
        label = choices[name].label
        out[name] = {"origin": month_label(int(rows["origin"].iloc[0])), "rows": [
            {"date": month_label(int(m)) + "-01", "actual": float(a),
             label: _number(s), NAIVE: _number(n)}
            for m, a, s, n in zip(rows["month"], rows["actual"], rows["served"],
                                  rows[NAIVE])]}
    return out


def _number(value) -> float | None:
    return float(value) if np.isfinite(value) else None


def compare_with_served(frame: pd.DataFrame, outcome: Outcome,
                        served_blends: dict) -> dict:
    """The new and the served choice of models on this backtest, on the series both
    know: MASE over the same months (MAE where MASE is undefined). `served_blends`
    maps a series to {kind: weight} as the served version fitted it.

    Months with no MASE scale (of a series whose every month repeats the one a
    year before) are compared apart, by MAE, under "unscaled": taken in with the
    others they made the whole comparison MAE, where the largest series outweighs
    all the rest."""
    common = sorted(set(served_blends) & set(outcome.choices))
    table = outcome.table[outcome.table["series"].isin(common)]
    kinds = {k for s in common for k in served_blends[s]}
    unknown = sorted(str(k) for k in kinds if k not in MODEL_KINDS)
    if unknown:
        return {"series": common, "comparable": False,
                "reason": f"the served version uses models this code does not know "
                          f"({', '.join(unknown)})"}
    missing = sorted(k for k in kinds if k not in table)
    if missing and len(table):
        extra = run_backtest(with_months(frame[frame["series"].isin(common)]), missing,
                             outcome.origins, outcome.protocol["horizon"],
                             min_train=BACKTEST_MONTHS - outcome.protocol["horizon"])
        table = table.merge(extra[["series", "origin", "month", *missing]],
                            on=["series", "origin", "month"], how="left")

    table = table.assign(old=served_forecasts(table, None, served_blends))
    rows = table[np.isfinite(table["old"]) & np.isfinite(table["served"])]
    if rows.empty:
        return {"series": common, "comparable": False,
                "reason": "no backtest month is forecast by both versions"}
    scaled = (rows["scale"] > 0).to_numpy()  # NaN compares False
    result = {"series": common, "comparable": True,
              **_not_worse(rows[scaled] if scaled.any() else rows)}
    if scaled.any() and not scaled.all():
        unscaled = rows[~scaled]
        result["unscaled"] = {"series": sorted(set(unscaled["series"])),
                              **_not_worse(unscaled)}
        result["scaled_not_worse"] = result["not_worse"]
        result["not_worse"] = (result["not_worse"]
                               and result["unscaled"]["not_worse"])
    return result


def _not_worse(rows: pd.DataFrame) -> dict:
    """The new ("served" column) and the served version ("old") on `rows`: MASE,
    or MAE where some month has no scale."""
    new_score, old_score = scores_of(rows, "served"), scores_of(rows, "old")
    key = "mase" if new_score["mase"] is not None else "mae"
    return {"metric": key, "new": new_score[key], "served": old_score[key],
            "months": int(len(rows)), "scored_series": int(rows["series"].nunique()),
            "not_worse": new_score[key] <= old_score[key] * (1 + 1e-9)}
