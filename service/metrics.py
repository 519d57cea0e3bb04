"""Prometheus metrics that stay correct when gunicorn runs several worker processes.

Every worker is its own Python process with its own counters. In multiprocess mode
(`PROMETHEUS_MULTIPROC_DIR` set before `prometheus_client` is imported, which
`service/gunicorn_conf.py` guarantees) each process writes its values to memory-mapped
files in that directory, and a scrape of `/metrics`, answered by whichever worker
gets it, reads the files of all of them through a fresh `CollectorRegistry` with a
`MultiProcessCollector` (prometheus-flask-exporter does this per scrape). Counters and
histograms of workers that have exited keep counting toward the totals, as a counter
must; gauges are aggregated by the mode chosen for each one below, and the gunicorn
master removes a dead worker's live gauges (`child_exit` -> `mark_process_dead`).

Without the variable (the Flask test client, a Python shell) every `Metrics` has a
private registry, so two apps in one process never see each other's numbers.

Every name starts with `sales_forecast_` and uses base units (seconds, rows).
"""

import fcntl
import logging
import os
import re
import tempfile
import time
from datetime import datetime
from functools import wraps
from pathlib import Path

from flask import Flask, g, make_response
from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram,
                               disable_created_metrics)
from prometheus_flask_exporter import PrometheusMetrics

log = logging.getLogger("service")

# Multiprocess mode never exports `_created` series; without this, a single-process
# scrape would carry one extra gauge per counter and histogram series that a
# gunicorn scrape lacks. It is process-wide, and this process is the service.
disable_created_metrics()

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "sales_forecast_"

