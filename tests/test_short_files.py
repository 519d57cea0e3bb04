"""Files whose every series is too short for a backtest cut-off.

With no cut-off at all the backtest table is empty; training must still serve each
series its stated fallback (the mean under 12 months, seasonal naive under 36)
instead of failing on the empty table.
"""

import math

import pytest

from tests.conftest import train
from tests.test_quality import client_for, current_metadata, growing_seasonal, write_csv


@pytest.mark.parametrize("lengths, expected", [
    ((6,), "mean"),
    ((13,), "seasonal-naive"),
    ((35,), "seasonal-naive"),
    ((8, 20), None),
], ids=["six-months", "thirteen-months", "thirty-five-months", "two-short-series"])
def test_a_file_of_short_series_only_trains_its_fallbacks(tmp_path, lengths, expected):
    frames = [growing_seasonal(n, f"shop {n}") for n in lengths]
    data = write_csv(tmp_path / "short.csv", *frames)

    assert train(data, tmp_path / "models") == 0

    meta = current_metadata(tmp_path / "models")
    models = {s["name"]: s["model"] for s in meta["series"]}
    for n in lengths:
        want = expected or ("mean" if n < 12 else "seasonal-naive")
        assert models[f"shop {n}"] == want, meta["series"]

    client = client_for(tmp_path / "models")
    for name in models:
        answer = client.post("/forecast", json={"horizon": 24, "series": name})
        assert answer.status_code == 200, answer.get_json()
        rows = answer.get_json()["forecast"]
        assert len(rows) == 24
        # No backtest: the widths are the series' own spread, and the answer says so.
        assert answer.get_json()["intervals_calibrated"] is False
        assert all(math.isfinite(v) for r in rows for k, v in r.items() if k != "date")


# The reasons given when the backtest cannot judge a series ---------------------------

def reasons(*frames, model: str = "auto") -> dict:
    import pandas as pd

    from training.procedure import fit_and_check

    outcome = fit_and_check(pd.concat(frames, ignore_index=True), requested=model)
    return {name: choice for name, choice in outcome.choices.items()}


def test_a_long_series_that_ends_early_is_told_so_not_called_short():
    long = growing_seasonal(120, "long")
    early = growing_seasonal(100, "early").iloc[:-20]  # ends 40 months before

    choice = reasons(long, early)["early"]

    assert choice.label == "seasonal-naive"
    assert "80 months, but it ends 40 months before the file's last month" \
        in choice.reason
    assert "fewer than" not in choice.reason


def test_a_series_that_ended_early_says_where_its_forecast_starts(tmp_path):
    long = growing_seasonal(120, "long")  # 2015-01 to 2024-12
    early = growing_seasonal(100, "early").iloc[:-20]  # to 2021-08
    data = write_csv(tmp_path / "shops.csv", long, early)
    assert train(data, tmp_path / "models") == 0
    client = client_for(tmp_path / "models")

    answers = {name: client.post("/forecast", json={"series": name, "horizon": 3})
               .get_json() for name in ("long", "early")}

    # The early series forecasts months its file already has; the answer says so
    # by naming the last month its forecast follows.
    assert answers["early"]["history_ends"] == "2021-08"
    assert answers["early"]["forecast"][0]["date"] == "2021-09-01"
    assert answers["long"]["history_ends"] == "2024-12"
    assert answers["long"]["forecast"][0]["date"] == "2025-01-01"


def test_a_model_no_cut_off_could_fit_is_said_to_have_no_backtest_not_to_lose():
    # 40 months: the newest cut-off leaves 28, too few for the airline model (36).
    choice = reasons(growing_seasonal(40, "shop"), model="airline")["shop"]

    assert choice.label != "airline"
    assert ("airline could not be fitted at any backtest cut-off on this series "
            "(too little history before them)") in choice.reason
    assert "does not beat" not in choice.reason


def test_a_group_verdict_says_when_it_rests_on_the_other_series():
    young = growing_seasonal(120, "young").iloc[-40:]  # the same last month
    chosen = reasons(growing_seasonal(120, "long"), young, model="airline")

    assert chosen["long"].label == chosen["young"].label == "airline"
    assert "rests on the other series" in chosen["young"].reason
    assert "rests on the other series" not in chosen["long"].reason


