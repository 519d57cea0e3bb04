"""`python -m bench.perf`: the service against a plain baseline, a hello-world ceiling
and MLServer, under the same bounded wrk runs, twice.

    make bench                                   # two passes of 10-second runs
    .venv/bin/python -m bench.perf --seconds 3 --passes 1 --only service,ceiling

One server at a time on 127.0.0.1, each started fresh in every pass:

  service   `python -m service` as shipped (metrics, JSON request log, default
            gunicorn settings), trained on data/wineind.csv into a temporary store.
  baseline  a plain Flask app (bench/perf/baseline_app.py) under gunicorn with two
            sync workers: a DataFrame and a pipeline `predict` per request.
  ceiling   a Flask route returning fixed JSON (bench/perf/hello_app.py) under the
            service's own gunicorn configuration: what Flask there can do at all.
  mlserver  Seldon MLServer 1.7.1, scikit-learn runtime, default settings.

The baseline and MLServer serve the seed's regression (bench/perf/reference_model.py),
fitted once here and saved with joblib. Every run is preceded by a one-second
warm-up at the same concurrency, whose figures are dropped. The machine is shared:
compare figures from the same pass, and trust only differences above ~15%.
"""

import argparse
import json
import os
import sys
import tempfile
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from bench.perf import servers, wrk
from bench.perf.scenarios import PLAN, SCENARIOS, Scenario, prepare

@dataclass
class Measured:
    server: str
    scenario: str
    connections: int
    rate: float
    rows_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    # CPU time the server's processes used per request (master and workers).
    cpu_us: float


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.perf", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__[
            __doc__.index("One server"):])
    parser.add_argument("--seconds", type=float,
                        default=float(os.environ.get("BENCH_SECONDS", 10)),
                        help="length of each measured wrk run (default 10)")
    parser.add_argument("--passes", type=int,
                        default=int(os.environ.get("BENCH_PASSES", 2)))
    parser.add_argument("--only", default=os.environ.get("BENCH_ONLY", ""),
                        help="comma-separated servers to run (default: all four)")
    parser.add_argument("--model-dir", type=Path,
                        help="serve this model store instead of training wineind")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args(argv)

    args.servers = [s for s in PLAN if not args.only or s in args.only.split(",")]
    unknown = set(filter(None, args.only.split(","))) - set(PLAN)
    if unknown:
        parser.error(f"--only: unknown server {sorted(unknown)[0]!r}; choose from "
                     f"{', '.join(PLAN)}.")
    if args.seconds < 1 or args.passes < 1:
        parser.error(f"--seconds must be at least 1 and --passes at least 1, got "
                     f"{args.seconds:g} and {args.passes}.")
    return args


def check_answer(server: servers.Server, scenario: Scenario) -> None:
    """One request before the load: a 200 carrying the expected number of values,
    so no run measures a server that answers errors quickly."""
    request = urllib.request.Request(scenario.url(server), data=orjson.dumps(
        scenario.body), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        body = orjson.loads(answer.read())
    values = (body.get("predictions") or body.get("forecast")
              or (body.get("outputs") or [{}])[0].get("data") or body.get("status"))
    count = 1 if isinstance(values, str) else len(values or [])
    if count != scenario.rows:
        raise RuntimeError(f"{server.name} answered {scenario.name} with {count} "
                           f"values instead of {scenario.rows}: {str(body)[:300]}")


def measure(server: servers.Server, seconds: float) -> list[Measured]:
    results = []
    for name, connections in PLAN[server.name]:
        scenario = SCENARIOS[name]
        check_answer(server, scenario)
        url, body = scenario.url(server), orjson.dumps(scenario.body)
        wrk.run(url, body, connections, 1)
        cpu_before = server.cpu()
        run = wrk.run(url, body, connections, seconds)
        cpu_us = (server.cpu() - cpu_before) / max(run.requests, 1) * 1e6
        results.append(Measured(server.name, name, connections, run.rate,
                                run.rate * scenario.rows, run.p50_ms, run.p90_ms,
                                run.p99_ms, run.errors, cpu_us))
        print(f"  {server.name:9s} {name:13s} c={connections:<3d} "
              f"{run.rate:9.0f} req/s  p99 {run.p99_ms:7.2f} ms  "
              f"{cpu_us:7.0f} CPU us/req"
              + (f"  {run.errors} ERRORS" if run.errors else ""), flush=True)
    return results


def factories(names, work: Path, model_dir: Path, reference: Path, last: str):
    """Factories in a fixed order; each server is started only when its turn comes."""
    factories = {
        "service": lambda: servers.service(work, model_dir),
        "baseline": lambda: servers.baseline(work, reference, last),
        "ceiling": lambda: servers.ceiling(work),
        "mlserver": lambda: servers.mlserver(work, reference),
    }
    return [(name, factories[name]) for name in names]


def run_pass(number: int, args, work, model_dir, reference, last) -> dict:
    print(f"\npass {number} (load average {load_average()})", flush=True)
    figures, starts = [], {}
    for name, factory in factories(args.servers, work, model_dir, reference, last):
        server = factory().start()
        try:
            figures += measure(server, args.seconds)
            starts[name] = {"cold_start_s": server.cold_start,
                            "idle_pss_mib": server.idle_pss,
                            "loaded_pss_mib": server.pss()}
        finally:
            server.stop()
    return {"pass": number, "load_average": load_average(), "runs": figures,
            "servers": starts}


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def find(runs, server: str, scenario: str, connections: int) -> Measured | None:
    return next((r for r in runs if (r.server, r.scenario, r.connections)
                 == (server, scenario, connections)), None)


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:5.1f}x" if a and b else "    -"


