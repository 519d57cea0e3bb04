"""What every server is asked, and the files the comparison servers serve.

Shared by the wrk runs (`bench.perf`) and the in-process micro-benchmark
(`bench.perf.hotpath`), so both send the same bodies.
"""

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import joblib
import pandas as pd

from bench.perf import reference_model, servers

ROOT = servers.ROOT
WINEIND = ROOT / "data" / "wineind.csv"
BATCH_ROWS = 1000


def months(count: int, first: str = "1985-01") -> list[str]:
    """`count` months cycling through ten years from `first`, all inside what every
    server here answers for wineind (its history runs to 1994-08)."""
    start = pd.Period(first, freq="M")
    return [str(start + i % 120) for i in range(count)]


def infer_body(dates: list[str]) -> dict:
    # content_type "pd" makes MLServer hand the pipeline a DataFrame with a `date`
    # column; the service ignores request parameters, so both get the same bytes.
    return {"parameters": {"content_type": "pd"},
            "inputs": [{"name": "date", "datatype": "BYTES", "shape": [len(dates)],
                        "data": dates}]}


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    body: dict
    rows: int  # values one answer carries, for rows per second

    def url(self, server) -> str:
        path = self.path.replace("{model}", servers.MODEL_NAME)
        return server.url + path


INFER = "/v2/models/{model}/infer"
SCENARIOS = {s.name: s for s in [
    Scenario("predict-1", "/predict", {"instances": [{"date": "1995-01"}]}, 1),
    Scenario("forecast-12", "/forecast", {"horizon": 12}, 12),
    Scenario("predict-1000", "/predict",
             {"instances": [{"date": d} for d in months(BATCH_ROWS)]}, BATCH_ROWS),
    Scenario("infer-1", INFER, infer_body(["1995-01"]), 1),
    Scenario("infer-1000", INFER, infer_body(months(BATCH_ROWS)), BATCH_ROWS),
    # The ceiling's route ignores the body; it is sent so the bytes on the wire
    # match the one-row /predict.
    Scenario("hello", "/", {"instances": [{"date": "1995-01"}]}, 1),
]}

# (server, scenario, connections), in the order they run within a pass.
PLAN = {
    "service": [("predict-1", 1), ("predict-1", 8), ("predict-1", 32),
                ("forecast-12", 1), ("forecast-12", 32),
                ("predict-1000", 1), ("predict-1000", 8),
                ("infer-1", 32), ("infer-1000", 1)],
    "baseline": [("predict-1", 1), ("predict-1", 8), ("predict-1", 32),
                 ("forecast-12", 1), ("forecast-12", 32),
                 ("predict-1000", 1), ("predict-1000", 8)],
    "ceiling": [("hello", 1), ("hello", 8), ("hello", 32)],
    "mlserver": [("infer-1", 32), ("infer-1000", 1)],
}


def prepare(work: Path, model_dir: Path | None) -> tuple[Path, Path, str]:
    """The service's model store, the reference pipeline file, and the last month
    of the history (where the baseline's forecasts start)."""
    if model_dir is None:
        model_dir = work / "models"
        print(f"training the service's model on {WINEIND.name} ...", flush=True)
        subprocess.run([sys.executable, "-m", "training", "--data", str(WINEIND),
                        "--model-dir", str(model_dir)], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)

    reference = work / "reference.joblib"
    joblib.dump(reference_model.fit(WINEIND), reference)
    last = str(pd.to_datetime(pd.read_csv(WINEIND)["date"]).max())[:7]
    return model_dir, reference, last
