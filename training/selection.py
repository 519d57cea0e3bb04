"""Which model serves each series, decided on the rolling-origin backtest.

The procedure, in order:

1. A series' length and zeros decide its tier. Fewer than `SEASONAL_MONTHS` months:
   the mean of its history (no season can be learned). Fewer than
   `BACKTEST_MONTHS`: seasonal naive, without a backtest (too short to test anything
   honestly). Zero in at least `INTERMITTENT_SHARE` (a third) of its months:
   intermittent demand, served by whichever of seasonal naive and the mean has the
   lower backtest MAE (MASE is often undefined there). Everything else is
   "regular".
2. Regular series get the requested kind; `auto` asks for the `blend`: the equal-
   weight mean of `BLEND_MEMBERS` (the members the series is long enough for).
   Averaging models that fail in different ways was the most robust choice on
   backtests that ended two and three years before the data does (see
   docs/forecast-quality.md); picking each series' past winner was not.
3. The quality gate: the requested model must beat seasonal naive on the backtest
   (lower MASE over the same months). For a file with several series the evidence
   is pooled across its regular series (mean of each series' MASE relative to
   seasonal naive): per-series verdicts from a few cut-offs flip too easily. When
   the requested model loses, every regular series of the group gets the candidate
   with the best pooled score instead; seasonal naive is the last resort and then
   each series says so. A series on which seasonal naive was exact at every
   backtest month (nothing inexact beats it) is served by it and left out of the
   pooled evidence. `scope="series"` judges and replaces series one by one.
"""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from training.models import INTERMITTENT_SHARE, MODEL_KINDS, SEASON_LENGTH, fits_on

AUTO = "auto"
BLEND = "blend"
NAIVE = "seasonal-naive"
MEAN = "mean"
BLEND_MEMBERS = ("log-seasonal", "recent-log-seasonal", "lag", "pooled-lag", "theta",
                 "damped")
# Fitted at every cut-off: the blend's members, the baselines, and the alternatives
# the gate may fall back on. `airline` (seasonal ARIMA) is one of those alternatives
# and not a member: in the blend it lost on the design backtests (see
# docs/forecast-quality.md), as a fallback it won where the blend failed the gate.
CANDIDATES = ("seasonal-naive", "linear", "seasonal", "mean") + BLEND_MEMBERS + (
    "airline",)
BASELINES = ("seasonal-naive", "linear")
# The loader refuses shorter series: six months is too little to call a history.
MIN_MONTHS = 6
SEASONAL_MONTHS = SEASON_LENGTH
BACKTEST_MONTHS = 3 * SEASON_LENGTH
GATE_SCOPES = ("group", "series")


class GateRefused(Exception):
    """The requested model does not beat seasonal naive and strict mode is on."""


@dataclass
class Choice:
    """What serves one series and why, as stored in the metadata."""

    tier: str
    label: str
    members: dict
    reason: str
    relative_mase: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"tier": self.tier, "model": self.label, "members": self.members,
                "reason": self.reason}


def tier_of(sales: np.ndarray) -> str:
    if len(sales) < SEASONAL_MONTHS:
        return "short-mean"
    if len(sales) < BACKTEST_MONTHS:
        return "short-naive"
    if np.mean(sales == 0) >= INTERMITTENT_SHARE:
        return "intermittent"
    return "regular"


def members_of(label: str, sales: np.ndarray) -> dict:
    """The kinds (with weights) a label stands for on a series of `sales`."""
    if label != BLEND:
        return {label: 1.0} if fits_on(label, sales) else {NAIVE: 1.0}
    usable = [k for k in BLEND_MEMBERS if fits_on(k, sales)]
    if not usable:
        return {NAIVE: 1.0}
    return {k: 1.0 / len(usable) for k in usable}


def add_blend(table: pd.DataFrame) -> pd.DataFrame:
    """The blend's backtest forecasts: the mean of the members available there."""
    members = table[list(BLEND_MEMBERS)].to_numpy()
    available = np.isfinite(members)
    total = np.where(available, members, 0.0).sum(axis=1)
    count = available.sum(axis=1)
    blend = np.divide(total, count, out=np.full(len(table), np.nan), where=count > 0)
    return table.assign(**{BLEND: blend})


