"""Soak: a steady request rate against a real gunicorn process for a bounded time,
watching every worker's memory and open file descriptors.

    make soak                           # 15 minutes
    SOAK_SECONDS=120 make soak          # a short run
    .venv/bin/python -m bench.soak --seconds 60 --rate 40

It trains the bundled series into a temporary model store (or serves --model-dir),
starts `python -m service` on a free port of 127.0.0.1, and sends a mix of
/forecast, /predict, V2 infer and /readyz requests at `--rate` requests per second
in total from keep-alive clients. Every `--sample` seconds it reads, for the master
and each worker, RSS and PSS from /proc/<pid>/smaps_rollup and the number of open
descriptors from /proc/<pid>/fd.

Growth is reported from the first sample after the warm-up (`--warmup`, a tenth of
the run by default): allocators and caches fill during the first minutes, and what
matters is whether memory keeps rising after that. The run fails (exit 1) on any
failed request, on a worker that was replaced (a crash or a timeout kill), on
descriptor growth past --max-fd-growth, or on memory growth past
--max-growth-mib per worker.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.traffic import Traffic, summarize

ROOT = Path(__file__).resolve().parent.parent
WINEIND = ROOT / "data" / "wineind.csv"
# Share of the total rate per kind of request, and what each sends.
MIX = [
    ("forecast", 0.4, "/forecast", "POST", {"horizon": 12}),
    ("predict", 0.3, "/predict", "POST",
     {"instances": [{"date": f"1994-{m:02d}"} for m in range(1, 13)]}),
    ("v2-infer", 0.2, "/v2/models/sales-forecast/infer", "POST",
     {"inputs": [{"name": "date", "shape": [3], "datatype": "BYTES",
                  "data": ["1995-01", "1995-02", "1995-03"]}]}),
    ("readyz", 0.1, "/readyz", "GET", None),
]


def parse_args(argv=None):
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m bench.soak",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float,
                        default=float(env("SOAK_SECONDS", 900)))
    parser.add_argument("--rate", type=float, default=float(env("SOAK_RATE", 60)),
                        help="requests per second, all kinds together (default 60)")
    parser.add_argument("--sample", type=float, default=float(env("SOAK_SAMPLE", 30)),
                        help="seconds between memory samples (default 30)")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds before the baseline sample (default: a tenth)")
    parser.add_argument("--workers", type=int, default=int(env("SOAK_WORKERS", 2)))
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="serve this store (default: train the bundled series)")
    parser.add_argument("--max-growth-mib", type=float, default=16.0)
    parser.add_argument("--max-fd-growth", type=int, default=8)
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rate <= 0 or args.sample <= 0:
        parser.error("--seconds, --rate and --sample must be positive")
    if args.warmup is None:
        args.warmup = args.seconds / 10
    return args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(x) for x in text]
    return sorted(found)


def sample(pid: int) -> dict:
    """RSS and PSS (KiB) and open descriptors of one process."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        values[key.strip()] = int(rest.split()[0])
    return {"rss": values["Rss"], "pss": values["Pss"],
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def start_server(model_dir: Path, workdir: Path, workers: int):
    """Start `python -m service` on a free port of 127.0.0.1 and wait until it is
    ready with all its workers."""
    port = free_port()
    metrics = workdir / "metrics"
    metrics.mkdir()
    log = open(workdir / "server.log", "wb")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics),
           "SALES_FORECAST_WORKERS": str(workers),
           "SALES_FORECAST_LOG_LEVEL": "warning"}
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "--model-dir", str(model_dir),
         "--port", str(port)], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}; see "
                             f"{workdir / 'server.log'}")
        try:
            if requests.get(url + "/readyz", timeout=2).ok and \
                    len(children(process.pid)) == workers:
                return process, url
        except requests.RequestException:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server was not ready within 60 s; see {workdir}/server.log")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def mib(kib: int) -> str:
    return f"{kib / 1024:7.1f}"


def report_samples(samples: list[tuple[float, dict]], baseline_at: float) -> dict:
    """Print the per-process table; return growth per worker after the warm-up."""
    pids = sorted({pid for _, per in samples for pid in per})
    print("\nmemory (MiB) and open descriptors, per process:")
    print(f"  {'t (s)':>7} " + " ".join(f"{'pid ' + str(p):>26}" for p in pids))
    print(f"  {'':>7} " + " ".join(f"{'RSS':>8} {'PSS':>8} {'fds':>8}" for _ in pids))
    for t, per in samples:
        cells = []
        for p in pids:
            s = per.get(p)
            cells.append(f"{mib(s['rss']):>8} {mib(s['pss']):>8} {s['fds']:>8}"
                         if s else f"{'-':>8} {'-':>8} {'-':>8}")
        print(f"  {t:7.0f} " + " ".join(cells))

    base_t, base = next(((t, per) for t, per in samples if t >= baseline_at),
                        samples[0])
    end_t, end = samples[-1]
    growth = {}
    for p in pids:
        if p in base and p in end:
            growth[p] = {k: end[p][k] - base[p][k] for k in ("rss", "pss", "fds")}
    return {"from": base_t, "to": end_t, "growth": growth, "first": samples[0][1],
            "base": base, "end": end}


