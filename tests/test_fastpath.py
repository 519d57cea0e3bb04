"""Every answer the service gives equals what the fitted estimator's own `predict` says.

The service never calls the model on the request path: it answers from a table it
filled when the version loaded (service/predictor.py). These tests hold that table
to the model over every month it answers, for the one-series wineind store and the
26-series txhousing store, through real HTTP on a real gunicorn: /predict (batches
and single rows, both date spellings, with and without the series), V2 infer and
/forecast. The expected values come from the artifact loaded independently and
asked one series at a time, and one row at a time for a sample, so an estimator
whose answer depended on what else was in the batch would be caught too.
"""

import math
import random

import pandas as pd
import pytest
import requests

from tests.conftest import TESTDATA, LiveServer, train
from service.http import MAX_ROWS
from service.predictor import MAX_MONTHS_AHEAD
from training import artifact

pytestmark = pytest.mark.integration

# Relative: the table is filled by one `predict` over every series at once, and a
# BLAS kernel may sum in another order for another batch shape.
REL_TOL = 1e-9
INFER = "/v2/models/sales-forecast/infer"


def month_index(text: str) -> int:
    return int(text[:4]) * 12 + int(text[5:7]) - 1


def month_text(index: int, day: int | None = None) -> str:
    text = f"{index // 12:04d}-{index % 12 + 1:02d}"
    return text if day is None else f"{text}-{day:02d}"


class Store:
    """A trained store served by a live gunicorn, and the model's own answers."""

    def __init__(self, model_dir, server: LiveServer):
        self.server = server
        self.http = requests.Session()
        version = artifact.read_current(model_dir)
        self.model, metadata = artifact.load_version(model_dir, version)
        self.spans = {s["name"]: (month_index(s["first"]), month_index(s["last"]))
                      for s in metadata["series"]}
        self.expected = {name: self.ask_model(name, range(first, last + 1 +
                                                         MAX_MONTHS_AHEAD))
                         for name, (first, last) in self.spans.items()}

    def ask_model(self, series: str, months) -> dict[int, float]:
        months = list(months)
        rows = pd.DataFrame({"date": pd.to_datetime([month_text(m, 1) for m in months]),
                             "series": series})
        return dict(zip(months, self.model.predict(rows).tolist()))

    def grid(self) -> list[tuple[str, int]]:
        return [(name, m) for name, values in self.expected.items() for m in values]

    def post(self, path: str, body: dict) -> requests.Response:
        return self.http.post(self.server.url + path, json=body, timeout=60)


def serve(model_dir, tmp) -> Store:
    return Store(model_dir, LiveServer(model_dir, tmp).start())


@pytest.fixture(scope="module", params=["wineind", "txhousing"])
def store(request, trained_store, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"fastpath-{request.param}")
    if request.param == "wineind":
        model_dir = trained_store
    else:
        model_dir = tmp / "models"
        assert train(TESTDATA / "txhousing_sales.csv", model_dir) == 0
    served = serve(model_dir, tmp)
    yield served
    served.server.stop()


def assert_equal(got: list, expected: list, what: str) -> None:
    assert len(got) == len(expected), what
    wrong = [(i, g, e) for i, (g, e) in enumerate(zip(got, expected))
             if not math.isclose(g, e, rel_tol=REL_TOL, abs_tol=1e-12)]
    assert not wrong, f"{what}: {len(wrong)} values differ, first {wrong[:3]}"


def batches(items: list, size: int = MAX_ROWS):
    for start in range(0, len(items), size):
        yield items[start:start + size]


# How a batch spells its dates: "YYYY-MM" and the first of the month are looked up
# directly, any other day goes through the parser.
SPELLINGS = {
    "month": lambda month, i: month_text(month),
    "first-day": lambda month, i: month_text(month, 1),
    "any-day": lambda month, i: month_text(month, 1 + i % 28),
}


def grid_batches(store, spelling: str) -> list:
    """The whole grid, then random samples of it. A batch with one row the direct
    look-up misses is answered by the checked loop as a whole, so the small batches
    are what hold the look-up itself to the model."""
    grid = store.grid()
    rng = random.Random(spelling)
    return list(batches(grid)) + [rng.sample(grid, 50) for _ in range(6)]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_predict_batches_equal_the_model_over_every_answerable_month(store, spelling):
    spell = SPELLINGS[spelling]
    for batch in grid_batches(store, spelling):
        instances = [{"date": spell(m, i), "series": s}
                     for i, (s, m) in enumerate(batch)]

        response = store.post("/predict", {"instances": instances})

        assert response.status_code == 200, response.text
        assert_equal(response.json()["predictions"],
                     [store.expected[s][m] for s, m in batch], f"/predict {spelling}")


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_v2_infer_equals_the_model_over_every_answerable_month(store, spelling):
    spell = SPELLINGS[spelling]
    for batch in grid_batches(store, spelling):
        response = store.post(INFER, {"inputs": [
            {"name": "date", "datatype": "BYTES", "shape": [len(batch)],
             "data": [spell(m, i) for i, (_, m) in enumerate(batch)]},
            {"name": "series", "datatype": "BYTES", "shape": [len(batch)],
             "data": [s for s, _ in batch]}]})

        assert response.status_code == 200, response.text
        output = response.json()["outputs"][0]
        assert output["datatype"] == "FP64" and output["shape"] == [len(batch)]
        assert_equal(output["data"], [store.expected[s][m] for s, m in batch],
                     f"V2 infer {spelling}")