def report(result: dict) -> None:
    runs = result["runs"]
    print(f"\n== pass {result['pass']} (load average at the end "
          f"{result['load_average']})")
    print(f"{'server':9s} {'scenario':13s} {'conns':>5s} {'req/s':>8s} "
          f"{'rows/s':>9s} {'p50 ms':>7s} {'p90 ms':>7s} {'p99 ms':>7s} {'CPU us':>7s} "
          f"{'errors':>6s} "
          f"{'/base':>6s} {'/ceil':>6s} {'/mlsrv':>6s}")
    for r in runs:
        base = find(runs, "baseline", r.scenario, r.connections)
        ceiling = find(runs, "ceiling", "hello", r.connections)
        mlsrv = find(runs, "mlserver", r.scenario, r.connections)
        single = r.server == "service" and r.scenario in ("predict-1", "forecast-12",
                                                           "infer-1")
        to_base = base.rate if base and r.server != "baseline" else None
        to_ceiling = ceiling.rate if ceiling and single else None
        to_mlserver = mlsrv.rate if mlsrv and r.server != "mlserver" else None
        print(f"{r.server:9s} {r.scenario:13s} {r.connections:5d} {r.rate:8.0f} "
              f"{r.rows_per_second:9.0f} {r.p50_ms:7.2f} {r.p90_ms:7.2f} "
              f"{r.p99_ms:7.2f} {r.cpu_us:7.0f} {r.errors:6d} "
              f"{ratio(r.rate, to_base)} {ratio(r.rate, to_ceiling)} "
              f"{ratio(r.rate, to_mlserver)}")
    print(f"{'server':9s} {'cold start s':>12s} {'idle PSS MiB':>13s} "
          f"{'PSS after load':>15s}")
    for name, s in result["servers"].items():
        print(f"{name:9s} {s['cold_start_s']:12.2f} {s['idle_pss_mib']:13.1f} "
              f"{s['loaded_pss_mib']:15.1f}")


def main(argv=None) -> int:
    args = parse_args(argv)
    wrk.find_wrk()
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}, load average "
          f"{load_average()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-perf-") as tmp:
        work = Path(tmp)
        model_dir, reference, last = prepare(work, args.model_dir)
        results = [run_pass(n, args, work, model_dir, reference, last)
                   for n in range(1, args.passes + 1)]
    for result in results:
        report(result)

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(
            [{**r, "runs": [asdict(m) for m in r["runs"]]} for r in results], indent=1))
    failed = sum(m.errors for r in results for m in r["runs"])
    if failed:
        print(f"\n{failed} requests failed during the runs: the figures above are "
              "not valid", file=sys.stderr)
    return 1 if failed else 0


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
