"""The HTTP API through Flask's test client: answers, and an error for every bad input."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from service.app import create_app
from service.config import Settings, draining_marker
from service.predictor import MAX_MONTHS_AHEAD, Predictor
from training import artifact


def test_forecast_returns_the_next_twelve_months_after_the_history(client):
    response = client.post("/forecast", json={"horizon": 12})

    assert response.status_code == 200
    body = response.get_json()
    assert body["series"] == "wineind"
    assert body["history_ends"] == "1994-08"
    assert body["intervals_calibrated"] is True
    assert [row["date"] for row in body["forecast"]] == [
        d.strftime("%Y-%m-%d") for d in pd.date_range("1994-09-01", periods=12, freq="MS")
    ]
    assert all(10_000 < row["sales"] < 60_000 for row in body["forecast"])
    assert body["model_version"] == client.get("/model").get_json()["version"]


def test_a_whole_horizon_written_as_a_decimal_is_the_same_horizon(client):
    # JSON has one number type; a client that sends 12.0 means 12.
    assert client.post("/forecast", json={"horizon": 12.0}).get_json() == \
        client.post("/forecast", json={"horizon": 12}).get_json()


def test_forecast_equals_the_fitted_estimator(client, trained_store):
    version = artifact.read_current(trained_store)
    model, _ = artifact.load_version(trained_store, version)
    rows = pd.DataFrame({"date": pd.date_range("1994-09-01", periods=24, freq="MS"),
                         "series": "wineind"})

    body = client.post("/forecast", json={"horizon": 24, "series": "wineind"}).get_json()

    assert [r["sales"] for r in body["forecast"]] == model.predict(rows).tolist()


def test_predict_answers_each_instance_in_order(client):
    instances = [{"date": "1995-01"}, {"date": "1980-01-01", "series": "wineind"},
                 {"date": "1995-01-15"}]

    body = client.post("/predict", json={"instances": instances}).get_json()

    first, second, third = body["predictions"]
    assert first == third
    assert first != second


def test_v2_metadata_and_infer(client):
    meta = client.get("/v2/models/sales-forecast").get_json()
    assert [i["name"] for i in meta["inputs"]] == ["date", "series"]

    body = client.post("/v2/models/sales-forecast/infer", json={
        "id": "r1",
        "inputs": [{"name": "date", "datatype": "BYTES", "shape": [2],
                    "data": ["1995-01", "1995-02"]}],
    }).get_json()
    predict = client.post("/predict", json={"instances": [
        {"date": "1995-01"}, {"date": "1995-02"}]}).get_json()

    assert body["id"] == "r1"
    assert body["outputs"][0]["data"] == predict["predictions"]


def test_v2_infer_reads_data_nested_as_its_shape_says(client):
    def infer(shape, data):
        return client.post("/v2/models/sales-forecast/infer", json={"inputs": [
            {"name": "date", "datatype": "BYTES", "shape": shape, "data": data}]})

    flat = infer([2], ["1995-01", "1995-02"]).get_json()["outputs"][0]["data"]
    nested = infer([2, 1], [["1995-01"], ["1995-02"]]).get_json()["outputs"][0]

    assert nested["data"] == flat


def test_v2_server_metadata_names_the_server_version_the_project_releases(client):
    import tomllib

    import yaml

    root = Path(__file__).resolve().parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    chart = yaml.safe_load((root / "charts/sales-forecast/Chart.yaml").read_text())

    meta = client.get("/v2").get_json()

    # The protocol's own version ("2") is not the server's.
    assert meta["version"] == project["version"] == chart["appVersion"]
    assert meta["name"] == "sales-forecast" and meta["extensions"] == []


def test_v2_infer_accepts_parameters_objects_where_the_protocol_allows_them(client):
    response = client.post("/v2/models/sales-forecast/infer", json={
        "id": "r2", "parameters": {"content_type": "str"},
        "inputs": [{"name": "date", "datatype": "BYTES", "shape": [1],
                    "data": ["1995-01"], "parameters": None}],
        "outputs": [{"name": "sales", "parameters": {"binary_data": False}}],
    })

    assert response.status_code == 200
    assert response.get_json()["id"] == "r2"


def test_health_and_readiness(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").get_json()["status"] == "ready"
    assert client.get("/v2/health/live").get_json() == {"live": True}
    assert client.get("/v2/health/ready").get_json() == {"ready": True}
    assert client.get("/v2/models/sales-forecast/ready").status_code == 200


def test_every_response_carries_a_request_id(client):
    echoed = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    generated = client.get("/healthz")

    assert echoed.headers["X-Request-ID"] == "abc-123"
    assert len(generated.headers["X-Request-ID"]) == 32


@pytest.mark.parametrize("path", ["/healthz", "/model", "/no/such/path?x=<b>", "/",
                                  "/report", "/report.png", "/static/page.js"])
def test_every_response_forbids_guessing_its_content_type(client, path):
    # An error quoting the request is JSON; no browser may read it as a page.
    response = client.get(path)

    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/static//page.js", "/report//", "/v2//health/live"])
def test_doubled_slashes_are_a_json_404_never_a_redirect_to_the_host_header(client,
                                                                            path):
    response = client.get(path, headers={"Host": "elsewhere.example"})

    assert response.status_code == 404
    assert "Location" not in response.headers
    assert response.get_json()["code"] == "not_found"
    assert client.get("/static/page.js").status_code == 200


@pytest.mark.parametrize("path", ["/model", "/history", "/report", "/report.png"])
def test_a_query_parameter_other_than_one_series_is_refused_by_name(client, path):
    typo = client.get(f"{path}?serie=wineind")
    twice = client.get(f"{path}?series=wineind&series=other")

    assert typo.status_code == twice.status_code == 400
    assert typo.get_json()["error"] == ("Unknown query parameter 'serie'; this path "
                                        "takes only 'series'.")
    assert twice.get_json()["error"] == ("The query parameter 'series' is given 2 "
                                         "times; ask for one series per request.")
    assert client.get(f"{path}?series=wineind").status_code == 200


BAD_REQUESTS = [
    ("empty body", "/forecast", b"", 400, "body is empty"),
    ("not json", "/forecast", b"horizon=12", 400, "not valid JSON"),
    ("NaN literal", "/forecast", b'{"horizon": NaN}', 400, "not valid JSON"),
    ("Infinity literal", "/predict", b'{"instances": [Infinity]}', 400,
     "not valid JSON"),
    ("json array", "/forecast", b"[12]", 400, "must be a JSON object, got list"),
    ("horizon zero", "/forecast", b'{"horizon": 0}', 400,
     f"between 1 and {MAX_MONTHS_AHEAD} months, got 0"),
    ("horizon too large", "/forecast", b'{"horizon": 100000}', 400,
     "got 100000"),
    ("horizon fraction", "/forecast", b'{"horizon": 1.5}', 400,
     "whole number of months, got 1.5"),
    ("horizon whole but huge", "/forecast", b'{"horizon": 1e26}', 400,
     f"between 1 and {MAX_MONTHS_AHEAD} months, got 1e+26"),
    ("horizon string", "/forecast", b'{"horizon": "12"}', 400,
     'whole number of months, got "12"'),
    ("horizon bool", "/forecast", b'{"horizon": true}', 400, "got true"),
    ("unknown field", "/forecast", b'{"horizn": 12}', 400,
     "Unknown field 'horizn' in the request; allowed: horizon, series"),
    ("unknown series", "/forecast", b'{"series": "beer"}', 404,
     "unknown series 'beer'; this model has 'wineind'"),
    ("series not a string", "/forecast", b'{"series": 3}', 400,
     "series must be a string, got int"),
    ("no instances", "/predict", b'{"instances": []}', 400, "non-empty list"),
    ("instance not object", "/predict", b'{"instances": ["1995-01"]}', 400,
     "instances[0] must be an object"),
    ("bad date", "/predict", b'{"instances": [{"date": "1995-13"}]}', 400,
     "instances[0].date must be a month as 'YYYY-MM' or 'YYYY-MM-DD', got '1995-13'"),
    ("no such day", "/predict", b'{"instances": [{"date": "1995-02-29"}]}', 400,
     "must be a month as 'YYYY-MM' or 'YYYY-MM-DD', got '1995-02-29'"),
    ("date missing", "/predict", b'{"instances": [{"series": "wineind"}]}', 400,
     "got nothing"),
    ("date too far", "/predict", b'{"instances": [{"date": "2090-01"}]}', 400,
     "month 2090-01 is outside what this model answers"),
    ("date before history", "/predict", b'{"instances": [{"date": "1970-01"}]}', 400,
     "for series 'wineind': 1980-01 to 1999-08"),
    ("v2 wrong datatype", "/v2/models/sales-forecast/infer",
     b'{"inputs": [{"name": "date", "datatype": "FP32", "shape": [1], "data": [1]}]}',
     400, "datatype must be BYTES"),
    ("v2 shape mismatch", "/v2/models/sales-forecast/infer",
     b'{"inputs": [{"name": "date", "datatype": "BYTES", "shape": [3], '
     b'"data": ["1995-01"]}]}', 400, "does not match its 1 values"),
    ("v2 flat and nested mixed", "/v2/models/sales-forecast/infer",
     b'{"inputs": [{"name": "date", "datatype": "BYTES", "shape": [2, 1], '
     b'"data": [["1995-01"], "1995-02"]}]}', 400, "not a mix of both"),
    ("v2 nested rows of two", "/v2/models/sales-forecast/infer",
     b'{"inputs": [{"name": "date", "datatype": "BYTES", "shape": [2], '
     b'"data": [["1995-01", "1995-02"]]}]}', 400, "rows of one value each"),
    ("v2 unknown model", "/v2/models/other/infer", b"{}", 404, "Unknown model 'other'"),
    ("v2 no date", "/v2/models/sales-forecast/infer",
     b'{"inputs": [{"name": "series", "datatype": "BYTES", "shape": [1], '
     b'"data": ["wineind"]}]}', 400, "must include a 'date' tensor"),
    ("v2 bad date", "/v2/models/sales-forecast/infer",
     b'{"inputs": [{"name": "date", "datatype": "BYTES", "shape": [2], '
     b'"data": ["1995-01", "1995-13"]}]}', 400,
     "date[1] must be a month as 'YYYY-MM' or 'YYYY-MM-DD', got '1995-13'"),
    ("v2 id not a string", "/v2/models/sales-forecast/infer",
     b'{"id": {"a": 1}, "inputs": [{"name": "date", "datatype": "BYTES", '
     b'"shape": [1], "data": ["1995-01"]}]}', 400,
     'id must be a string, got {"a":1}'),
    ("v2 parameters not an object", "/v2/models/sales-forecast/infer",
     b'{"parameters": 5, "inputs": [{"name": "date", "datatype": "BYTES", '
     b'"shape": [1], "data": ["1995-01"]}]}', 400,
     "parameters in the request must be an object"),
    ("v2 tensor parameters not an object", "/v2/models/sales-forecast/infer",
     b'{"inputs": [{"name": "date", "datatype": "BYTES", "shape": [1], '
     b'"data": ["1995-01"], "parameters": "x"}]}', 400,
     "parameters in inputs[0] must be an object"),
    ("v2 output parameters not an object", "/v2/models/sales-forecast/infer",
     b'{"inputs": [{"name": "date", "datatype": "BYTES", "shape": [1], '
     b'"data": ["1995-01"]}], "outputs": [{"name": "sales", "parameters": []}]}',
     400, "parameters in outputs[0] must be an object"),
]


@pytest.mark.parametrize("path, body, status, message",
                         [case[1:] for case in BAD_REQUESTS],
                         ids=[case[0] for case in BAD_REQUESTS])
def test_bad_requests_get_a_clear_json_error(client, path, body, status, message):
    response = client.post(path, data=body, content_type="application/json")

    assert response.status_code == status
    payload = response.get_json()
    assert set(payload) == {"error", "code"}
    assert message in payload["error"]


def test_too_many_rows_and_oversized_bodies_are_refused(client):
    rows = [{"date": "1995-01"}] * 10_001
    too_many = client.post("/predict", json={"instances": rows})
    oversized = client.post("/predict", data=b" " * (3 * 1024 * 1024),
                            content_type="application/json")

    assert too_many.status_code == 400
    assert "At most 10000 instances" in too_many.get_json()["error"]
    assert oversized.status_code == 413
    assert oversized.get_json()["code"] == "request_entity_too_large"


def test_unknown_paths_and_methods_keep_the_json_shape(client):
    assert client.get("/nowhere").get_json()["code"] == "not_found"
    assert client.get("/forecast").get_json()["code"] == "method_not_allowed"


def test_without_a_model_the_service_is_alive_but_not_ready(tmp_path):
    client = create_app(Settings(model_dir=tmp_path), watch=False).test_client()

    ready = client.get("/readyz")
    forecast = client.post("/forecast", json={"horizon": 3})

    assert client.get("/healthz").status_code == 200
    assert ready.status_code == 503
    assert "no model published" in ready.get_json()["error"]
    assert forecast.status_code == 503
    assert forecast.get_json()["code"] == "not_ready"


@pytest.mark.parametrize("path", ["/readyz", "/v2/health/ready",
                                  "/v2/models/sales-forecast/ready"])
def test_every_readiness_answer_is_503_while_the_service_drains(client, path):
    # The master marks its shutdown delay with this file (service/gunicorn_conf.py);
    # here the test process plays the worker, so its parent plays the master.
    marker = Path(draining_marker(os.getppid()))
    marker.touch()
    try:
        response = client.get(path)
    finally:
        marker.unlink()

    assert response.status_code == 503
    assert response.get_json() == {"error": "The service is shutting down.",
                                   "code": "not_ready"}


def test_a_model_dir_that_is_a_file_is_named_as_the_mistake(tmp_path):
    model_file = tmp_path / "model.joblib"
    model_file.write_bytes(b"not a folder")
    client = create_app(Settings(model_dir=model_file), watch=False).test_client()

    error = client.post("/forecast", json={"horizon": 3}).get_json()["error"]

    assert f"{model_file} is a file, not a model store folder" in error
    assert ".." not in error


def test_a_tampered_artifact_is_refused_at_start(store_copy):
    version = artifact.read_current(store_copy)
    model_file = store_copy / "versions" / version / "model.joblib"
    model_file.write_bytes(model_file.read_bytes() + b"tampered")

    ready = create_app(Settings(model_dir=store_copy), watch=False).test_client() \
        .get("/readyz")

    assert ready.status_code == 503
    assert "does not match its metadata" in ready.get_json()["error"]


def test_model_endpoint_shows_metadata_and_metrics(client):
    meta = client.get("/model").get_json()

    assert meta["data"]["rows"] == 176
    scores = meta["evaluation"]["wineind"]["scores"]
    assert {"seasonal", "seasonal-naive", "linear"} <= set(scores)
    assert json.dumps(meta)  # plain JSON, no NaN


def test_a_series_spelled_with_other_unicode_characters_is_told_why_it_is_unknown(
        tmp_path):
    import unicodedata

    from tests.conftest import WINEIND, train

    composed = unicodedata.normalize("NFC", "Café")
    lines = WINEIND.read_text().splitlines()
    data = tmp_path / "cafe.csv"
    data.write_text("date,sales,series\n"
                    + "\n".join(f"{line},{composed}" for line in lines[1:]) + "\n")
    assert train(data, tmp_path / "models") == 0
    client = create_app(Settings(model_dir=tmp_path / "models"),
                        watch=False).test_client()

    decomposed = unicodedata.normalize("NFD", "Café")
    response = client.post("/forecast", json={"series": decomposed})

    assert response.status_code == 404
    error = response.get_json()["error"]
    assert ("'Café' looks the same but is spelled with other Unicode characters; ask "
            "for it as it is spelled in the model (Caf\\xe9)") in error
    assert client.post("/forecast", json={"series": composed}).status_code == 200


def answered_within(seconds: float, call):
    """call() run in a thread: a read that blocks (a FIFO) fails the test, not hangs
    it."""
    import threading

    result = {}
    thread = threading.Thread(target=lambda: result.update(value=call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert "value" in result, f"no answer within {seconds} s"
    return result["value"]


@pytest.mark.parametrize("name", ["report.html", artifact.HISTORY_FILE])
@pytest.mark.parametrize("kind", ["fifo", "symlink", "folder"])
def test_a_version_file_that_is_not_a_regular_file_is_never_read(store_copy, tmp_path,
                                                                 name, kind):
    """Only someone with write access to the store can put these there; still, a
    FIFO must not hang a thread, a link must not serve a file from elsewhere, and a
    folder must not make a 500."""
    import os

    client = create_app(Settings(model_dir=store_copy), watch=False).test_client()
    version = artifact.read_current(store_copy)
    path = store_copy / "versions" / version / name
    path.unlink()
    outside = tmp_path / "secret.txt"
    outside.write_text("SECRET")
    {"fifo": lambda: os.mkfifo(path), "symlink": lambda: path.symlink_to(outside),
     "folder": lambda: path.mkdir()}[kind]()
    url = "/report" if name == "report.html" else "/history"

    answer = answered_within(10, lambda: client.get(url))

    # The store is at fault, not the request: a server error, so alerts see it.
    assert answer.status_code == 500
    assert answer.get_json()["code"] == "store_damaged"
    assert "regular file" in answer.get_json()["error"]
    assert b"SECRET" not in answer.data


@pytest.mark.parametrize("url", ["/history", "/report?series=wineind"])
def test_a_history_file_that_is_not_json_is_a_damaged_store(store_copy, url):
    client = create_app(Settings(model_dir=store_copy), watch=False).test_client()
    version = artifact.read_current(store_copy)
    (store_copy / "versions" / version / artifact.HISTORY_FILE).write_text("{not json")

    answer = client.get(url)

    assert answer.status_code == 500
    body = answer.get_json()
    assert body["code"] == "store_damaged"
    assert f"model version {version}" in body["error"]
    assert "train again to replace it" in body["error"]


def test_a_damaged_store_is_logged_for_whoever_the_alert_pages(store_copy, capsys):
    client = create_app(Settings(model_dir=store_copy), watch=False).test_client()
    version = artifact.read_current(store_copy)
    (store_copy / "versions" / version / "report.html").unlink()
    (store_copy / "versions" / version / "report.html").mkdir()
    capsys.readouterr()

    answer = client.get("/report", headers={"X-Request-ID": "damaged-1"})

    assert answer.status_code == 500
    errors = [json.loads(line) for line in capsys.readouterr().err.splitlines()
              if '"level":"error"' in line.replace(" ", "")]
    assert len(errors) == 1
    assert errors[0]["request_id"] == "damaged-1"
    assert "store_damaged on GET /report" in errors[0]["message"]
    assert "not a regular file" in errors[0]["message"]


@pytest.mark.parametrize("url", ["/history", "/report?series=wineind",
                                 "/report.png?series=wineind"])
@pytest.mark.parametrize("content", [
    '{"series": []}',
    '{"series": {"wineind": {"first": "1980-01"}}}',
    '{"series": {"wineind": {"first": "1980-01", "sales": ["many"]}}}',
    '{"series": {"wineind": {"first": "January", "sales": [1.0]}}}',
    "[]",
], ids=["list", "no-sales", "text-sale", "bad-month", "not-an-object"])
def test_a_history_file_of_another_shape_is_a_damaged_store(store_copy, url,
                                                           content):
    client = create_app(Settings(model_dir=store_copy), watch=False).test_client()
    version = artifact.read_current(store_copy)
    (store_copy / "versions" / version / artifact.HISTORY_FILE).write_text(content)

    answer = client.get(url)

    assert answer.status_code == 500
    body = answer.get_json()
    assert body["code"] == "store_damaged"
    assert "train again to replace it" in body["error"]


@pytest.mark.parametrize("name", ["report.html", artifact.HISTORY_FILE])
@pytest.mark.parametrize("removed", ["file", "version"])
def test_a_missing_version_file_is_explained(store_copy, name, removed):
    import shutil

    client = create_app(Settings(model_dir=store_copy), watch=False).test_client()
    version = artifact.read_current(store_copy)
    folder = store_copy / "versions" / version
    if removed == "file":
        (folder / name).unlink()
    else:  # pruned or deleted by hand while it is served
        shutil.rmtree(folder)
    url = "/report" if name == "report.html" else "/history"

    answer = client.get(url)

    assert answer.status_code == 404
    message = answer.get_json()["error"]
    if removed == "file":
        assert f"has no {name}: it was trained before" in message
        assert "or the file was removed" in message
    else:
        assert "still served but its files were removed from the model store" \
            in message


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_current_pointer_that_is_not_a_regular_file_is_refused_at_once(store_copy,
                                                                        kind):
    import os

    client = create_app(Settings(model_dir=store_copy), watch=False).test_client()
    store = client.application.extensions["model_store"]
    served = store.predictor.version
    (store_copy / artifact.CURRENT).unlink()
    {"fifo": lambda: os.mkfifo(store_copy / artifact.CURRENT),
     "folder": lambda: (store_copy / artifact.CURRENT).mkdir()}[kind]()

    answered_within(10, store.refresh)
    first = store._reported
    answered_within(10, store.refresh)

    assert "not a regular file" in first and store._reported == first  # logged once
    assert client.post("/forecast", json={"horizon": 1}).get_json()[
        "model_version"] == served


def test_a_store_the_service_user_cannot_read_is_named_as_such(store_copy,
                                                               monkeypatch):
    import os

    def refused(real):
        def call(path, *args, **kwargs):
            if str(path).startswith(str(store_copy)):
                raise PermissionError(13, "Permission denied", str(path))
            return real(path, *args, **kwargs)
        return call

    # As a training job with umask 077 leaves a store for a service of another uid.
    monkeypatch.setattr(os, "open", refused(os.open))
    monkeypatch.setattr(os, "stat", refused(os.stat))

    client = create_app(Settings(model_dir=store_copy), watch=False).test_client()
    answer = client.get("/readyz")

    assert answer.status_code == 503
    message = answer.get_json()["error"]
    assert f"cannot be read by user id {os.getuid()}" in message
    assert "give its user read access to the model store" in message


def test_a_model_dir_whose_name_the_system_cannot_decode_is_named_in_answers(
        tmp_path):
    import os

    model_dir = tmp_path / os.fsdecode(b"mod\xe8les")  # Latin-1, on a UTF-8 system
    model_dir.mkdir()
    client = create_app(Settings(model_dir=model_dir), watch=False).test_client()

    answer = client.get("/readyz")

    assert answer.status_code == 503
    assert answer.get_json()["code"] == "not_ready"
    assert f"no model published in {model_dir}" in answer.get_json()["error"]


@pytest.mark.parametrize("path", ["/", "/docs"])
def test_the_pages_may_not_be_framed_nor_load_from_elsewhere(client, path):
    answer = client.get(path)

    assert answer.status_code == 200
    policy = answer.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert answer.headers["X-Frame-Options"] == "DENY"


class _Answers:
    """A stand-in for a fitted model: every row answered with `value`, as a column
    or, given `columns`, as a matrix."""

    def __init__(self, value: float, columns: int | None = None):
        self.value, self.columns = value, columns

    def predict(self, rows):
        shape = (len(rows),) if self.columns is None else (len(rows), self.columns)
        return np.full(shape, self.value)


# A year of history: the self-check asks about it and MAX_MONTHS_AHEAD months after.
ONE_YEAR = {"version": "v", "series": [
    {"name": "s", "first": "2000-01", "last": "2000-12"}]}
ASKED = 12 + MAX_MONTHS_AHEAD


@pytest.mark.parametrize("model, message", [
    (_Answers(float("nan")), rf"produced {ASKED} non-finite values out of {ASKED}$"),
    (_Answers(1.0, columns=2),
     rf"asked for {ASKED} values and got an array of shape \({ASKED}, 2\)$"),
], ids=["non-finite", "wrong shape"])
def test_a_model_failing_its_self_check_is_told_what_went_wrong(model, message):
    with pytest.raises(ValueError, match=message):
        Predictor(model, ONE_YEAR)