def test_an_exact_seasonal_naive_is_named_as_the_reason_nothing_beats_it():
    import numpy as np

    exact = growing_seasonal(60, "periodic")
    exact = exact.assign(sales=np.tile(np.arange(10.0, 22.0), 5))  # the same each year

    choice = reasons(exact)["periodic"]

    assert choice.label == "seasonal-naive"
    assert "seasonal naive was exact there" in choice.reason


def test_a_series_seasonal_naive_was_exact_on_does_not_decide_for_the_others():
    shop = growing_seasonal(72, "shop")
    flat = shop.assign(sales=100.0, series="flat")  # the same every month

    alone = reasons(shop)["shop"]
    chosen = reasons(shop, flat)

    # The pooled lag model carries the shop's growth into the flat series, so the
    # blend misses it there while seasonal naive does not: pooled with the shop,
    # that infinite ratio would cost the shop the blend as well.
    assert chosen["flat"].label == "seasonal-naive"
    assert ("seasonal naive was exact at every backtest month of this series"
            in chosen["flat"].reason)
    assert chosen["shop"].label == alone.label == "blend"
    assert "exact" not in chosen["shop"].reason


def test_the_summary_says_how_many_cut_offs_could_test_a_short_history(
        tmp_path, capsys):
    data = write_csv(tmp_path / "young.csv", growing_seasonal(37, "young"))

    assert train(data, tmp_path / "models") == 0

    out = capsys.readouterr().out
    assert "refit at 6 cut-offs" in out
    assert "1 of which left enough history to test (2017-01)" in out
    meta = current_metadata(tmp_path / "models")
    assert meta["backtest"]["scored_origins"] == ["2017-01"]


def test_the_summary_of_a_history_too_short_for_any_cut_off_lists_none(tmp_path,
                                                                      capsys):
    data = write_csv(tmp_path / "new.csv", growing_seasonal(20, "new"))

    assert train(data, tmp_path / "models") == 0

    out = capsys.readouterr().out
    assert ("backtest: none; a series needs 36 months of history for its cut-offs to "
            "leave months to test") in out
    assert "cut-offs (" not in out
    assert current_metadata(tmp_path / "models")["backtest"]["scored_origins"] == []


def report_text(model_dir) -> str:
    version = (model_dir / "CURRENT").read_text().strip()
    return (model_dir / "versions" / version / "report.html").read_text()


def test_the_report_of_a_history_too_short_for_any_cut_off_claims_no_backtest(
        tmp_path):
    data = write_csv(tmp_path / "new.csv", growing_seasonal(20, "new"))

    assert train(data, tmp_path / "models") == 0

    # It used to list six cut-offs before the first month of the data as if the
    # models had been refit and scored there.
    page = report_text(tmp_path / "models")
    assert ("Backtest: none; a series needs 36 months of history for its cut-offs "
            "to leave months to test.") in page
    assert "cut-offs (" not in page


def test_the_report_says_how_many_cut_offs_could_test_a_short_history(tmp_path):
    data = write_csv(tmp_path / "young.csv", growing_seasonal(37, "young"))

    assert train(data, tmp_path / "models") == 0

    assert "1 of which left enough history to test (2017-01)" in report_text(
        tmp_path / "models")


def test_equal_80_and_95_bands_of_a_short_series_are_said_where_they_are_shown(
        tmp_path, capsys):
    # Eight months: both levels of the uncalibrated band are the widest of eight
    # deviations from the mean, so the "95%" band is the 80% one.
    data = write_csv(tmp_path / "launch.csv", growing_seasonal(8, "launch"),
                     growing_seasonal(30, "older"))

    assert train(data, tmp_path / "models") == 0

    widths = current_metadata(tmp_path / "models")["intervals"]["series"]
    assert widths["launch"]["80"] == widths["launch"]["95"]
    assert widths["older"]["80"] != widths["older"]["95"]
    said = ("the 80% and 95% bands are the same width for 1 series too short to tell "
            "the two levels apart (not calibrated): launch")
    assert f"  intervals: {said}\n" in capsys.readouterr().out
    assert f"<p>Note: {said}.</p>" in report_text(tmp_path / "models")


def test_a_constant_series_is_not_said_to_have_equal_bands_for_want_of_months():
    from training.intervals import equal_bands

    widths = {"series": {
        "flat": {"calibrated": False, "80": [0.0] * 3, "95": [0.0] * 3},
        "launch": {"calibrated": False, "80": [3.5] * 3, "95": [3.5] * 3},
        "older": {"calibrated": True, "80": [2.0] * 3, "95": [2.0] * 3},
    }}

    assert equal_bands(widths) == ["launch"]
