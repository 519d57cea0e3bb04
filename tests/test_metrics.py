"""Metrics and request logs: names, labels and values through the Flask test client,
the start-up checks and gunicorn hooks that keep them right across workers, and
(marker `integration`) a real gunicorn losing a worker.

In this process PROMETHEUS_MULTIPROC_DIR is unset (conftest clears it), so every app
has a private registry: each test starts from zero.
"""

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from gunicorn.http import errors as wire
from prometheus_client.parser import text_string_to_metric_families

from service import metrics as service_metrics
from service.app import create_app
from service.config import Settings
from service.metrics import MultiprocDirError, prepare_multiproc_dir
from tests.conftest import ROOT
from training import artifact

# Every family the service exports: type and label names. The report and
# docs/observability.md list the same table.
FAMILIES = {
    "sales_forecast_http_requests": ("counter", {"method", "endpoint", "status"}),
    "sales_forecast_http_request_duration_seconds":
        ("histogram", {"method", "endpoint", "status"}),
    "sales_forecast_inference_duration_seconds": ("histogram", {"operation"}),
    "sales_forecast_prediction_rows": ("histogram", {"operation"}),
    "sales_forecast_predictions": ("counter", {"operation"}),
    "sales_forecast_prediction_errors": ("counter", {"operation", "code"}),
    "sales_forecast_model_loads": ("counter", {"outcome"}),
    "sales_forecast_model_loaded": ("gauge", set()),
    "sales_forecast_model_info": ("gauge", {"version", "trained_at"}),
    "sales_forecast_model_created_timestamp_seconds": ("gauge", set()),
}
INFER = "/v2/models/sales-forecast/infer"


def v2_body(*dates: str) -> dict:
    return {"inputs": [{"name": "date", "datatype": "BYTES", "shape": [len(dates)],
                        "data": list(dates)}]}


def scrape(client) -> list:
    response = client.get("/metrics")
    assert response.status_code == 200
    return list(text_string_to_metric_families(response.get_data(as_text=True)))


def value(client, sample: str, **labels) -> float | None:
    """The value of the one sample with this name and exactly these labels."""
    for family in scrape(client):
        for s in family.samples:
            if s.name == sample and s.labels == labels:
                return s.value
    return None


def samples(client, sample: str) -> list:
    return [s for family in scrape(client) for s in family.samples if s.name == sample]


def sample_values(text: str, sample: str) -> list:
    return [s.value for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == sample]


def wait_until(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not true within {timeout}s"
        time.sleep(0.1)


def request_count(client, method: str, endpoint: str, status: int) -> float | None:
    return value(client, "sales_forecast_http_requests_total", method=method,
                 endpoint=endpoint, status=str(status))


@pytest.fixture
def log_lines(app):
    """The service's log output since the app was built, as parsed JSON lines."""
    buffer = io.StringIO()
    logging.getLogger("service").handlers[0].setStream(buffer)
    return lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]


# Names and labels ------------------------------------------------------------

def test_every_family_has_the_declared_type_labels_and_prefix(client):
    client.post("/forecast", json={"horizon": 3})
    client.post("/forecast", json={"horizon": 0})

    exported = {f.name: f for f in scrape(client)}

    assert set(exported) == set(FAMILIES)
    for name, (kind, labels) in FAMILIES.items():
        family = exported[name]
        names = {k for s in family.samples for k in s.labels} - {"le"}
        assert (family.type, names) == (kind, labels), name


def test_requests_are_counted_by_route_template_not_by_raw_path(client):
    client.get("/v2/models/first-name")
    client.get("/v2/models/second-name")
    client.post("/forecast", json={"horizon": 3})

    assert request_count(client, "GET", "/v2/models/<name>", 404) == 2
    assert request_count(client, "POST", "/forecast", 200) == 1
    endpoints = {s.labels["endpoint"] for s in
                 samples(client, "sales_forecast_http_requests_total")}
    assert not any("first-name" in e or "second-name" in e for e in endpoints)