def relative_score(rows: pd.DataFrame, column: str, base: str = NAIVE) -> float:
    """MASE of `column` over MASE of `base` on the months both forecast.

    Falls back to the ratio of MAEs where the MASE scale is undefined (a series
    with no seasonal change, or mostly zeros). NaN when they share no month; 1 when
    both are exact.
    """
    # On arrays: this runs per series and per column, thousands of times for a
    # file of hundreds of series, and frame filters cost milliseconds each.
    mine, bar = rows[column].to_numpy(np.float64), rows[base].to_numpy(np.float64)
    both = np.isfinite(mine) & np.isfinite(bar)
    if not both.any():
        return float("nan")
    actual = rows["actual"].to_numpy(np.float64)[both]
    scale = rows["scale"].to_numpy(np.float64)[both]
    weight = 1 / scale if (scale > 0).all() else 1.0
    own = float(np.mean(np.abs(mine[both] - actual) * weight))
    other = float(np.mean(np.abs(bar[both] - actual) * weight))
    if other == 0:
        return 1.0 if own == 0 else float("inf")
    return own / other


def choose(frame: pd.DataFrame, table: pd.DataFrame, requested: str,
           scope: str = "group") -> dict[str, Choice]:
    """The Choice for every series of `frame`; see the module doc for the rules."""
    if scope not in GATE_SCOPES:
        raise ValueError(f"Unknown gate scope {scope!r}; choose one of: "
                         f"{', '.join(GATE_SCOPES)}.")
    label = BLEND if requested == AUTO else requested
    sales = {s: r.to_numpy() for s, r in frame.groupby("series", sort=True)["sales"]}
    rows = dict(iter(table.groupby("series"))) if len(table) else {}
    choices, regular = {}, []
    for name, values in sales.items():
        tier = tier_of(values)
        if tier == "short-mean":
            choices[name] = Choice(tier, MEAN, {MEAN: 1.0}, (
                f"{len(values)} months, fewer than {SEASONAL_MONTHS}: no season to "
                "learn yet, so the mean of the history is served"))
        elif tier == "short-naive":
            choices[name] = Choice("short-naive", NAIVE, {NAIVE: 1.0}, (
                f"{len(values)} months, fewer than {BACKTEST_MONTHS}: too short to "
                "backtest, so seasonal naive is served"))
        elif name not in rows:
            choices[name] = Choice("short-naive", NAIVE, {NAIVE: 1.0},
                                   _unbacktested(frame, name, len(values)))
        elif tier == "intermittent":
            choices[name] = _intermittent(rows[name], values)
        else:
            regular.append(name)

    scores = {s: {c: relative_score(rows[s], c) for c in _columns(table)}
              for s in regular}
    exact = [s for s in regular if _naive_exact(rows[s])]
    if scope == "group" and len(exact) < len(regular):
        # Nothing inexact beats a seasonal naive that was exact, so such a series
        # would make the pooled ratio infinite and cost every other series of the
        # file the requested model: it is served seasonal naive and judged apart.
        for name in exact:
            choices[name] = Choice("regular", NAIVE, {NAIVE: 1.0}, (
                "seasonal naive was exact at every backtest month of this series "
                "(each month repeats the one a year before), which nothing inexact "
                "beats, so it serves; the file's other series are judged without "
                "it"), {k: _finite(v) for k, v in scores[name].items()})
        regular = [s for s in regular if s not in exact]
    if scope == "group" and regular:
        choices.update(_gate_group(regular, {s: scores[s] for s in regular}, label,
                                   sales))
    else:
        for name in regular:
            choices.update(_gate_group([name], {name: scores[name]}, label, sales))
    return dict(sorted(choices.items()))


def _unbacktested(frame: pd.DataFrame, name: str, months: int) -> str:
    """Why a series long enough to backtest got no backtest month."""
    dates = frame["date"]
    behind = _month(dates.max()) - _month(dates[frame["series"] == name].max())
    if behind > 0:
        return (f"{months} months, but it ends {behind} months before the file's last "
                "month, so none of the backtest's cut-offs (shared by the file's "
                "series) is followed by its months: seasonal naive is served without "
                "a backtest")
    return (f"{months} months, but the backtest's cut-offs leave it too little history "
            "before them: seasonal naive is served without a backtest")