def test_one_bad_row_at_the_end_of_a_batch_is_named(store):
    grid = store.grid()[:300]
    instances = [{"date": month_text(m), "series": s} for s, m in grid]
    instances.append({"date": month_text(grid[0][1]), "series": "no such series"})

    response = store.post("/predict", {"instances": instances})

    assert response.status_code == 404
    assert response.json()["code"] == "unknown_series"
    assert response.json()["error"].startswith(
        f"instances[{len(grid)}].series: unknown series")


@pytest.mark.parametrize("bad_row", [
    ["date", "series"], "date", "series", 7, None, {"date": "2005-01", "seriess": "x"},
    {"series": "x"}, {"date": 200501}, {"date": ["2005-01"]}, {"date": "2005-01",
                                                               "series": ["x"]},
], ids=repr)
def test_rows_the_direct_look_up_must_not_take_are_named(store, bad_row):
    grid = store.grid()[:200]
    instances = [{"date": month_text(m), "series": s} for s, m in grid]
    if isinstance(bad_row, dict) and bad_row.get("series") == "x":
        bad_row = {**bad_row, "series": grid[0][0]}

    response = store.post("/predict", {"instances": instances + [bad_row]})

    assert response.status_code == 400, response.text
    assert f"instances[{len(grid)}]" in response.json()["error"], response.json()


def test_forecast_equals_the_model_for_every_series_and_horizon(store):
    for name, (first, last) in store.spans.items():
        response = store.post("/forecast", {"series": name,
                                            "horizon": MAX_MONTHS_AHEAD})
        assert response.status_code == 200, response.text
        rows = response.json()["forecast"]

        ahead = range(last + 1, last + 1 + MAX_MONTHS_AHEAD)
        assert [r["date"] for r in rows] == [month_text(m, 1) for m in ahead]
        assert_equal([r["sales"] for r in rows],
                     [store.expected[name][m] for m in ahead], f"/forecast {name}")
        # A shorter horizon is the same months cut short, not a new computation.
        short = store.post("/forecast", {"series": name, "horizon": 7}).json()
        assert short["forecast"] == rows[:7]


def test_single_rows_equal_the_model_asked_one_row_at_a_time(store):
    sample = []
    for name, (first, last) in store.spans.items():
        edges = [first, last, last + 1, last + MAX_MONTHS_AHEAD]
        sample += [(name, m) for m in edges]
    sample += random.Random(7).sample(store.grid(), 40)

    for name, month in sample:
        alone = store.ask_model(name, [month])[month]
        response = store.post("/predict", {"instances": [
            {"date": month_text(month), "series": name}]})
        assert response.status_code == 200, response.text

        assert_equal(response.json()["predictions"], [alone],
                     f"{name} {month_text(month)}")
        assert math.isclose(alone, store.expected[name][month], rel_tol=REL_TOL)


def test_rows_without_a_series_get_the_only_one_or_a_400(store):
    if len(store.spans) != 1:
        response = store.post("/predict", {"instances": [{"date": "2005-01"}]})
        assert response.status_code == 400
        assert "series" in response.json()["error"]
        return
    (name, (first, last)), = store.spans.items()
    months = list(range(first, last + 1 + MAX_MONTHS_AHEAD))

    response = store.post("/predict", {"instances": [{"date": month_text(m)}
                                                     for m in months]})

    assert_equal(response.json()["predictions"],
                 [store.expected[name][m] for m in months], "default series")

    mixed = [{"date": month_text(m), **({"series": name} if m % 2 else {})}
             for m in months]
    response = store.post("/predict", {"instances": mixed})

    assert_equal(response.json()["predictions"],
                 [store.expected[name][m] for m in months], "some rows name it")


def test_months_just_outside_the_table_are_refused(store):
    for name, (first, last) in store.spans.items():
        for month in (first - 1, last + MAX_MONTHS_AHEAD + 1):
            response = store.post("/predict", {"instances": [
                {"date": month_text(month), "series": name}]})
            assert response.status_code == 400, (name, month_text(month))
            assert response.json()["code"] == "bad_request"