def test_unknown_paths_share_one_label_and_unknown_methods_are_other(client):
    for path in ("/no/such/page", "/another/one", "/v3/anything"):
        assert client.get(path).status_code == 404
    assert client.open("/forecast", method="BREW").status_code == 405

    assert request_count(client, "GET", "unmatched", 404) == 3
    assert request_count(client, "other", "unmatched", 405) == 1


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/v2/health/live",
                                  "/v2/health/ready"])
def test_probes_and_scrapes_are_neither_counted_nor_logged(client, log_lines, path):
    for _ in range(3):
        assert client.get(path).status_code == 200

    assert samples(client, "sales_forecast_http_requests_total") == []
    assert samples(client, "sales_forecast_http_request_duration_seconds_count") == []
    assert [line for line in log_lines() if line["message"] == "request"] == []


def test_a_scrape_names_the_format_it_chose_and_that_it_follows_accept(client):
    classic = client.get("/metrics")
    modern = client.get("/metrics", headers={
        "Accept": "application/openmetrics-text;version=1.0.0"})

    assert classic.headers["Content-Type"].startswith("text/plain")
    assert modern.headers["Content-Type"].startswith("application/openmetrics-text")
    assert modern.get_data(as_text=True).endswith("# EOF\n")
    assert classic.headers["Vary"] == modern.headers["Vary"] == "Accept"


def test_latency_buckets_reach_from_fifty_microseconds_to_the_worker_timeout(client):
    client.get("/model")

    bounds = sorted(float(s.labels["le"]) for s in samples(
        client, "sales_forecast_http_request_duration_seconds_bucket"))

    assert bounds[0] == 0.00005 and bounds[-2] == 30.0 and bounds[-1] == float("inf")
    assert value(client, "sales_forecast_http_request_duration_seconds_count",
                 method="GET", endpoint="/model", status="200") == 1


# Predictions ------------------------------------------------------------------

def test_prediction_metrics_count_rows_calls_and_values(client):
    client.post("/forecast", json={"horizon": 12})
    client.post("/predict", json={"instances": [{"date": "1995-01"}] * 3})
    client.post(INFER, json=v2_body("1995-01", "1995-02"))

    for operation, rows in [("forecast", 12), ("predict", 3), ("infer", 2)]:
        assert value(client, "sales_forecast_predictions_total",
                     operation=operation) == rows
        assert value(client, "sales_forecast_prediction_rows_count",
                     operation=operation) == 1
        assert value(client, "sales_forecast_prediction_rows_sum",
                     operation=operation) == rows
        assert value(client, "sales_forecast_inference_duration_seconds_count",
                     operation=operation) == 1
        # The predictor answers from a table: well under a second even on a busy CI.
        assert 0 < value(client, "sales_forecast_inference_duration_seconds_sum",
                         operation=operation) < 1


@pytest.mark.parametrize("method, path, body, operation, code", [
    ("POST", "/forecast", {"horizon": 0}, "forecast", "bad_request"),
    ("POST", "/forecast", {"series": "atlantis"}, "forecast", "unknown_series"),
    ("POST", "/predict", b"{not json", "predict", "invalid_json"),
    ("POST", "/predict", {"instances": [{"date": "someday"}]}, "predict",
     "bad_request"),
    ("POST", "/v2/models/other-model/infer", v2_body("1995-01"), "infer",
     "model_not_found"),
    ("POST", "/predict", b"x" * (2 * 1024 * 1024 + 1), "predict",
     "request_entity_too_large"),
], ids=["bad-horizon", "unknown-series", "invalid-json", "bad-date",
        "unknown-model", "too-large"])
def test_prediction_errors_are_counted_by_the_code_of_the_error_body(
        client, method, path, body, operation, code):
    if isinstance(body, bytes):
        response = client.open(path, method=method, data=body,
                               content_type="application/json")
    else:
        response = client.open(path, method=method, json=body)

    assert response.get_json()["code"] == code
    assert value(client, "sales_forecast_prediction_errors_total",
                 operation=operation, code=code) == 1
    assert value(client, "sales_forecast_predictions_total",
                 operation=operation) == 0


class MalformedChunks(io.BytesIO):
    """A request body that fails to read the way gunicorn's chunked reader does."""

    def read(self, *args):
        raise wire.InvalidChunkSize(b"zz")

    read1 = readinto = read