def _month(date) -> int:
    return date.year * 12 + date.month - 1


def _columns(table: pd.DataFrame) -> list[str]:
    """The model columns of a backtest table: the candidates, a kind asked for by
    name that is not one of them, and the blend."""
    asked = [c for c in table if c in MODEL_KINDS and c not in CANDIDATES]
    return [c for c in (*CANDIDATES, *asked, BLEND) if c in table]


def _gate_group(names, scores, label, sales) -> dict[str, Choice]:
    pooled = pd.DataFrame(scores).T.mean(skipna=True)
    wanted = pooled.get(label, float("nan"))
    where = "over the file's series" if len(names) > 1 else "on this series"
    if np.isfinite(wanted) and wanted < 1:
        verdict, chosen = (f"beats seasonal naive on the backtest {where} "
                           f"(MASE ratio {wanted:.3f})"), label
    elif label == NAIVE:
        # Asked for by name: the bar itself, which the gate allows as a last resort.
        verdict = "seasonal naive, as asked: the bar the gate measures by"
        chosen = NAIVE
    else:
        # The seed's regression is a baseline to compare with, not a fallback.
        eligible = pooled.drop(labels=["linear"], errors="ignore").dropna()
        chosen = str(eligible.idxmin()) if len(eligible) else NAIVE
        if pooled.get(chosen, 1.0) >= 1:
            chosen = NAIVE
        if np.isnan(wanted):
            verdict = (f"{label} could not be fitted at any backtest cut-off {where} "
                       "(too little history before them), so it has no backtest to "
                       f"pass; replaced by {chosen}")
        elif np.isinf(wanted):
            verdict = (f"{label} does not beat seasonal naive on the backtest {where}: "
                       "seasonal naive was exact there, which nothing inexact beats; "
                       f"replaced by {chosen}")
        else:
            verdict = (f"{label} does not beat seasonal naive on the backtest {where} "
                       f"(MASE ratio {wanted:.3f}); replaced by {chosen}")
        if chosen == NAIVE:
            verdict += " as the last resort: no candidate beat it"
        else:
            verdict += f", the best candidate (MASE ratio {pooled[chosen]:.3f})"
    choices = {}
    for name in names:
        members = members_of(chosen, sales[name])
        served, why = chosen, verdict
        if chosen != BLEND and chosen not in members:
            served, why = NAIVE, (f"{verdict}; this series is too short for {chosen}, "
                                  "so seasonal naive serves it")
        elif len(names) > 1 and not np.isfinite(scores[name].get(chosen, np.nan)):
            why = (f"{verdict}; {chosen} itself could not be fitted at this series' "
                   "cut-offs (too little history before them), so its choice rests "
                   "on the other series")
        choices[name] = Choice("regular", served, members, why,
                               {k: _finite(v) for k, v in scores[name].items()})
    return choices


def _naive_exact(rows: pd.DataFrame) -> bool:
    """Whether seasonal naive forecast every backtest month of a series exactly."""
    bar, actual = rows[NAIVE].to_numpy(np.float64), rows["actual"].to_numpy(np.float64)
    known = np.isfinite(bar) & np.isfinite(actual)
    return bool(known.any()) and bool(np.all(bar[known] == actual[known]))


def _intermittent(rows: pd.DataFrame, values: np.ndarray) -> Choice:
    mae = {k: float((rows[k] - rows["actual"]).abs().mean()) for k in (NAIVE, MEAN)}
    chosen = min(mae, key=lambda k: (mae[k], k != NAIVE))
    share = float(np.mean(values == 0))
    return Choice("intermittent", chosen, {chosen: 1.0}, (
        f"{share:.0%} of its months are zero (intermittent demand): served by "
        f"{chosen}, "
        f"the lower backtest MAE of seasonal naive ({mae[NAIVE]:.4g}) and the mean "
        f"({mae[MEAN]:.4g})"))


def _finite(value) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def refusals(choices: dict[str, Choice], requested: str) -> list[str]:
    """Series whose requested model was replaced by the gate (strict mode refuses)."""
    label = BLEND if requested == AUTO else requested
    return [n for n, c in choices.items() if c.tier == "regular" and c.label != label]
