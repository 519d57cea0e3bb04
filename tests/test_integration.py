"""The service as shipped: a real gunicorn process on 127.0.0.1, called over HTTP."""

import signal
import time

import pytest
import requests

from tests.conftest import TESTDATA, WINEIND, train
from training import artifact

pytestmark = pytest.mark.integration


def wait_until(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout}s")


def test_gunicorn_serves_twelve_monthly_forecasts(live_server, trained_store):
    server = live_server(trained_store)

    response = requests.post(server.url + "/forecast", json={"horizon": 12}, timeout=5)

    assert response.status_code == 200
    forecast = response.json()["forecast"]
    assert len(forecast) == 12
    assert forecast[0]["date"] == "1994-09-01"


def test_a_v2_client_from_pypi_gets_predictions(live_server, trained_store):
    import numpy as np
    import tritonclient.http as triton

    server = live_server(trained_store)
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    dates = triton.InferInput("date", [3], "BYTES")
    dates.set_data_from_numpy(np.array([b"1995-01", b"1995-02", b"1995-03"],
                                       dtype=object), binary_data=False)
    wanted = triton.InferRequestedOutput("sales", binary_data=False)

    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("sales-forecast")
    result = client.infer("sales-forecast", [dates], outputs=[wanted])

    expected = requests.post(server.url + "/predict", json={"instances": [
        {"date": d} for d in ("1995-01", "1995-02", "1995-03")]}, timeout=5).json()
    assert result.as_numpy("sales").tolist() == expected["predictions"]
    assert client.get_model_metadata("sales-forecast")["outputs"][0]["name"] == "sales"


def test_starts_without_a_model_and_becomes_ready_when_one_is_published(
        live_server, tmp_path):
    model_dir = tmp_path / "models"
    server = live_server(model_dir, wait_ready=False)

    not_ready = requests.get(server.url + "/readyz", timeout=5)
    assert not_ready.status_code == 503
    assert "waiting for the training job" in not_ready.json()["error"]

    assert train(WINEIND, model_dir) == 0

    wait_until(lambda: requests.get(server.url + "/readyz", timeout=5).ok)
    assert server.process.poll() is None


def test_a_new_version_is_served_without_restart_and_a_bad_one_is_refused(
        live_server, store_copy):
    server = live_server(store_copy)
    first = requests.get(server.url + "/readyz", timeout=5).json()["model_version"]

    # Other series than the served wineind: published only when forced.
    assert train(TESTDATA / "txhousing_sales.csv", store_copy, "--force") == 0
    second = artifact.read_current(store_copy)
    wait_until(lambda: requests.post(server.url + "/forecast", json={
        "series": "Abilene"}, timeout=5).ok)

    # A newer version whose model file no longer matches its hash.
    assert train(WINEIND, store_copy, "--force") == 0
    third = artifact.read_current(store_copy)
    model_file = store_copy / "versions" / third / "model.joblib"
    model_file.write_bytes(model_file.read_bytes()[:100])
    time.sleep(1.0)

    ready = requests.get(server.url + "/readyz", timeout=5).json()
    assert first != second
    assert ready["model_version"] == second
    assert "refused candidate" in server.log()


def test_sigterm_stops_gracefully_with_exit_code_zero(live_server, trained_store):
    server = live_server(trained_store)

    server.process.send_signal(signal.SIGTERM)

    assert server.process.wait(timeout=30) == 0
