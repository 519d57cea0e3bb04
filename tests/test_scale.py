"""A model of many series (a supplier's thousands of products): no step may cost
more per series as the series grow, and no answer may grow with all of them when
it is about one.

The files here are small; what is checked is how the work is done (how often a
whole table is scanned), which is what makes thousands of series slow."""

import math
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tests.conftest import train
from training import report

SKUS = ("SKU-A", "SKU-B", "SKU-C")


def backtested(count: int):
    """A training outcome for `count` series of four years, each backtested at two
    cut-offs, as `training.report` reads it (and only that)."""
    names = [f"SKU-{i:04d}" for i in range(count)]
    months = np.arange(2020 * 12, 2024 * 12)
    frame = pd.DataFrame({
        "series": np.repeat(names, len(months)),
        "date": np.tile((months - 1970 * 12).astype("datetime64[M]"), count),
        "sales": 100.0,
    })
    origins = np.repeat([months[-13], months[-7]], 6)
    table = pd.DataFrame({
        "series": np.repeat(names, len(origins)),
        "origin": np.tile(origins, count),
        "month": np.tile(origins + np.tile(np.arange(1, 7), 2), count),
        "served": 100.0,
    })
    model = SimpleNamespace(floor_=0.0,
                            predict=lambda query: np.full(len(query), 100.0))
    widths = {"80": [10.0] * report.REPORT_HORIZON,
              "95": [20.0] * report.REPORT_HORIZON}
    outcome = SimpleNamespace(
        table=table, model=model,
        intervals={"series": {name: widths for name in names}},
        choices={name: SimpleNamespace(label="blend", reason="") for name in names})
    return frame, outcome


def test_the_report_finds_each_series_backtest_without_scanning_the_table(
        monkeypatch):
    frame, outcome = backtested(60)
    rows = len(outcome.table)
    scans = []
    compare = pd.Series.__eq__

    def counted(column, other):
        if len(column) == rows:
            scans.append(other)
        return compare(column, other)

    monkeypatch.setattr(pd.Series, "__eq__", counted)
    views = report._views_from_training(frame, outcome)

    assert len(views) == 60
    assert all(len(view.backtests) == 2 for view in views)
    assert views[7].backtests[0][0] == outcome.table["origin"].iloc[0]
    # One scan per series made a report of 3,000 series take 20 s in this step.
    assert len(scans) <= 1


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """A service of a model trained on three seasonal series of five years."""
    from service.app import create_app
    from service.config import Settings

    tmp = tmp_path_factory.mktemp("skus")
    lines = ["date,sales,series"]
    for i, name in enumerate(SKUS):
        for m in range(60):
            sales = (100 + 40 * i) * (1 + 0.3 * math.sin(m * math.pi / 6)) + m % 7
            lines.append(f"{2019 + m // 12}-{m % 12 + 1:02d},{sales:.1f},{name}")
    (tmp / "skus.csv").write_text("\n".join(lines) + "\n")
    assert train(tmp / "skus.csv", tmp / "models") == 0
    return create_app(Settings(model_dir=tmp / "models"), watch=False).test_client()


def per_series_parts(meta: dict) -> list[set]:
    return [set(meta["evaluation"]), set(meta["backtest"]["series"]),
            set(meta["intervals"]["series"])]


def test_model_for_one_series_holds_that_series_parts_only(client):
    whole = client.get("/model").get_json()
    assert per_series_parts(whole) == [set(SKUS)] * 3

    one = client.get("/model?series=SKU-B").get_json()

    assert per_series_parts(one) == [{"SKU-B"}] * 3
    assert one["evaluation"]["SKU-B"] == whole["evaluation"]["SKU-B"]
    assert one["backtest"]["series"]["SKU-B"] == whole["backtest"]["series"]["SKU-B"]
    assert one["series"] == [whole["series"][1]]
    assert one["metrics"] == whole["metrics"]
    assert one["intervals"]["coverage"] == whole["intervals"]["coverage"]


def test_model_for_no_series_is_the_list_and_the_overall_figures(client):
    whole = client.get("/model")

    light = client.get("/model?series=")

    assert per_series_parts(light.get_json()) == [set()] * 3
    # What a client picks a series from, such as the page.
    assert light.get_json()["series"] == whole.get_json()["series"]
    assert len(light.data) < len(whole.data) / 2


def test_model_answers_carry_a_tag_and_a_client_holding_it_gets_a_304(client,
                                                                       monkeypatch):
    first = {url: client.get(url) for url in ("/model", "/model?series=",
                                              "/model?series=SKU-B")}
    tags = {url: response.headers["ETag"] for url, response in first.items()}
    assert len(set(tags.values())) == 3
    assert all(r.headers["Cache-Control"] == "no-cache" for r in first.values())

    # Not serialised again for a client that has the answer.
    from service import http
    monkeypatch.setattr(http, "json_response", None)
    for url, tag in tags.items():
        again = client.get(url, headers={"If-None-Match": tag})
        assert again.status_code == 304 and again.data == b""
        assert again.headers["ETag"] == tag
    monkeypatch.undo()

    stale = client.get("/model", headers={"If-None-Match": '"another"'})
    assert stale.status_code == 200 and stale.data == first["/model"].data
    assert stale.headers["ETag"] == tags["/model"]


def test_a_tag_a_proxy_made_weak_still_gets_a_304(client):
    # A compressing proxy in front sends the tag on as W/"..."; If-None-Match
    # compares tags weakly (RFC 9110), so the client holding it is still current.
    tag = client.get("/model").headers["ETag"]

    again = client.get("/model", headers={"If-None-Match": f"W/{tag}"})

    assert again.status_code == 304 and again.data == b""