def test_a_malformed_body_is_counted_by_the_code_of_its_error_body(client):
    response = client.post("/forecast", input_stream=MalformedChunks(b"{}"),
                           content_type="application/json",
                           environ_overrides={"wsgi.input_terminated": True})

    code = response.get_json()["code"]
    assert (response.status_code, code) == (400, "bad_request")
    assert value(client, "sales_forecast_prediction_errors_total",
                 operation="forecast", code=code) == 1


def test_errors_outside_prediction_endpoints_are_not_prediction_errors(client):
    client.get("/v2/models/other-model")
    client.get("/no/such/page")

    assert samples(client, "sales_forecast_prediction_errors_total") == []


# The model --------------------------------------------------------------------

def test_model_gauges_describe_the_version_served(client, trained_store):
    version = artifact.read_current(trained_store)
    created_at = artifact.read_metadata(trained_store, version)["created_at"]

    assert value(client, "sales_forecast_model_loaded") == 1
    assert value(client, "sales_forecast_model_info", version=version,
                 trained_at=created_at) == 1
    assert value(client, "sales_forecast_model_created_timestamp_seconds") == \
        datetime.fromisoformat(created_at).timestamp()
    assert value(client, "sales_forecast_model_loads_total", outcome="success") == 1
    assert value(client, "sales_forecast_model_loads_total", outcome="failure") == 0


def republish(model_dir: Path, version: str, created_at: str) -> None:
    """Publish the current model again under a new version id (no retraining)."""
    model, metadata = artifact.load_version(model_dir, artifact.read_current(model_dir))
    artifact.write_version(model_dir, version, model,
                           {**metadata, "created_at": created_at})
    artifact.set_current(model_dir, version)


def test_a_new_version_takes_over_and_a_refused_one_is_counted(store_copy):
    app = create_app(Settings(model_dir=store_copy), watch=False)
    client, store = app.test_client(), app.extensions["model_store"]
    first = artifact.read_current(store_copy)

    republish(store_copy, "20990101T000000Z-0000000a", "2099-01-01T00:00:00+00:00")
    store.refresh()

    info = {s.labels["version"]: s.value
            for s in samples(client, "sales_forecast_model_info")}
    assert info == {first: 0, "20990101T000000Z-0000000a": 1}
    assert value(client, "sales_forecast_model_created_timestamp_seconds") == \
        datetime.fromisoformat("2099-01-01T00:00:00+00:00").timestamp()
    assert value(client, "sales_forecast_model_loads_total", outcome="success") == 2

    republish(store_copy, "20990202T000000Z-0000000b", "2099-02-02T00:00:00+00:00")
    (store_copy / "versions" / "20990202T000000Z-0000000b" / "model.joblib") \
        .write_bytes(b"not a model")
    store.refresh()

    assert value(client, "sales_forecast_model_loads_total", outcome="failure") == 1
    assert value(client, "sales_forecast_model_loaded") == 1
    assert "20990202T000000Z-0000000b" not in {
        s.labels["version"] for s in samples(client, "sales_forecast_model_info")}


def test_without_a_model_loaded_is_zero_and_no_version_is_served(tmp_path):
    client = create_app(Settings(model_dir=tmp_path / "empty"), watch=False) \
        .test_client()

    assert client.post("/forecast", json={}).status_code == 503
    assert value(client, "sales_forecast_model_loaded") == 0
    assert samples(client, "sales_forecast_model_info") == []
    assert value(client, "sales_forecast_model_created_timestamp_seconds") == 0
    assert value(client, "sales_forecast_prediction_errors_total",
                 operation="forecast", code="not_ready") == 1


def test_each_app_counts_only_its_own_requests(trained_store):
    one = create_app(Settings(model_dir=trained_store), watch=False).test_client()
    two = create_app(Settings(model_dir=trained_store), watch=False).test_client()

    one.get("/model")
    one.get("/model")
    two.get("/model")

    assert request_count(one, "GET", "/model", 200) == 2
    assert request_count(two, "GET", "/model", 200) == 1


# Request logs ------------------------------------------------------------------

