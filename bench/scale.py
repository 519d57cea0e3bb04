"""Sizing: what training and serving cost for a supplier with many series.

    make bench-scale                                 # 100 and 1,000 series
    .venv/bin/python -m bench.scale --series 3000    # about 8 minutes more

For each count of series it writes a synthetic file, trains it with
`python -m training` in a child process (wall time, and the child's own maximum RSS
from os.wait4), measures the version on disk, starts `python -m service` (2 workers,
Prometheus multiprocess directory, default reload interval) on a free port of
127.0.0.1, and, 2 s after every worker has loaded the model
(the model_loads counter of /metrics), reads the PSS of the master and each worker
from /proc/<pid>/smaps_rollup (a page shared by n processes counts 1/n in each, so
the sum is what the server costs the machine). It then times GET /model,
GET /model?series=, GET /model?series=<one> and one POST /forecast (the median of
five, on new connections, and the size of the answer), trains the same file again
into the same store, and samples the PSS every 0.2 s until every worker serves
the new version (the model_info gauge of /metrics names it alone, and
GET /model?series= answers with it). The peak of those samples is what a switch to
a new version costs; the switch is timed from the moment CURRENT names the new
version. It prints one table at the end and judges nothing.

The synthetic file (`write_series`, fixed seed, so the same count gives the same
bytes): columns date, sales, series; series named SKU-00000, SKU-00001, ... Each
series ends in 2025-10, 2025-11 or 2025-12 (more often the last). 3% are short, 8 to
30 months (training takes them, from 6 months, and serves them a simpler model); the
others have 48 to 120 months (84 on average). The level is log-uniform between 5 and
100,000 a month, with a yearly cycle of relative amplitude 0 to 0.5 peaking in a
random month, a monthly growth between -0.5% and +1%, and log-normal noise (sigma
0.1). 8% are intermittent: each month but the first is zero with probability one
half. Sales are written rounded to whole units.
"""

import argparse
import csv
import json
import math
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench.soak import ROOT, children, sample, start_server
from service.metrics import PREFIX
from training import artifact

SEED = 21
DEFAULT_COUNTS = [100, 1000]
WORKERS = 2
LAST_YEAR = 2025
SHORT_SHARE, INTERMITTENT_SHARE = 0.03, 0.08
SAMPLE_SECONDS = 0.2
SWITCH_LIMIT_SECONDS = 120.0
REPEATS = 5
MODEL_INFO = PREFIX + "model_info"
MODEL_LOADS = PREFIX + "model_loads_total"
# Between every worker having its model and the idle memory sample.
SETTLE_SECONDS = 2.0
MIB = 1024 * 1024


