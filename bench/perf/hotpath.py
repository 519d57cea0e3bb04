"""CPU time of one request inside a worker, without sockets: where the time goes.

    .venv/bin/python -m bench.perf.hotpath [--model-dir DIR] [--profile predict-1]

Calls each WSGI application directly with a prepared environ, as gunicorn's worker
thread would, and reports per-thread CPU microseconds per request (the best of
several rounds, so other load on the machine inflates it less than wall time):

  hello     the ceiling's fixed-JSON Flask route (bench/perf/hello_app.py)
  service   service.app as shipped: metrics in multiprocess mode, JSON request log
            at level info written to a file
  baseline  the plain DataFrame-per-request app (bench/perf/baseline_app.py)

`service - hello` is what the service adds to Flask's own cost; what gunicorn adds
on top (HTTP parsing, the thread pool, the poller) only wrk against a real server
shows, so `make bench` remains the measure. `--profile NAME` prints the top of a
cProfile of the service for one scenario.
"""

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
import timeit
from pathlib import Path

import orjson

SCENARIO_NAMES = ("predict-1", "forecast-12", "infer-1", "predict-1000")


def wsgi_caller(app, path: str, body: dict):
    """A function that sends one POST through `app` and consumes the answer."""
    payload = orjson.dumps(body)
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": path, "SCRIPT_NAME": "",
        "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(payload)),
        "HTTP_HOST": "127.0.0.1:8080", "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0), "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    def call():
        request = dict(environ)
        request["wsgi.input"] = io.BytesIO(payload)
        answer = app(request, start_response)
        for _ in answer:
            pass
        if hasattr(answer, "close"):
            answer.close()

    call()
    if not statuses[-1].startswith("200"):
        raise RuntimeError(f"POST {path} answered {statuses[-1]}, not 200")
    return call


def cpu_us(call, rounds: int, number: int) -> float:
    for _ in range(min(number, 200)):
        call()
    best = min(timeit.repeat(call, timer=time.thread_time, number=number,
                             repeat=rounds))
    return best / number * 1e6


def build_apps(work: Path, model_dir: Path | None):
    # Before prometheus_client is imported: it picks its value class then.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(work / "metrics")
    (work / "metrics").mkdir()
    from bench.perf.scenarios import SCENARIOS, prepare

    model_dir, reference, last = prepare(work, model_dir)
    os.environ["BENCH_BASELINE_MODEL"] = str(reference)
    os.environ["BENCH_BASELINE_LAST"] = last

    import logging

    from bench.perf import baseline_app, hello_app
    from service.app import create_app
    from service.config import Settings

    service = create_app(Settings(model_dir=model_dir), watch=False)
    log_file = open(work / "service.log", "w")
    logging.getLogger("service").handlers[0].setStream(log_file)
    return {"hello": hello_app.app, "service": service,
            "baseline": baseline_app.app}, SCENARIOS


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.hotpath",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--number", type=int, default=2000)
    parser.add_argument("--profile", choices=SCENARIO_NAMES)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-hotpath-") as tmp:
        apps, scenarios = build_apps(Path(tmp), args.model_dir)
        hello = cpu_us(wsgi_caller(apps["hello"], "/", {}), args.rounds, args.number)
        print(f"CPU microseconds per request, best of {args.rounds} x "
              f"{args.number} (load average {os.getloadavg()[0]:.1f})")
        print(f"{'scenario':14s} {'hello':>8s} {'service':>8s} {'baseline':>9s} "
              f"{'service-hello':>14s}")
        for name in SCENARIO_NAMES:
            scenario = scenarios[name]
            # A thousand-row request costs a thousand times more: fewer of them.
            number = max(args.number // scenario.rows, 20)
            service = cpu_us(wsgi_caller(apps["service"], scenario.path.replace(
                "{model}", "sales-forecast"), scenario.body), args.rounds, number)
            baseline = "-"
            if "infer" not in name:  # the baseline has no V2 endpoint
                call = wsgi_caller(apps["baseline"], scenario.path, scenario.body)
                baseline = f"{cpu_us(call, args.rounds, max(number // 10, 10)):9.1f}"
            print(f"{name:14s} {hello:8.1f} {service:8.1f} {baseline:>9s} "
                  f"{service - hello:+14.1f}")

        if args.profile:
            scenario = scenarios[args.profile]
            call = wsgi_caller(apps["service"], scenario.path.replace(
                "{model}", "sales-forecast"), scenario.body)
            profile = cProfile.Profile()
            profile.runcall(lambda: [call() for _ in range(args.number)])
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