def test_one_json_line_per_request_without_the_body(client, log_lines, trained_store):
    secret = "do-not-log-this-series-name"
    client.post("/forecast", json={"series": secret},
                headers={"X-Request-ID": "req-42"})

    lines = [line for line in log_lines() if line["message"] == "request"]

    assert len(lines) == 1
    line = lines[0]
    assert {k: line[k] for k in ("method", "path", "status", "request_id",
                                 "model_version")} == {
        "method": "POST", "path": "/forecast", "status": 404, "request_id": "req-42",
        "model_version": artifact.read_current(trained_store)}
    assert 0 < line["duration_ms"] < 1000
    assert line["level"] == "info" and line["time"].endswith("Z")
    assert secret not in json.dumps(log_lines())


@pytest.mark.parametrize("sent, echoed", [
    ("abc-123", True),
    (None, False),
    ("x" * 129, False),
    ("bell\x07", False),
    # The UTF-8 bytes of "é" as a WSGI server hands them on: one Latin-1 character
    # each, printable, and in the log a name the client never sent.
    ("caf\xc3\xa9", False),
], ids=["echoed", "absent", "too-long", "unprintable", "not-ascii"])
def test_the_request_id_is_echoed_or_generated(client, log_lines, sent, echoed):
    headers = {} if sent is None else {"X-Request-ID": sent}

    returned = client.get("/model", headers=headers).headers["X-Request-ID"]

    if echoed:
        assert returned == sent
    else:
        assert len(returned) == 32 and int(returned, 16) >= 0
    assert log_lines()[-1]["request_id"] == returned


def test_the_log_level_comes_from_the_environment(monkeypatch, trained_store):
    monkeypatch.setenv("SALES_FORECAST_MODEL_DIR", str(trained_store))
    monkeypatch.setenv("SALES_FORECAST_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("SALES_FORECAST_RELOAD_INTERVAL", "0")
    client = create_app().test_client()
    buffer = io.StringIO()
    logging.getLogger("service").handlers[0].setStream(buffer)

    client.get("/model")
    client.get("/no/such/page")

    assert buffer.getvalue() == ""
    monkeypatch.setenv("SALES_FORECAST_LOG_LEVEL", "loud")
    with pytest.raises(SystemExit, match="must be one of debug, info, warning, "
                                         "error, critical; got 'loud'"):
        create_app()


# The multiprocess directory and the gunicorn hooks -----------------------------

def test_an_unset_multiproc_dir_is_refused_with_the_fix():
    with pytest.raises(MultiprocDirError, match="PROMETHEUS_MULTIPROC_DIR is not set.*"
                                                "Set it to an empty writable"):
        prepare_multiproc_dir({})


def test_a_missing_leaf_directory_is_created_but_a_missing_parent_is_refused(
        tmp_path):
    leaf = tmp_path / "metrics"

    assert prepare_multiproc_dir({"PROMETHEUS_MULTIPROC_DIR": str(leaf)}) == (leaf, 0)
    assert leaf.is_dir()
    with pytest.raises(MultiprocDirError, match="neither does its parent"):
        prepare_multiproc_dir({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "a" / "b")})


def test_a_file_or_an_unwritable_directory_is_refused(tmp_path):
    a_file = tmp_path / "metrics"
    a_file.write_text("")

    with pytest.raises(MultiprocDirError, match="is not a directory"):
        prepare_multiproc_dir({"PROMETHEUS_MULTIPROC_DIR": str(a_file)})
    # procfs refuses new files even to root, so this holds in CI too.
    with pytest.raises(MultiprocDirError, match="'/proc/self' is not writable"):
        prepare_multiproc_dir({"PROMETHEUS_MULTIPROC_DIR": "/proc/self"})


def test_start_up_removes_only_the_files_prometheus_client_writes(tmp_path):
    stale = ["counter_12.db", "histogram_12.db", "gauge_livemin_12.db",
             "gauge_all_7.db", "summary_3.db"]
    kept = ["notes.txt", "counter_abc.db", "counter_12.db.bak"]
    for name in stale + kept:
        (tmp_path / name).write_text("")

    _, removed = prepare_multiproc_dir({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})

    assert removed == len(stale)
    # .lock: the running server's claim on the directory.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept + [".lock"])