def run(args) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="sales-forecast-soak-"))
    model_dir = args.model_dir
    if model_dir is None:
        model_dir = workdir / "models"
        subprocess.run([sys.executable, "-m", "training", "--data", str(WINEIND),
                        "--model-dir", str(model_dir)], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    process, url = start_server(model_dir, workdir, args.workers)
    master = process.pid
    workers = children(master)
    print(f"soak: {args.seconds:.0f} s at {args.rate:g} requests/s against {url} "
          f"(gunicorn master {master}, workers {workers}); samples every "
          f"{args.sample:g} s, baseline after {args.warmup:.0f} s of warm-up")

    traffic = []
    for name, share, path, method, body in MIX:
        clients = 2 if share >= 0.3 else 1
        traffic.append((name, Traffic(url, path=path, method=method, body=body,
                                      clients=clients, rate=args.rate * share / clients,
                                      timeout=30, max_seconds=args.seconds + 60)))
    samples = []
    replaced = []
    started = time.monotonic()
    try:
        for _, t in traffic:
            t.start()
        next_sample = started
        while True:
            now = time.monotonic()
            if now >= next_sample:
                current = children(master)
                if current != workers:
                    replaced.append((round(now - started), workers, current))
                    workers = current
                samples.append((now - started, {p: sample(p)
                                                for p in [master, *current]}))
                next_sample += args.sample
            if now - started >= args.seconds:
                break
            time.sleep(min(1.0, max(0.0, next_sample - time.monotonic())))
    finally:
        results = {name: t.stop() for name, t in traffic}
        elapsed = time.monotonic() - started
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
    return report(args, results, samples, replaced, master, elapsed, workdir)


def report(args, results, samples, replaced, master, elapsed, workdir) -> int:
    print(f"\nrequests over {elapsed:.0f} s:")
    total_sent = total_failed = 0
    for name, rs in results.items():
        s = summarize(rs)
        total_sent += s["sent"]
        total_failed += s["failed"]
        latencies = [(r.finished - r.started) * 1000 for r in rs if r.ok]
        print(f"  {name:<9} sent {s['sent']:>7}  failed {s['failed']:>4}  "
              f"p50 {percentile(latencies, 0.5):6.1f} ms  p99 "
              f"{percentile(latencies, 0.99):6.1f} ms  {s['by_kind'] or ''}")
    print(f"  {'all':<9} sent {total_sent:>7}  failed {total_failed:>4}  "
          f"({total_sent / elapsed:.1f} requests/s achieved, {args.rate:g} asked)")

    growth = report_samples(samples, args.warmup)
    print(f"\ngrowth per process from {growth['from']:.0f} s to {growth['to']:.0f} s "
          "(after warm-up):")
    problems = []
    for pid, g in growth["growth"].items():
        role = "master" if pid == master else "worker"
        first = growth["first"].get(pid)
        rise = (growth["end"][pid]["rss"] - first["rss"]) / 1024 if first else 0
        since_start = f", {rise:+.1f} MiB RSS since start" if first else ""
        print(f"  {role} {pid}: RSS {g['rss'] / 1024:+.1f} MiB, PSS "
              f"{g['pss'] / 1024:+.1f} MiB, fds {g['fds']:+d}{since_start}")
        if role == "worker" and g["pss"] / 1024 > args.max_growth_mib:
            problems.append(f"worker {pid} PSS grew {g['pss'] / 1024:.1f} MiB after "
                            f"warm-up (limit {args.max_growth_mib} MiB)")
        if g["fds"] > args.max_fd_growth:
            problems.append(f"{role} {pid} holds {g['fds']} more descriptors")
    if total_failed:
        problems.append(f"{total_failed} requests failed")
    for at, before, after in replaced:
        problems.append(f"workers changed at {at} s: {before} -> {after}")

    if problems:
        print("\nSOAK FAILED: " + "; ".join(problems) + f" (server log in {workdir})")
        return 1
    print(f"\nsoak passed: no failed request, no worker replaced "
          f"(server log in {workdir})")
    shutil.rmtree(workdir / "metrics", ignore_errors=True)
    return 0


def main(argv=None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
