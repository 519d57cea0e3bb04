"""Each model kind alone, out of sample, on the design cuts only.

`bench/quality.py` scores the whole procedure; this shows its parts. At each design
cut (a file cut N months before its last month, N >= 24 so that no scored month is
one the evaluation in `bench/quality.py` scores) and each of its five origins, every
kind below is fitted on the months up to the origin, without a backtest or a gate,
and forecasts the next 12. Printed per file: each kind's mean MASE ratio to seasonal
naive over the series (and how many series it beats it on), the six-member blend
computed as the mean of the members' forecasts, and that blend with each member left
out in turn.

    python bench/members.py [FILE ...] [--before 24 36 48 60]

Without files it runs the three shared series. It refuses cuts under 24 months: the
evaluation windows are scored by `make bench-quality` alone.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.quality import DEFAULT_FILES, HORIZON, SHARED, load  # noqa: E402
from training.backtest import rolling_origins  # noqa: E402
from training.evaluate import seasonal_scale  # noqa: E402
from training.models import SalesForecaster  # noqa: E402
from training.selection import BLEND_MEMBERS, NAIVE  # noqa: E402

# The evaluation's newest scored month is the file's last; its oldest origin is 24
# months before it. A design cut of at least this many months never reaches it.
MIN_CUT = 24
KINDS = (NAIVE, "linear", "seasonal", *BLEND_MEMBERS, "airline")


def forecasts(frame: pd.DataFrame, cut: int) -> pd.DataFrame:
    """Every kind's 12-month forecasts from each origin of one design cut."""
    frame = frame[frame["month"] <= frame["month"].max() - cut]
    parts = []
    for origin in rolling_origins(frame, 5, 3, HORIZON):
        history = frame[frame["month"] <= origin]
        ahead = frame[(frame["month"] > origin) & (frame["month"] <= origin + HORIZON)]
        rows = ahead[["series", "date", "sales"]].copy()
        query = rows[["date", "series"]]
        for kind in KINDS:
            model = SalesForecaster(default=kind).fit(history[["date", "series"]],
                                                      history["sales"])
            rows[kind] = model.predict(query)
        scales = {s: seasonal_scale(v.to_numpy())
                  for s, v in history.groupby("series")["sales"]}
        rows["scale"] = rows["series"].map(scales)
        parts.append(rows)
    rows = pd.concat(parts, ignore_index=True)
    members = list(BLEND_MEMBERS)
    rows["blend"] = rows[members].mean(axis=1)
    for left_out in members:
        rows[f"blend without {left_out}"] = rows[
            [m for m in members if m != left_out]].mean(axis=1)
    return rows


def ratios(rows: pd.DataFrame, column: str) -> np.ndarray:
    """Per series: MASE of `column` over MASE of seasonal naive on the same months."""
    out = []
    for _, r in rows.groupby("series"):
        model = np.mean(np.abs(r["sales"] - r[column]) / r["scale"])
        naive = np.mean(np.abs(r["sales"] - r[NAIVE]) / r["scale"])
        out.append(model / naive if naive > 0 else np.nan)
    return np.array(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--before", type=int, nargs="+", default=[24, 36, 48, 60],
                        metavar="MONTHS", help=f"design cuts, each at least {MIN_CUT}")
    args = parser.parse_args(argv)
    if not args.files:
        args.files = [SHARED / f for f in DEFAULT_FILES]
        missing = [p.name for p in args.files if not p.is_file()]
        if missing:
            parser.error(f"the shared series {', '.join(missing)} are not in {SHARED}; "
                         "name the files to screen.")
    early = [c for c in args.before if c < MIN_CUT]
    if early:
        parser.error(f"--before {early[0]} would score months the evaluation scores; "
                     f"give cuts of at least {MIN_CUT} months.")

    started = time.perf_counter()
    for path in args.files:
        frame = load(path)
        by_cut = {cut: forecasts(frame, cut) for cut in args.before}
        columns = [c for c in by_cut[args.before[0]].columns
                   if c in KINDS or c.startswith("blend")]
        cuts = " / ".join(str(c) for c in args.before)
        print(f"\n{path.name}: mean MASE ratio to seasonal naive (series beating it), "
              f"cuts {cuts} months before the end; no gate")
        for column in columns:
            cells, means = [], []
            for cut in args.before:
                r = ratios(by_cut[cut], column)
                means.append(np.nanmean(r))
                cells.append(f"{means[-1]:.3f} ({int((r < 1).sum()):>2})")
            print(f"  {column:<34} {'  '.join(cells)}   average {np.mean(means):.3f}")
    print(f"\nTotal {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