def test_gunicorn_hooks_prepare_the_directory_and_forget_dead_workers(
        monkeypatch, tmp_path):
    from service import gunicorn_conf

    metrics_dir = tmp_path / "metrics"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    messages = []
    server = SimpleNamespace(log=SimpleNamespace(info=lambda *a: messages.append(a)),
                             cfg=SimpleNamespace(is_ssl=False),
                             handle_term=lambda: None)

    gunicorn_conf.on_starting(server)
    for name in ("counter_41.db", "gauge_livemin_41.db", "gauge_livemax_41.db",
                 "gauge_livemin_42.db"):
        (metrics_dir / name).write_text("")
    gunicorn_conf.child_exit(server, SimpleNamespace(pid=41))

    assert metrics_dir.is_dir() and "metrics directory" in messages[0][0]
    assert sorted(p.name for p in metrics_dir.iterdir()) == [
        ".lock", "counter_41.db", "gauge_livemin_42.db"]


def test_the_module_level_mark_uses_prometheus_client(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    (tmp_path / "gauge_liveall_9.db").write_text("")

    service_metrics.mark_worker_dead(9)

    assert list(tmp_path.iterdir()) == []


# Real gunicorn -------------------------------------------------------------------

@pytest.mark.integration
def test_gunicorn_refuses_to_start_without_a_multiproc_dir(trained_store):
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}

    result = subprocess.run(
        [sys.executable, "-m", "service", "--model-dir", str(trained_store),
         "--port", "1"], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=60)

    assert result.returncode == 1
    assert "PROMETHEUS_MULTIPROC_DIR is not set" in result.stderr
    assert "Booting worker" not in result.stderr


@pytest.mark.integration
def test_a_killed_worker_keeps_its_counts_and_loses_its_gauges(live_server,
                                                               trained_store):
    server = live_server(trained_store)
    metrics_dir = Path(server.env["PROMETHEUS_MULTIPROC_DIR"])
    with requests.Session() as session:
        for _ in range(20):
            assert session.get(server.url + "/model", timeout=5).ok
    # Ready means one worker is ready; the other writes its counters once it has
    # loaded the model (its load attempt is counted).
    wait_until(lambda: len(list(metrics_dir.glob("counter_*"))) == 2)
    workers = sorted(int(p.stem.split("_")[-1]) for p in metrics_dir.glob("counter_*"))
    assert len(workers) == 2

    os.kill(workers[0], signal.SIGKILL)
    # The master's child_exit removes the dead worker's live gauges; the new
    # worker writes its own once it has loaded the model.
    wait_until(lambda: not list(metrics_dir.glob(f"gauge_live*_{workers[0]}.db"))
               and len(list(metrics_dir.glob("gauge_livemin_*"))) == 2)
    server.wait_for("/readyz")
    text = requests.get(server.url + "/metrics", timeout=5).text

    assert not list(metrics_dir.glob(f"gauge_live*_{workers[0]}.db"))
    assert (metrics_dir / f"counter_{workers[0]}.db").exists()
    assert sample_values(text, "sales_forecast_http_requests_total") == [20]
    assert sample_values(text, "sales_forecast_model_loaded") == [1]


@pytest.mark.integration
def test_a_second_server_on_the_same_directory_stops_and_leaves_its_files(
        live_server, trained_store):
    server = live_server(trained_store)
    metrics_dir = Path(server.env["PROMETHEUS_MULTIPROC_DIR"])
    for _ in range(5):
        assert requests.get(server.url + "/model", timeout=5).ok
    before = sorted(p.name for p in metrics_dir.iterdir())

    # Same directory, same busy port: as a copy-pasted command line would start it.
    result = subprocess.run(server.args, env=server.env, cwd=ROOT, capture_output=True,
                            text=True, timeout=60)

    assert result.returncode == 1
    assert "is in use by another server that is still running" in result.stderr
    # The running server's other worker may add its files meanwhile; none may go.
    assert set(before) <= {p.name for p in metrics_dir.iterdir()}
    text = requests.get(server.url + "/metrics", timeout=5).text
    assert sample_values(text, "sales_forecast_http_requests_total") == [5]