def write_series(path: Path, count: int, seed: int = SEED) -> None:
    """Write `count` synthetic monthly series to `path` (shape in the module
    docstring); the same count and seed always give the same file."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["date", "sales", "series"])
        for index in range(count):
            name = f"SKU-{index:05d}"
            for month, value in one_series(rng):
                year, month_of_year = divmod(month, 12)
                writer.writerow([f"{year}-{month_of_year + 1:02d}", value, name])


def one_series(rng: random.Random) -> list[tuple[int, int]]:
    """(months since year 0, sales) of one synthetic series, oldest first."""
    short = rng.random() < SHORT_SHARE
    length = rng.randint(8, 30) if short else rng.randint(48, 120)
    last = LAST_YEAR * 12 + 11 - rng.choice([0, 0, 0, 1, 2])
    level = 10 ** rng.uniform(math.log10(5), 5)
    amplitude = rng.uniform(0.0, 0.5)
    peak = rng.randrange(12)
    growth = rng.uniform(-0.005, 0.01)
    intermittent = rng.random() < INTERMITTENT_SHARE

    rows = []
    for age in range(length):
        month = last - (length - 1) + age
        cycle = 1 + amplitude * math.cos(2 * math.pi * ((month - peak) % 12) / 12)
        value = level * cycle * math.exp(growth * age + rng.gauss(0.0, 0.1))
        if intermittent and age > 0 and rng.random() < 0.5:
            value = 0.0
        rows.append((month, round(value)))
    return rows


@dataclass
class Run:
    seconds: float
    max_rss_kib: int
    returncode: int


def run_child(command: list[str], log: Path) -> Run:
    """Run `command` from the checkout; its wall time and its own maximum RSS (KiB,
    from os.wait4, so an earlier or bigger child does not hide it). Until it execs,
    the child's memory is this process's, so the figure is never below this
    process's own peak, printed under the table."""
    started = time.monotonic()
    with open(log, "ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out,
                                   stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return Run(time.monotonic() - started, usage.ru_maxrss, process.returncode)


def train(data: Path, store: Path, log: Path) -> Run:
    run = run_child([sys.executable, "-m", "training", "--data", str(data),
                     "--model-dir", str(store)], log)
    if run.returncode != 0:
        raise SystemExit(f"training exited with {run.returncode}; see {log}")
    return run


def version_sizes(store: Path) -> dict:
    """Bytes on disk of the served version: in all, and per file that matters."""
    folder = store / artifact.VERSIONS / artifact.read_current(store)
    files = [p for p in folder.rglob("*") if p.is_file()]
    sizes = {"total": sum(p.stat().st_size for p in files)}
    for name in (artifact.METADATA_FILE, artifact.MODEL_FILE, "report.html"):
        path = folder / name
        sizes[name] = path.stat().st_size if path.exists() else None
    return sizes


def memory(master: int) -> dict:
    """PSS (KiB) of the master and of each worker, and each worker's RSS."""
    workers = children(master)
    samples = {pid: sample(pid) for pid in [master, *workers]}
    return {"master": samples[master]["pss"],
            "workers": [samples[pid]["pss"] for pid in workers],
            "worker_rss": [samples[pid]["rss"] for pid in workers],
            "total": sum(s["pss"] for s in samples.values())}


def timed(method: str, url: str, **kwargs) -> tuple[float, int]:
    """Median seconds of REPEATS requests, each on a new connection, and the size
    of the answer in bytes."""
    times, size = [], 0
    for _ in range(REPEATS):
        started = time.perf_counter()
        response = requests.request(method, url, timeout=120, **kwargs)
        times.append(time.perf_counter() - started)
        response.raise_for_status()
        size = len(response.content)
    return statistics.median(times), size


def served_version(url: str) -> str:
    response = requests.get(url + "/model", params={"series": ""}, timeout=30)
    response.raise_for_status()
    return response.json()["version"]


def versions_served(url: str) -> set[str]:
    """The versions at least one live worker serves, from the model_info gauge (its
    multiprocess mode keeps a version at 1 while any worker still serves it)."""
    response = requests.get(url + "/metrics", timeout=30)
    response.raise_for_status()
    return parse_versions_served(response.text)


def parse_versions_served(exposition: str) -> set[str]:
    served = set()
    for line in exposition.splitlines():
        if not line.startswith(MODEL_INFO + "{"):
            continue
        labels, _, value = line.rpartition(" ")
        if float(value) == 1.0:
            served.add(labels.split('version="', 1)[1].split('"', 1)[0])
    return served


def loads_succeeded(exposition: str) -> float:
    """How many model loads succeeded, all workers together."""
    for line in exposition.splitlines():
        if line.startswith(MODEL_LOADS + '{outcome="success"}'):
            return float(line.rpartition(" ")[2])
    return 0.0


def wait_for_every_worker(url: str, workers: int) -> None:
    """Wait until every worker has loaded its model: the server is ready as soon as
    one has, and a worker still loading would read as a small one."""
    deadline = time.monotonic() + SWITCH_LIMIT_SECONDS
    while time.monotonic() < deadline:
        metrics = requests.get(url + "/metrics", timeout=30)
        if loads_succeeded(metrics.text) >= workers:
            return
        time.sleep(SAMPLE_SECONDS)
    raise SystemExit(f"not every worker had loaded the model within "
                     f"{SWITCH_LIMIT_SECONDS:g} s")


def switch(url: str, master: int, data: Path, store: Path, log: Path) -> dict:
    """Train `data` again into `store` while sampling the server's PSS every
    SAMPLE_SECONDS, until every worker serves the new version: the gauge lists it
    alone and GET /model?series= names it. The switch is timed from the moment
    CURRENT names the new version."""
    old = artifact.read_current(store)
    command = [sys.executable, "-m", "training", "--data", str(data),
               "--model-dir", str(store)]
    started = time.monotonic()
    peak, trained, published, new, switched = 0, None, None, None, None
    with open(log, "ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out,
                                   stderr=subprocess.STDOUT)
        while True:
            now = time.monotonic()
            peak = max(peak, memory(master)["total"])
            if trained is None and process.poll() is not None:
                trained = now
            if published is None:
                new = artifact.read_current(store)
                if new != old:
                    published = now
                elif trained is not None:
                    raise SystemExit(f"the second training published nothing "
                                     f"(exit {process.returncode}); see {log}")
            elif versions_served(url) == {new} and served_version(url) == new:
                switched = switched or now
                if trained is not None:
                    break
            elif now - published > SWITCH_LIMIT_SECONDS:
                raise SystemExit(f"{new} was not served by every worker within "
                                 f"{SWITCH_LIMIT_SECONDS:g} s of its publication")
            time.sleep(SAMPLE_SECONDS)
    return {"train_seconds": trained - started,
            "switch_seconds": switched - published,
            "peak": peak, "after": memory(master)["total"]}


def serve(store: Path, workdir: Path, data: Path) -> dict:
    process, url = start_server(store, workdir, WORKERS)
    try:
        wait_for_every_worker(url, WORKERS)
        time.sleep(SETTLE_SECONDS)
        idle = memory(process.pid)
        listing = requests.get(url + "/model", params={"series": ""}, timeout=30)
        one = listing.json()["series"][0]["name"]
        figures = {
            "idle": idle,
            "model": timed("GET", url + "/model"),
            "model_list": timed("GET", url + "/model", params={"series": ""}),
            "model_one": timed("GET", url + "/model", params={"series": one}),
            "forecast": timed("POST", url + "/forecast",
                              json={"series": one, "horizon": 12}),
        }
        figures["switch"] = switch(url, process.pid, data, store,
                                   workdir / "training.log")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    return figures


def measure(count: int, workdir: Path) -> dict:
    data, store = workdir / f"series-{count}.csv", workdir / "models"
    write_series(data, count)
    first = train(data, store, workdir / "training.log")
    meta = json.loads((store / artifact.VERSIONS / artifact.read_current(store)
                       / artifact.METADATA_FILE).read_text())
    with open(data) as lines:
        months = sum(1 for _ in lines) - 1
    result = {"count": count, "months": months,
              "accepted": len(meta.get("series", [])), "train": first,
              "disk": version_sizes(store)}
    result.update(serve(store, workdir, data))
    return result


def mb(size: int | None) -> str:
    return "-" if size is None else f"{size / MIB:.1f} MB"


def kib_mb(kib: int) -> str:
    return f"{kib / 1024:.0f} MB"


def span(values: list[int]) -> str:
    low, high = min(values) / 1024, max(values) / 1024
    return f"{low:.0f}-{high:.0f} MB" if round(low) != round(high) else f"{low:.0f} MB"


def answer(figure: tuple[float, int]) -> str:
    seconds, size = figure
    return f"{seconds * 1000:.0f} ms, {mb(size) if size >= MIB else f'{size} B'}"


ROWS = [
    ("series in file / served", lambda r: f"{r['count']} / {r['accepted']}"),
    ("months (rows)", lambda r: f"{r['months']:,}"),
    ("training wall", lambda r: f"{r['train'].seconds:.0f} s"),
    ("training max RSS", lambda r: kib_mb(r["train"].max_rss_kib)),
    ("version on disk", lambda r: mb(r["disk"]["total"])),
    ("  metadata.json", lambda r: mb(r["disk"][artifact.METADATA_FILE])),
    ("  model.joblib", lambda r: mb(r["disk"][artifact.MODEL_FILE])),
    ("  report.html", lambda r: mb(r["disk"]["report.html"])),
    ("worker RSS", lambda r: span(r["idle"]["worker_rss"])),
    ("worker PSS", lambda r: span(r["idle"]["workers"])),
    ("master PSS", lambda r: kib_mb(r["idle"]["master"])),
    ("master + 2 workers PSS", lambda r: kib_mb(r["idle"]["total"])),
    ("GET /model", lambda r: answer(r["model"])),
    ("GET /model?series=", lambda r: answer(r["model_list"])),
    ("GET /model?series=<one>", lambda r: answer(r["model_one"])),
    ("POST /forecast (12)", lambda r: answer(r["forecast"])),
    ("second training wall", lambda r: f"{r['switch']['train_seconds']:.0f} s"),
    ("switch after publication",
     lambda r: f"{r['switch']['switch_seconds']:.1f} s"),
    ("peak PSS in the switch", lambda r: kib_mb(r["switch"]["peak"])),
    ("PSS after the switch", lambda r: kib_mb(r["switch"]["after"])),
]


def table(results: list[dict]) -> str:
    width = max(len(label) for label, _ in ROWS)
    cells = [[show(r) for r in results] for _, show in ROWS]
    column = max(len(c) for row in cells for c in row + [f"{r['count']} series"
                                                         for r in results])
    lines = [" " * width + "".join(f"  {r['count']:>{column - 7}} series"
                                   for r in results)]
    for (label, _), row in zip(ROWS, cells):
        lines.append(f"{label:<{width}}" + "".join(f"  {c:>{column}}" for c in row))
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.scale",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, nargs="+", default=DEFAULT_COUNTS,
                        help="counts of series, one run each (default: 100 1000)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the files, stores and logs (their folder is "
                             "printed)")
    args = parser.parse_args(argv)
    if any(count < 1 for count in args.series):
        parser.error(f"--series takes positive counts, got {args.series}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    top = Path(tempfile.mkdtemp(prefix="sales-forecast-scale-"))
    results = []
    try:
        for count in args.series:
            print(f"{count} series ...", flush=True)
            workdir = top / str(count)
            workdir.mkdir()
            results.append(measure(count, workdir))
    finally:
        if args.keep:
            print(f"files, stores and logs in {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)

    print(f"\nsizing on {os.cpu_count()} cores, {WORKERS} workers, seed {SEED}\n")
    print(table(results))
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"\n(a training's max RSS cannot read below {kib_mb(own)}, this process's "
          "own peak)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