# In-process answers take about 0.1 ms, so the low buckets are fine enough to tell
# 50 us from 100 us; the top one is the default worker timeout (30 s), past which
# gunicorn kills the request anyway.
REQUEST_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                   0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The predictor answers from a precomputed table: a few microseconds per request,
# up to milliseconds for a 10 000-row batch.
INFERENCE_BUCKETS = (0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
                     0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
# 12 and 60 are the default and largest forecast horizons; 10 000 is the most rows
# one /predict or V2 request may carry (service.http.MAX_ROWS).
ROW_BUCKETS = (1, 2, 5, 12, 24, 60, 100, 250, 500, 1000, 2500, 5000, 10000)

# Routes whose view calls the predictor, and the `operation` label each gets.
PREDICTION_ENDPOINTS = {"forecast": "forecast", "predict": "predict", "infer": "infer"}
# Anything else a client sends as a method is counted as "other": the method is
# client-controlled text, and each distinct value would be a new time series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
# The endpoint label of requests that matched no route (404, 405).
UNMATCHED = "unmatched"

# The file names prometheus_client gives its per-process files; only these are
# deleted when the master starts, whatever else the directory holds.
_PROCESS_FILE = re.compile(r"^(counter|histogram|summary|gauge_[a-z]+)_\d+\.db$")


def _varies_with_accept(view):
    """The scrape answers OpenMetrics or the classic text format as the Accept header
    asks; `Vary: Accept` keeps a cache between scraper and service from handing one
    client the other's format."""
    @wraps(view)
    def scrape():
        response = make_response(view())
        response.vary.add("Accept")
        return response
    return scrape


class MultiprocDirError(SystemExit):
    """PROMETHEUS_MULTIPROC_DIR is unusable; raised before gunicorn starts workers,
    so the message is printed and the process exits with status 1."""


def prepare_multiproc_dir(environ=os.environ) -> tuple[Path, int]:
    """Check, create if need be, and empty the multiprocess directory; returns it
    with the number of files an earlier run left there.

    Called by the gunicorn master before any worker exists. The directory is
    created when only its last component is missing, because the image points the
    variable at a tmpfs (`/tmp/metrics`) that starts empty on every container
    start; a missing parent is more likely a typo, so that is refused.
    """
    raw = environ.get(MULTIPROC_ENV, "")
    if not raw:
        raise MultiprocDirError(
            f"{MULTIPROC_ENV} is not set. Under gunicorn every worker keeps its own "
            "metrics, and without a shared directory each scrape of /metrics would "
            "see one worker's numbers only. Set it to an empty writable directory, "
            f"e.g. {MULTIPROC_ENV}=/tmp/sales-forecast-metrics.")

    path = Path(raw)
    if not path.exists():
        if not path.parent.is_dir():
            raise MultiprocDirError(
                f"{MULTIPROC_ENV}={raw!r} does not exist and neither does its parent "
                f"{str(path.parent)!r}; create the directory or point the variable "
                "at an existing writable one.")
        try:
            path.mkdir()
        except OSError as e:
            raise MultiprocDirError(
                f"{MULTIPROC_ENV}={raw!r} does not exist and cannot be created: "
                f"{e.strerror}. Create it, or point the variable at a writable "
                "directory.") from None
    if not path.is_dir():
        raise MultiprocDirError(
            f"{MULTIPROC_ENV}={raw!r} is not a directory; point it at an empty "
            "writable directory.")
    try:
        tempfile.TemporaryFile(dir=path).close()
    except OSError as e:
        raise MultiprocDirError(
            f"{MULTIPROC_ENV}={raw!r} is not writable by uid {os.getuid()}: "
            f"{e.strerror}. Make it writable for the user running the service (a "
            "tmpfs or emptyDir volume works).") from None

    _hold(path, raw)
    removed = clean_multiproc_dir(path)
    return path, removed


# Lock files this process holds open, by directory: the lock lasts as long as the
# master or any worker it forked (they inherit the descriptor) is alive.
_HELD: dict[Path, int] = {}


def _hold(path: Path, raw: str) -> None:
    """Claim the directory for this server. Another server still running on it
    (a second start on a busy port, a copy-pasted environment) would otherwise have
    its live files removed by the cleaning, and its metrics would vanish."""
    key = path.resolve()
    if key in _HELD:
        return
    descriptor = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise MultiprocDirError(
            f"{MULTIPROC_ENV}={raw!r} is in use by another server that is still "
            "running; give each server its own directory (its metrics files would "
            "be removed).") from None
    _HELD[key] = descriptor


def clean_multiproc_dir(path: Path) -> int:
    """Delete the files an earlier run's processes left behind.

    Their pids may be reused by this run's workers, whose counters would then
    start from the old values; and dead workers' counters would be added to this
    run's totals forever.
    """
    removed = 0
    for entry in os.scandir(path):
        if entry.is_file() and _PROCESS_FILE.match(entry.name):
            os.unlink(entry.path)
            removed += 1
    return removed


def mark_worker_dead(pid: int) -> None:
    """Drop an exited worker's live gauges (its counters stay in the totals)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)


def created_timestamp(metadata: dict) -> float | None:
    """Seconds since the epoch of the metadata's `created_at`, None if unusable."""
    try:
        return datetime.fromisoformat(metadata["created_at"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None


class Metrics:
    """All metrics of one application, and the hooks that feed them.

    Built once per app (so once per gunicorn worker). The request path stays cheap:
    the labelled children are looked up once per (method, route, status) and
    cached, so a request costs one counter increment and one histogram
    observation, both in-memory writes.
    """

    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry

        self.requests = Counter(
            PREFIX + "http_requests", "HTTP requests answered, by route template.",
            ["method", "endpoint", "status"], registry=r)
        self.request_duration = Histogram(
            PREFIX + "http_request_duration_seconds",
            "Time from the start of request handling in Flask to the response, "
            "by route template.",
            ["method", "endpoint", "status"], buckets=REQUEST_BUCKETS, registry=r)

        self.inference_duration = Histogram(
            PREFIX + "inference_duration_seconds",
            "Time spent in the predictor call of a prediction request.",
            ["operation"], buckets=INFERENCE_BUCKETS, registry=r)
        self.rows = Histogram(
            PREFIX + "prediction_rows",
            "Rows answered per successful prediction request (forecast months, "
            "instances or V2 values).",
            ["operation"], buckets=ROW_BUCKETS, registry=r)
        self.predictions = Counter(
            PREFIX + "predictions", "Predicted values served.",
            ["operation"], registry=r)
        self.prediction_errors = Counter(
            PREFIX + "prediction_errors",
            "Prediction requests refused, by the `code` of the error body.",
            ["operation", "code"], registry=r)

        self.model_loads = Counter(
            PREFIX + "model_loads",
            "Attempts to load a model version, by outcome (each worker loads on its "
            "own, so one published version counts once per worker).",
            ["outcome"], registry=r)
        # The model gauges are created by the first report of what this worker
        # serves (`model_served`), made after its initial load attempt: a labelless
        # gauge is written the moment it exists, and a worker still booting must
        # not read as a worker without a model.
        self.model_loaded = self.model_info = self.model_created = None

        for outcome in ("success", "failure"):
            self.model_loads.labels(outcome)
        self._prediction_children = {
            operation: (self.inference_duration.labels(operation),
                        self.rows.labels(operation), self.predictions.labels(operation))
            for operation in PREDICTION_ENDPOINTS.values()}
        self._served_info = None
        self._request_children = {}
        self._error_children = {}

    def init_app(self, app: Flask) -> None:
        """Serve /metrics on `app`. prometheus-flask-exporter collects through a fresh
        registry with a MultiProcessCollector per scrape when the multiprocess
        variable is set, and through this object's registry otherwise."""
        exporter = PrometheusMetrics.for_app_factory(
            registry=self.registry, export_defaults=False, path="/metrics",
            metrics_decorator=_varies_with_accept)
        exporter.init_app(app)
        app.extensions["metrics"] = self

    # Request path -------------------------------------------------------------

    def observe_request(self, method: str, rule, status: int, seconds: float) -> None:
        """Count one answered request. `rule` is Flask's `request.url_rule`: the
        route template, so /v2/models/a and /v2/models/b share one series."""
        if method not in METHODS:
            method = "other"
        endpoint = rule.rule if rule is not None else UNMATCHED
        key = (method, endpoint, status)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.requests.labels(method, endpoint, str(status)),
                self.request_duration.labels(method, endpoint, str(status)))
        children[0].inc()
        children[1].observe(seconds)

        if status >= 400 and rule is not None:
            operation = PREDICTION_ENDPOINTS.get(rule.endpoint)
            if operation is not None:
                key = (operation, g.get("error_code") or f"http_{status}")
                counter = self._error_children.get(key)
                if counter is None:
                    counter = self._error_children[key] = \
                        self.prediction_errors.labels(*key)
                counter.inc()

    def observe_prediction(self, operation: str, started: float, rows: int) -> None:
        """Record one successful predictor call that began at `started`
        (a `time.perf_counter()` value) and answered `rows` values."""
        seconds = time.perf_counter() - started
        duration, row_counts, predictions = self._prediction_children[operation]
        duration.observe(seconds)
        row_counts.observe(rows)
        predictions.inc(rows)

    # Model state --------------------------------------------------------------

    def model_load(self, outcome: str, predictor) -> None:
        """The model store's `on_load` callback: count the attempt, then publish
        what this worker serves now (`predictor`, None when it has no model)."""
        self.model_loads.labels(outcome).inc()
        self.model_served(predictor)

    def model_served(self, predictor) -> None:
        if self.model_loaded is None:
            self._create_model_gauges()
        if predictor is None:
            self.model_loaded.set(0)
            return
        metadata = predictor.metadata
        labels = (predictor.version, str(metadata.get("created_at", "")))
        if labels != self._served_info:
            if self._served_info is not None:
                self.model_info.labels(*self._served_info).set(0)
            self.model_info.labels(*labels).set(1)
            self._served_info = labels
        created = created_timestamp(metadata)
        if created is None:
            log.warning("model %s has no usable created_at in its metadata; "
                        "its age is not exported", predictor.version)
        self.model_created.set(created or 0)
        self.model_loaded.set(1)

    def _create_model_gauges(self) -> None:
        r = self.registry
        # livemin: 1 only while every live worker has a model. A worker without
        # one answers 503 to its share of the traffic, which is what the alert
        # on this gauge is about; a dead worker's value is dropped by child_exit.
        self.model_loaded = Gauge(
            PREFIX + "model_loaded",
            "1 when every live worker has a model to answer with, else 0.",
            registry=r, multiprocess_mode="livemin")
        # livemax over (version, trained_at): a worker sets the series of the
        # version it serves to 1 and the one it left to 0, so a version shows 1
        # while at least one live worker still serves it (both show 1 during a
        # switch) and a worker that exited cannot keep an old version alive.
        # Versions left behind stay exported with value 0: multiprocess files
        # cannot drop a series, so queries select `== 1`.
        self.model_info = Gauge(
            PREFIX + "model_info",
            "The model version served (value 1), with its training time.",
            ["version", "trained_at"], registry=r, multiprocess_mode="livemax")
        # A timestamp rather than an age: it changes only when a model loads, so
        # no worker has to recompute anything per scrape, and `time() - x` in a
        # query or alert gives the age at any evaluation time. livemax: the
        # newest model any live worker serves; a worker without a model reports
        # 0 and drops out of the max (the loaded gauge covers that case).
        self.model_created = Gauge(
            PREFIX + "model_created_timestamp_seconds",
            "When the served model version was trained (its metadata created_at), "
            "in seconds since the epoch; 0 without a model.",
            registry=r, multiprocess_mode="livemax")
