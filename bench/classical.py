"""Classical forecasters on the quality benchmark's protocol, for comparison only.

ETS (Holt-Winters with a damped additive trend, multiplicative season on positive
series), the airline ARIMA(0,1,1)(0,1,1)12 on log sales, the Theta method, and
the mean of the three; each fitted per series on the months up to every evaluation
origin of `bench/quality.py` and scored 1 to 12 months ahead by MASE against seasonal
naive. statsmodels is not part of the product: this runs in its own environment
(`make bench-classical` builds it in build/classical).

    build/classical/bin/python bench/classical.py [FILE ...] [--origins 5] [--step 3]
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
DEFAULT_FILES = ["wineind.csv", "airpassengers.csv", "txhousing_sales.csv"]
HORIZON = 12
SEASON = 12
METHODS = ("ets", "arima", "theta", "average")


def forecasts(history: np.ndarray) -> dict[str, np.ndarray]:
    from statsmodels.tsa.forecasting.theta import ThetaModel
    from statsmodels.tsa.holtwinters import ExponentialSmoothing
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    out = {}
    positive = bool(np.all(history > 0))
    ets = ExponentialSmoothing(history, trend="add", damped_trend=True,
                               seasonal="mul" if positive else "add",
                               seasonal_periods=SEASON).fit()
    out["ets"] = ets.forecast(HORIZON)

    z = np.log(history) if positive else history
    arima = SARIMAX(z, order=(0, 1, 1), seasonal_order=(0, 1, 1, SEASON)) \
        .fit(disp=False)
    out["arima"] = np.exp(arima.forecast(HORIZON)) if positive \
        else arima.forecast(HORIZON)
    index = pd.period_range("2000-01", periods=len(history), freq="M")
    theta = ThetaModel(pd.Series(history, index=index), period=SEASON,
                       method="additive" if not positive else "auto").fit()
    out["theta"] = np.asarray(theta.forecast(HORIZON))
    out["average"] = (out["ets"] + out["arima"] + out["theta"]) / 3
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path,
                        default=[SHARED / f for f in DEFAULT_FILES])
    parser.add_argument("--origins", type=int, default=5)
    parser.add_argument("--step", type=int, default=3)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")

    started = time.perf_counter()
    for path in args.files:
        frame = pd.read_csv(path, parse_dates=["date"])
        if "series" not in frame:
            frame["series"] = path.stem
        rows = []
        for name, part in frame.groupby("series", sort=True):
            y = part["sales"].to_numpy(dtype=np.float64)
            ends = [len(y) - HORIZON - args.step * i
                    for i in reversed(range(args.origins))]
            errors = {m: [] for m in (*METHODS, "naive")}
            scales = []
            for end in ends:
                history, actual = y[:end], y[end:end + HORIZON]
                scale = np.mean(np.abs(history[SEASON:] - history[:-SEASON]))
                made = forecasts(history)
                made["naive"] = np.tile(history[-SEASON:], 2)[:HORIZON]
                for method, values in made.items():
                    errors[method].append(np.abs(values - actual) / scale)
                scales.append(scale)
            naive = np.mean(np.concatenate(errors["naive"]))
            rows.append({"series": name, "naive": naive,
                         **{m: np.mean(np.concatenate(errors[m])) / naive
                            for m in METHODS}})
        table = pd.DataFrame(rows)
        print(f"\n{path.name}: MASE ratio to seasonal naive (below 1 beats it)")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print("  beats seasonal naive on: " + ", ".join(
            f"{m} {int((table[m] < 1).sum())}/{len(table)}" for m in METHODS))
    print(f"\nTotal {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
