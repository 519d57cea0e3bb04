"""Just after a version is published, workers that have not reached their next check
of CURRENT must not refuse what the new version knows.

Each app here is one "worker" whose watcher never runs (watch=False), so the only
way it can learn of the new version is the out-of-turn check on a refusal.
"""

import pytest

from service.app import create_app
from service.config import Settings
from tests.conftest import WINEIND, train

NEW_SERIES = "cellar"


@pytest.fixture
def lagging(store_copy):
    """A worker serving the first version, and the store with a newer one published
    (trained on the same sales under another series name)."""
    app = create_app(Settings(model_dir=store_copy), watch=False)
    old = app.extensions["model_store"].predictor.version
    assert train(WINEIND, store_copy, "--series-name", NEW_SERIES, "--force") == 0
    new = (store_copy / "CURRENT").read_text().strip()
    assert new != old
    return app.test_client(), old, new


def test_forecast_for_a_series_only_the_new_version_knows(lagging):
    client, old, new = lagging

    answer = client.post("/forecast", json={"series": NEW_SERIES, "horizon": 3})

    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["model_version"] == new
    assert answer.get_json()["series"] == NEW_SERIES


def test_predict_infer_history_and_report_catch_up_too(lagging):
    client, old, new = lagging

    predict = client.post("/predict", json={"instances": [
        {"date": "1995-01", "series": NEW_SERIES}]})
    assert predict.status_code == 200, predict.get_json()
    assert predict.get_json()["model_version"] == new

    history = client.get(f"/history?series={NEW_SERIES}")
    assert history.status_code == 200, history.get_json()
    assert history.get_json()["model_version"] == new

    for path in ("/report", "/report.png"):
        report = client.get(f"{path}?series={NEW_SERIES}")
        assert report.status_code == 200, report.get_json()


def test_v2_infer_catches_up_on_a_series_and_on_a_named_version(lagging):
    client, old, new = lagging

    ready = client.get(f"/v2/models/sales-forecast/versions/{new}/ready")
    assert ready.status_code == 200, ready.get_json()

    infer = client.post("/v2/models/sales-forecast/infer", json={"inputs": [
        {"name": "date", "datatype": "BYTES", "shape": [1], "data": ["1995-01"]},
        {"name": "series", "datatype": "BYTES", "shape": [1], "data": [NEW_SERIES]}]})
    assert infer.status_code == 200, infer.get_json()
    assert infer.get_json()["model_version"] == new


def test_a_series_no_version_knows_is_still_refused_and_nothing_is_reloaded(client):
    store = client.application.extensions["model_store"]
    served = store.predictor

    answer = client.post("/forecast", json={"series": "nowhere", "horizon": 3})

    assert answer.status_code == 404
    assert answer.get_json()["code"] == "unknown_series"
    assert "'nowhere'" in answer.get_json()["error"]
    assert store.predictor is served


def test_a_worker_whose_version_was_pruned_answers_from_the_served_one(store_copy,
                                                                      monkeypatch):
    """A worker that checks CURRENT less often than pruning spares a version it left
    (a long reload interval) still serves the first version when its files go."""
    from training import artifact
    from training.versions import main as versions

    app = create_app(Settings(model_dir=store_copy), watch=False)
    old = app.extensions["model_store"].predictor.version
    for _ in range(2):
        assert train(WINEIND, store_copy, "--force") == 0
    monkeypatch.setattr(artifact, "RECENT_SECONDS", 0)  # minutes later
    assert versions(["prune", "--model-dir", str(store_copy), "--keep", "1"]) == 0
    assert not (store_copy / "versions" / old).exists()
    client = app.test_client()

    for path in ("/report", "/report.png", "/history", "/report?series=wineind"):
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.get_json())
    assert app.extensions["model_store"].predictor.version != old
