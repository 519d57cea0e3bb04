"""What the request metrics and the request log cost per request, in CPU time.

Calls the WSGI application directly (no sockets, no test client, whose own overhead
would hide a few microseconds) in three set-ups, each on a fresh app:

    bare      metrics hooks replaced by no-ops, log level warning
    metrics   metrics on, log level warning (no request lines)
    shipped   metrics on, log level info: what gunicorn runs

Metrics run in multiprocess mode (memory-mapped files in a temporary directory),
as under gunicorn. Times are per-thread CPU time (`time.thread_time`), the best of
several rounds, so other load on the machine inflates them less than wall time.

Usage: .venv/bin/python hack/instrumentation-cost.py [--model-dir DIR] [--rounds N]
(without --model-dir the bundled wineind data is trained into a temporary store)
"""

import argparse
import io
import logging
import os
import sys
import tempfile
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CASES = [
    ("POST /forecast", "POST", "/forecast", {"horizon": 12}),
    ("POST /predict", "POST", "/predict", {"instances": [{"date": "1995-01"}]}),
    ("POST /v2 infer", "POST", "/v2/models/sales-forecast/infer",
     {"inputs": [{"name": "date", "datatype": "BYTES", "shape": [1],
                  "data": ["1995-01"]}]}),
    ("GET /model", "GET", "/model", None),
    ("POST /forecast 400", "POST", "/forecast", {"horizon": 0}),
]

# Without request lines in the first two.
LOG_LEVELS = {"bare": "WARNING", "metrics": "WARNING", "shipped": "INFO"}


def wsgi_call(app, method: str, path: str, body):
    from werkzeug.test import EnvironBuilder

    builder = EnvironBuilder(method=method, path=path, json=body)
    environ = builder.get_environ()
    payload = builder.input_stream.read() if builder.input_stream else b""

    def start_response(status, headers, exc_info=None):
        pass

    def call():
        request_environ = dict(environ)
        request_environ["wsgi.input"] = io.BytesIO(payload)
        for _ in app(request_environ, start_response):
            pass

    return call


def build_app(model_dir: Path, setup: str):
    from service.app import create_app
    from service.config import Settings
    from service.metrics import Metrics

    level = LOG_LEVELS[setup]
    app = create_app(Settings(model_dir=model_dir, log_level=level.lower()),
                     watch=False)
    logging.getLogger("service").handlers[0].setStream(open(os.devnull, "w"))
    if setup == "bare":
        metrics: Metrics = app.extensions["metrics"]
        metrics.observe_request = lambda *args: None
        metrics.observe_prediction = lambda *args: None
    return app


def components(app, rounds: int, number: int) -> dict:
    """The instrumentation calls alone, as the hooks make them."""
    from service.logs import write_request

    metrics = app.extensions["metrics"]
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == "forecast")
    extra = {"method": "POST", "path": "/forecast", "status": 200,
             "duration_ms": 0.123, "request_id": "0" * 32, "model_version": "v"}
    calls = {
        "observe_request": lambda: metrics.observe_request("POST", rule, 200, 1e-4),
        "observe_prediction": lambda: metrics.observe_prediction(
            "forecast", time.perf_counter(), 12),
        # The call the request hook makes: one line written straight to the stream.
        "request log line": lambda: write_request(extra),
    }
    with app.test_request_context("/forecast", method="POST"):
        calls["observe_request 400"] = lambda: metrics.observe_request(
            "POST", rule, 400, 1e-4)
        return {name: measure(call, rounds, number) for name, call in calls.items()}


def compare(calls: dict, rounds: int, number: int) -> dict:
    """Best time per call of each set-up, measured in alternating rounds so a change
    in the machine's load hits all of them alike. The service's logger is one per
    process, so each set-up's log level is set again before its calls run."""
    service_log = logging.getLogger("service")
    for name, call in calls.items():
        service_log.setLevel(LOG_LEVELS[name])
        for _ in range(200):
            call()
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for name, call in calls.items():
            service_log.setLevel(LOG_LEVELS[name])
            best[name] = min(best[name], timeit.timeit(call, timer=time.thread_time,
                                                       number=number))
    return {name: seconds / number * 1e6 for name, seconds in best.items()}


def measure(call, rounds: int, number: int) -> float:
    for _ in range(200):
        call()
    best = min(timeit.repeat(call, timer=time.thread_time, number=number,
                             repeat=rounds))
    return best / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="instrumentation-cost-"))
    # Must be set before prometheus_client is imported: it picks the value class then.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(work / "metrics")
    (work / "metrics").mkdir()
    model_dir = args.model_dir
    if model_dir is None:
        from training.cli import main as train

        model_dir = work / "models"
        train(["--data", str(ROOT / "data" / "wineind.csv"), "--model-dir",
               str(model_dir)])

    setups = ("bare", "metrics", "shipped")
    apps = {setup: build_app(model_dir, setup) for setup in setups}
    print(f"Instrumentation calls alone, CPU us (best of {args.rounds} x "
          f"{args.number * 5}):")
    logging.getLogger("service").setLevel(LOG_LEVELS["shipped"])
    for name, cost in components(apps["shipped"], args.rounds,
                                 args.number * 5).items():
        print(f"  {name:22s} {cost:6.2f}")

    print(f"\nWhole requests, CPU us (best of {args.rounds} x {args.number}):")
    print(f"{'request':20s} {'bare':>8s} {'metrics':>8s} {'shipped':>8s} "
          f"{'+metrics':>9s} {'+log':>7s}")
    for name, method, path, body in CASES:
        t = compare({s: wsgi_call(apps[s], method, path, body) for s in setups},
                    args.rounds, args.number)
        print(f"{name:20s} {t['bare']:8.1f} {t['metrics']:8.1f} {t['shipped']:8.1f} "
              f"{t['metrics'] - t['bare']:+9.1f} {t['shipped'] - t['metrics']:+7.1f}")


if __name__ == "__main__":
    main()