def test_model_for_an_unknown_series_is_a_404_naming_the_known_ones(client):
    response = client.get("/model?series=SKU-Z")

    assert response.status_code == 404
    assert response.get_json()["code"] == "unknown_series"
    assert "'SKU-Z'" in response.get_json()["error"]
    assert "'SKU-A'" in response.get_json()["error"]


class Flat:
    """An estimator answering 1.0 for every month of every series."""

    def predict(self, rows):
        return np.ones(len(rows))


def many_series(count: int):
    from service.predictor import Predictor

    return Predictor(Flat(), {"version": "v1", "series": [
        {"name": f"SKU-{i:05d}", "first": "2020-01", "last": "2024-12"}
        for i in range(count)]})


def test_an_unknown_name_among_thousands_says_where_they_are_all_listed():
    from service.errors import UnknownSeries

    with pytest.raises(UnknownSeries) as refused:
        many_series(3000).table("SKU-99999")

    assert refused.value.message.endswith(
        "'SKU-00009' and 2990 more (GET /model?series= lists them all).")


@pytest.mark.parametrize("typed", ["sku-02500", " SKU-02500", "Sku-02500\n"])
def test_a_name_typed_in_another_case_or_with_spaces_is_pointed_to(typed):
    from service.errors import UnknownSeries

    with pytest.raises(UnknownSeries,
                       match=re.escape("Did you mean 'SKU-02500'? Names must match "
                                       "exactly, case and spaces included.")):
        many_series(3000).table(typed)


def test_every_name_a_loosely_typed_one_could_mean_is_pointed_to():
    from service.errors import UnknownSeries
    from service.predictor import Predictor

    # Training keeps names that differ in case apart: both are as near.
    predictor = Predictor(Flat(), {"version": "v1", "series": [
        {"name": name, "first": "2020-01", "last": "2024-12"}
        for name in ("SKU-B", "Sku-b", "SKU-C")]})

    with pytest.raises(UnknownSeries,
                       match=re.escape("Did you mean 'SKU-B' or 'Sku-b'? Names must "
                                       "match exactly, case and spaces included.")):
        predictor.table("sku-b")


def test_a_name_typed_in_another_case_is_pointed_to_by_the_api(client):
    response = client.post("/forecast", json={"series": "sku-c"})

    assert response.status_code == 404
    assert "Did you mean 'SKU-C'?" in response.get_json()["error"]


def test_the_summary_of_many_series_lists_some_and_ends_with_the_overall_figures(
        tmp_path, capsys):
    from training.cli import SUMMARY_SERIES

    count = SUMMARY_SERIES + 7
    lines = ["date,sales,series"] + [
        f"2023-{m:02d},{10 * i + m},short-{i:03d}"
        for i in range(count) for m in range(1, 13)]
    (tmp_path / "many.csv").write_text("\n".join(lines) + "\n")

    assert train(tmp_path / "many.csv", tmp_path / "models") == 0

    out = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("  short-") for line in out) == 2 * SUMMARY_SERIES
    assert "  ... and 7 more series, scored in the report" in out
    assert "  ... and 7 more notes on single series, in the metadata (series)" in out
    assert out[-1].startswith("  trained in ")


def test_the_summary_of_many_rejected_series_lists_some_of_them(tmp_path, capsys):
    from training.cli import SUMMARY_SERIES

    count = SUMMARY_SERIES + 3
    lines = ["date,sales,series"] + [f"2020-{m:02d},{m},kept" for m in range(1, 13)]
    lines += [f"2023-0{m},{i + m},tiny-{i:03d}" for i in range(count) for m in (1, 2)]
    (tmp_path / "tiny.csv").write_text("\n".join(lines) + "\n")

    assert train(tmp_path / "tiny.csv", tmp_path / "models") == 0

    out = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("  rejected series 'tiny-") for line in out) == \
        SUMMARY_SERIES
    assert "  ... and 3 more rejected series, in the metadata (data.rejected)" in out


def test_model_for_one_series_of_a_version_without_backtest_forecasts():
    predictor = many_series(3)
    predictor.metadata = {**predictor.metadata, "backtest": {"origins": []}}

    assert predictor.metadata_of("SKU-00001")["backtest"] == {"origins": []}


@pytest.mark.parametrize("series", ["SKU-00001", ""], ids=["one", "none"])
def test_model_for_one_series_adds_no_section_the_version_lacks(series):
    # A version without an evaluation (or backtest, or intervals) is served; its
    # narrowed metadata must not gain the section as null.
    predictor = many_series(3)

    narrowed = predictor.metadata_of(series)

    assert set(narrowed) == set(predictor.metadata)


def test_a_forecast_asked_for_several_series_at_once_is_told_how_to_get_them(client):
    from service.http import MAX_ROWS

    response = client.post("/forecast", json={"series": list(SKUS)})

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert "/forecast answers one series per request" in error
    assert f"POST /predict for the months wanted (up to {MAX_ROWS} rows" in error


def test_a_worker_that_never_sent_the_answer_still_honours_its_tag(trained_store):
    # Each gunicorn worker has its own app: the tag a client got from one worker
    # reaches another that has not served that answer yet, and still gets a 304.
    from service.app import create_app
    from service.config import Settings

    def worker():
        return create_app(Settings(model_dir=trained_store), watch=False).test_client()

    tag = worker().get("/model?series=").headers["ETag"]
    other_worker = worker()

    again = other_worker.get("/model?series=", headers={"If-None-Match": tag})

    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == tag
