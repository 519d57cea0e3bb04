"""Forecast quality machinery: backtest, quality gate, promotion, intervals, report."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from service.app import create_app
from service.config import Settings
from tests.conftest import WINEIND, train
from training import artifact, intervals
from training.backtest import rolling_origins, run_backtest, with_months
from training.cli import some_names
from training.evaluate import point_metrics
from training.models import (AirlineForecaster, LagForecaster,
                             PooledSmoothingForecaster, SalesForecaster,
                             SmoothingForecaster, seasonal_adjustment)
from training.procedure import calibrate_intervals, compare_with_served
from training.selection import (BACKTEST_MONTHS, BLEND, BLEND_MEMBERS,
                                SEASONAL_MONTHS, members_of)
from training.unpickle import load_model
from training.versions import main as versions_main


def growing_seasonal(months: int = 72, name: str = "shop") -> pd.DataFrame:
    """Sales growing 1.5% a month with a 25% seasonal swing: every seasonal model
    beats seasonal naive (which lags a year of growth), the log-scale ones most."""
    t = np.arange(months)
    rng = np.random.default_rng(0)
    sales = 100 * np.exp(0.015 * t) * (1 + 0.25 * np.sin(2 * np.pi * t / 12))
    return pd.DataFrame({"date": pd.date_range("2015-01-01", periods=months, freq="MS"),
                         "sales": (sales + rng.normal(0, 2, months)).round(1),
                         "series": name})


def write_csv(path, *frames: pd.DataFrame):
    frame = pd.concat(frames, ignore_index=True)
    frame.assign(date=frame["date"].dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    return path


def current_metadata(model_dir) -> dict:
    return artifact.read_metadata(model_dir, artifact.read_current(model_dir))


def client_for(model_dir):
    return create_app(Settings(model_dir=model_dir), watch=False).test_client()


# The quality gate ------------------------------------------------------------------

def test_a_model_that_loses_to_seasonal_naive_is_replaced(tmp_path):
    data = write_csv(tmp_path / "shop.csv", growing_seasonal())

    assert train(data, tmp_path / "models", "--model", "linear") == 0

    meta = current_metadata(tmp_path / "models")
    served = meta["series"][0]
    assert served["model"] not in ("linear", "seasonal-naive")
    assert "linear does not beat seasonal naive" in served["reason"]
    assert meta["gate"]["replaced"] == ["shop"]
    assert meta["evaluation"]["shop"]["relative_mase"]["linear"] >= 1


def test_strict_mode_refuses_such_a_model_and_writes_nothing(tmp_path, capsys):
    data = write_csv(tmp_path / "shop.csv", growing_seasonal())

    assert train(data, tmp_path / "models", "--model", "linear", "--strict") == 2

    err = capsys.readouterr().err
    assert "--strict: the requested model 'linear' does not beat seasonal naive" in err
    assert "Nothing was written" in err
    models = tmp_path / "models"
    assert not models.exists() or not any(models.rglob("*"))


def test_series_replaced_for_different_reasons_are_not_given_one(tmp_path, capsys):
    # Judged one by one, linear loses to seasonal naive on both series, but only on
    # the exactly periodic one because seasonal naive was exact there.
    periodic = growing_seasonal(72, "periodic").assign(
        sales=np.tile(np.arange(10.0, 22.0), 6))
    data = write_csv(tmp_path / "two.csv", growing_seasonal(72, "shop"), periodic)
    args = ("--model", "linear", "--gate-scope", "series")

    assert train(data, tmp_path / "strict", *args, "--strict") == 2
    assert train(data, tmp_path / "models", *args) == 0

    err, out = capsys.readouterr()[::-1]
    first = ("on 'periodic': linear does not beat seasonal naive on the backtest on "
             "this series: seasonal naive was exact there")
    assert first in err
    assert "; the other series for reasons of their own. Nothing was written" in err
    gate = next(line for line in out.splitlines() if line.startswith("  gate:"))
    assert gate.startswith("  gate: 2 series not served by linear (periodic, shop): "
                           f"{first}")
    assert gate.endswith("; the other series for reasons of their own, in the "
                         "metadata (series)")
    shop = current_metadata(tmp_path / "models")["evaluation"]["shop"]["reason"]
    assert "exact" not in shop and "(MASE ratio" in shop


def test_the_gate_line_quotes_the_reason_most_replaced_series_share(tmp_path, capsys):
    # Two shops share the group's verdict; the flat series, where seasonal naive was
    # exact, is judged apart with a reason of its own.
    flat = growing_seasonal(72, "flat").assign(sales=100.0)
    data = write_csv(tmp_path / "three.csv", growing_seasonal(72, "shop"),
                     growing_seasonal(72, "store"), flat)

    assert train(data, tmp_path / "models", "--model", "linear") == 0

    gate = next(line for line in capsys.readouterr().out.splitlines()
                if line.startswith("  gate:"))
    assert gate.startswith("  gate: 3 series not served by linear (flat, shop, store): "
                           "on 'shop' and 1 more: linear does not beat seasonal naive "
                           "on the backtest over the file's series (MASE ratio")
    assert gate.endswith("; the other series for reasons of their own, in the "
                         "metadata (series)")


def test_the_gate_line_names_a_series_judged_apart_alone(tmp_path, capsys):
    # Only the flat series is replaced, with a reason that says "this series".
    flat = growing_seasonal(72, "flat").assign(sales=100.0)
    data = write_csv(tmp_path / "two.csv", growing_seasonal(72, "shop"), flat)

    assert train(data, tmp_path / "models") == 0

    gate = next(line for line in capsys.readouterr().out.splitlines()
                if line.startswith("  gate:"))
    assert gate.startswith("  gate: 1 series not served by auto (flat): seasonal "
                           "naive was exact at every backtest month of this series")


def test_the_overall_mase_leaves_out_a_series_with_no_scale_and_says_so(tmp_path,
                                                                          capsys):
    flat = growing_seasonal(72, "flat").assign(sales=100.0)
    data = write_csv(tmp_path / "two.csv", growing_seasonal(72, "shop"), flat)

    assert train(data, tmp_path / "models") == 0

    metrics = current_metadata(tmp_path / "models")["metrics"]
    assert metrics["served"]["mase"] > 0 and metrics["seasonal-naive"]["mase"] > 0
    assert metrics["mase_leaves_out"] == ["flat"]
    overall = next(line for line in capsys.readouterr().out.splitlines()
                   if line.startswith("  overall:"))
    assert "undef" not in overall
    assert ("(MASE without 1 series with no MASE scale, each month the one a year "
            "before: flat); RMSE") in overall


def test_seasonal_naive_is_the_stated_last_resort(tmp_path):
    # Exactly periodic: seasonal naive is exact, so no candidate can beat it.
    periodic = growing_seasonal(60).assign(sales=np.tile(np.arange(10.0, 22.0), 5))
    data = write_csv(tmp_path / "flat.csv", periodic)

    assert train(data, tmp_path / "models") == 0

    served = current_metadata(tmp_path / "models")["series"][0]
    assert served["model"] == "seasonal-naive"
    assert served["members"] == {"seasonal-naive": 1.0}
    assert "last resort" in served["reason"]


def test_a_kind_asked_for_by_name_outside_the_candidates_is_backtested_and_judged(
        tmp_path):
    data = write_csv(tmp_path / "shop.csv", growing_seasonal())

    assert train(data, tmp_path / "models", "--model", "recent-seasonal") == 0

    meta = current_metadata(tmp_path / "models")
    ratio = meta["evaluation"]["shop"]["relative_mase"]["recent-seasonal"]
    assert ratio is not None and math.isfinite(ratio)
    assert "could not be fitted" not in meta["series"][0]["reason"]


def test_seasonal_naive_asked_for_by_name_is_served_as_the_bar(tmp_path):
    data = write_csv(tmp_path / "shop.csv", growing_seasonal())

    assert train(data, tmp_path / "models", "--model", "seasonal-naive",
                 "--strict") == 0

    meta = current_metadata(tmp_path / "models")
    assert meta["series"][0]["model"] == "seasonal-naive"
    assert meta["gate"]["replaced"] == []
    assert "as asked" in meta["series"][0]["reason"]


# Promotion -------------------------------------------------------------------------

def test_a_worse_retrained_model_is_not_promoted_unless_forced(tmp_path, capsys):
    data = write_csv(tmp_path / "shop.csv", growing_seasonal())
    models = tmp_path / "models"
    assert train(data, models) == 0
    served = artifact.read_current(models)
    capsys.readouterr()

    # The additive regression beats seasonal naive here, but not the served blend.
    assert train(data, models, "--model", "seasonal") == 3

    err = capsys.readouterr().err
    assert "Not promoted" in err and f"CURRENT still names {served}" in err
    assert "kept unpublished" in err and "--force" in err
    assert artifact.read_current(models) == served
    kept = [v for v in (models / "versions").iterdir() if v.name != served]
    assert len(kept) == 1
    promotion = artifact.read_metadata(models, kept[0].name)["promotion"]
    assert promotion["promoted"] is False
    assert promotion["compared_with"]["new"] > promotion["compared_with"]["served"]

    assert train(data, models, "--model", "seasonal", "--force") == 0
    assert current_metadata(models)["promotion"]["forced"] is True

    # The message's own command publishes the kept version as it is.
    command = err.split("python -m training.versions ")[1].split()
    assert versions_main(command) == 0
    assert artifact.read_current(models) == kept[0].name


def backtest_of(errors: dict) -> SimpleNamespace:
    """A backtest of series name -> (scale, new error, served version's error) on
    twelve months, as `compare_with_served` reads it; the served version forecast
    with `linear`."""
    rows = [{"series": name, "origin": 100, "month": 100 + h, "actual": 50.0,
             "scale": scale, "served": 50.0 + new, "linear": 50.0 + old}
            for name, (scale, new, old) in errors.items() for h in range(1, 13)]
    return SimpleNamespace(table=pd.DataFrame(rows), choices=dict.fromkeys(errors))


def test_a_series_with_no_mase_scale_is_compared_apart_from_the_others():
    # MASE 0.105 against 0.55: much better on the small series, a little worse on
    # the big one, which MAE over every month (5.55 against 5.5) let outweigh it.
    series = {"big": (100.0, 11.0, 10.0), "small": (1.0, 0.1, 1.0),
              "flat": (np.nan, 0.0, 0.0)}

    compared = compare_with_served(pd.DataFrame(), backtest_of(series),
                                   dict.fromkeys(series, {"linear": 1.0}))

    assert compared["metric"] == "mase" and compared["not_worse"] is True
    assert compared["new"] == pytest.approx(0.105)
    assert compared["unscaled"]["series"] == ["flat"]
    worse = backtest_of(series | {"flat": (np.nan, 2.0, 0.0)})
    compared = compare_with_served(pd.DataFrame(), worse,
                                   dict.fromkeys(series, {"linear": 1.0}))
    assert compared["scaled_not_worse"] is True and compared["not_worse"] is False


@pytest.fixture
def wineind_served(tmp_path, capsys):
    """A store serving wineind, and a renamed copy of the same one-series file."""
    models = tmp_path / "models"
    assert train(WINEIND, models) == 0
    renamed = tmp_path / "wineind_2026.csv"
    renamed.write_bytes(WINEIND.read_bytes())
    capsys.readouterr()
    return models, artifact.read_current(models), renamed


def test_a_version_without_a_served_series_is_kept_unpublished(wineind_served,
                                                                capsys):
    models, served, renamed = wineind_served

    assert train(renamed, models) == 3

    err = capsys.readouterr().err
    assert "does not have 1 series that the served version" in err
    assert f"{served} answers (wineind)" in err
    assert "--series-name wineind" in err and "--force" in err
    assert f"CURRENT still names {served}" in err and "kept unpublished" in err
    assert artifact.read_current(models) == served
    kept = [v.name for v in (models / "versions").iterdir() if v.name != served]
    assert len(kept) == 1
    promotion = artifact.read_metadata(models, kept[0])["promotion"]
    assert promotion["promoted"] is False
    assert promotion["compared_with"]["missing_series"] == ["wineind"]


def test_forcing_a_version_without_a_served_series_says_what_was_dropped(
        wineind_served, capsys):
    models, served, renamed = wineind_served

    assert train(renamed, models, "--force") == 0

    out = capsys.readouterr().out
    assert f"dropped: 1 series that version {served} answered, now refused: " \
        "wineind" in out
    meta = current_metadata(models)
    assert [s["name"] for s in meta["series"]] == ["wineind_2026"]
    assert meta["promotion"]["forced"] is True


def test_another_series_is_not_offered_the_served_series_name(wineind_served,
                                                              tmp_path, capsys):
    models, served, _ = wineind_served
    other = tmp_path / "beer.csv"
    frame = pd.read_csv(WINEIND)
    frame["sales"] = frame["sales"] * 0.5 + 7
    frame.to_csv(other, index=False)

    assert train(other, models) == 3

    err = capsys.readouterr().err
    assert "--series-name wineind" not in err
    assert "The file's sales are not those of the served series 'wineind'" in err
    assert "To serve both, train on a file that has both." in err


def test_the_served_series_renamed_with_months_added_is_offered_its_name(
        wineind_served, tmp_path, capsys):
    models, served, _ = wineind_served
    longer = tmp_path / "wineind_update.csv"
    frame = pd.read_csv(WINEIND)
    last = pd.Timestamp(frame["date"].iloc[-1])
    extra = pd.DataFrame({"date": [(last + pd.DateOffset(months=k)).strftime(
        "%Y-%m-%d") for k in (1, 2)], "sales": [25000.0, 26000.0]})
    pd.concat([frame, extra]).to_csv(longer, index=False)

    assert train(longer, models) == 3

    err = capsys.readouterr().err
    assert "The file's sales are those of the served series 'wineind' on (nearly) " \
        "all the months both have: train with --series-name wineind to keep it " \
        "served." in err


def test_the_served_series_with_a_month_revised_is_offered_its_name(
        wineind_served, tmp_path, capsys):
    models, served, _ = wineind_served
    revised = tmp_path / "wineind_revised.csv"
    frame = pd.read_csv(WINEIND)
    frame.loc[len(frame) - 3, "sales"] += 100  # a late return booked
    frame.to_csv(revised, index=False)

    assert train(revised, models) == 3

    assert "train with --series-name wineind" in capsys.readouterr().err


@pytest.mark.parametrize("damage", [
    lambda path: path.unlink(),
    lambda path: path.write_text("{not json"),
], ids=["missing", "unreadable"])
def test_without_the_served_history_the_file_is_not_called_another_series(
        wineind_served, capsys, damage):
    models, served, renamed = wineind_served
    damage(models / artifact.VERSIONS / served / artifact.HISTORY_FILE)

    assert train(renamed, models) == 3

    err = capsys.readouterr().err
    assert "not those of the served series" not in err
    assert "--series-name wineind" not in err
    assert "names its one series after the file unless --series-name names it." \
        in err


def test_a_file_of_several_series_is_not_pointed_to_the_one_series_option(
        tmp_path, capsys):
    models = tmp_path / "models"
    shops = [growing_seasonal(48, name) for name in ("north", "south", "west")]
    assert train(write_csv(tmp_path / "three.csv", *shops), models) == 0

    assert train(write_csv(tmp_path / "two.csv", *shops[:2]), models) == 3

    err = capsys.readouterr().err
    assert "does not have 1 series that the served version" in err
    assert "train on a file that has them too. Pass --force" in err
    assert "--series-name" not in err


def test_naming_the_series_keeps_it_served(wineind_served):
    models, served, renamed = wineind_served

    assert train(renamed, models, "--series-name", "wineind") == 0

    assert artifact.read_current(models) != served
    assert current_metadata(models)["promotion"]["compared_with"]["missing_series"] \
        == []


def test_a_version_with_every_served_series_and_more_is_published(tmp_path, capsys):
    # The per-series regression, so the shared series is forecast exactly as before
    # and only the series sets differ.
    models = tmp_path / "models"
    assert train(write_csv(tmp_path / "one.csv", growing_seasonal(name="shop")),
                 models, "--model", "seasonal") == 0
    served = artifact.read_current(models)
    more = write_csv(tmp_path / "more.csv", growing_seasonal(name="shop"),
                     growing_seasonal(name="outlet"))

    assert train(more, models, "--model", "seasonal") == 0

    assert "dropped" not in capsys.readouterr().out
    meta = current_metadata(models)
    assert meta["version"] != served
    assert [s["name"] for s in meta["series"]] == ["outlet", "shop"]
    assert meta["promotion"]["compared_with"]["missing_series"] == []
    assert meta["promotion"]["forced"] is False


def test_a_long_list_of_names_is_cut_with_a_count():
    assert some_names(["a", "b"]) == "a, b"
    assert some_names(list("abcdefgh")) == "a, b, c, d, e, ... and 3 more"


# Intervals -------------------------------------------------------------------------

def test_forecast_intervals_are_ordered_and_contain_the_point(client):
    rows = client.post("/forecast", json={"horizon": 60}).get_json()["forecast"]

    assert len(rows) == 60
    for row in rows:
        assert set(row) == {"date", "sales", "lower_80", "upper_80", "lower_95",
                            "upper_95"}
        assert 0 <= row["lower_95"] <= row["lower_80"] <= row["sales"] \
            <= row["upper_80"] <= row["upper_95"]
    widths = [r["upper_95"] - r["lower_95"] for r in rows]
    assert widths[-1] > widths[0]


def test_lower_bounds_are_clipped_at_zero(tmp_path):
    tiny = growing_seasonal(40).assign(sales=lambda f: np.where(
        np.arange(40) % 3 == 0, 0.0, np.arange(40) % 7 + 1.0))
    data = write_csv(tmp_path / "tiny.csv", tiny)
    assert train(data, tmp_path / "models") == 0

    rows = client_for(tmp_path / "models").post(
        "/forecast", json={"horizon": 24}).get_json()["forecast"]

    assert current_metadata(tmp_path / "models")["intervals"]["clipped_at_zero"]
    assert min(r["lower_95"] for r in rows) == 0
    assert all(r["lower_95"] <= r["sales"] <= r["upper_95"] for r in rows)


def test_conformal_quantile_uses_the_finite_sample_rank():
    values = np.arange(1.0, 10.0)  # nine errors: rank ceil(10 * 0.8) = 8

    assert intervals.conformal_quantile(values, 80) == 8
    assert intervals.conformal_quantile(values, 95) == 9  # rank 10 > 9: the largest


def test_levels_resting_on_too_few_errors_are_named_with_their_months_ahead():
    # Six origins of one series: 12 errors at 1 and 12 months ahead (one neighbour),
    # 18 between; enough for 80% everywhere (4), never for 95% (19).
    rows = pd.DataFrame({
        "series": "a", "origin": np.repeat(np.arange(100, 106), 12),
        "horizon": np.tile(np.arange(1, 13), 6), "actual": 10.0, "scale": 1.0,
        "served": 10.0 + np.arange(72) % 5})

    result = calibrate_intervals(rows, {"a": np.arange(1.0, 50.0)}, 12, floor=None)

    assert result["errors_per_months_ahead"] == [12] + [18] * 10 + [12]
    assert result["widest_seen"] == {"95": list(range(1, 13))}
    assert intervals.thin_levels(result) == [
        "the 95% half-width is the widest of 12 to 18 backtest errors at every month "
        "ahead (a 95% promise needs 19; a longer history or more series give more)"]
    assert [intervals.fewest_errors(level) for level in (80, 90, 95, 99)] == \
        [4, 9, 19, 99]


def test_a_series_that_never_changes_gets_bands_as_narrow_as_its_errors():
    # Its level is no spread: the others' quantiles times 50 made bands wider than
    # the series itself, and its errors of 0 narrowed the others' bands.
    origins, ahead = np.repeat(np.arange(100, 106), 12), np.tile(np.arange(1, 13), 6)
    shop = pd.DataFrame({"series": "shop", "origin": origins, "horizon": ahead,
                         "actual": 10.0, "scale": 1.0,
                         "served": 10.0 + np.arange(72) % 5})
    flat = shop.assign(series="flat", actual=50.0, scale=np.nan, served=50.0)
    sales = {"shop": np.arange(1.0, 50.0), "flat": np.full(49, 50.0)}

    both = calibrate_intervals(pd.concat([shop, flat]), sales, 12, floor=0.0)
    alone = calibrate_intervals(shop, {"shop": sales["shop"]}, 12, floor=0.0)

    assert both["series"]["flat"]["80"] == [0.0] * 60
    assert both["series"]["flat"]["95"] == [0.0] * 60
    assert both["series"]["shop"] == alone["series"]["shop"]


def test_a_short_series_band_rests_on_a_dozen_values_at_least():
    """13 months have one year-on-year change: a '95%' band of that one value was
    narrower than the 12-month series' band and missed 2 of 3 actual months."""
    sales = pd.read_csv(WINEIND)["sales"].to_numpy(dtype=np.float64)

    for months in range(12, 24):
        history = sales[:months]
        q = intervals.in_sample_quantiles(history, 3)
        spread = np.abs(history - history.mean()) / intervals.series_scale(history)
        assert q[95][0] == intervals.conformal_quantile(spread, 95), months
        assert q[80][0] < q[95][0], months
    longer = intervals.in_sample_quantiles(sales[:24], 3)
    changes = np.abs(sales[12:24] - sales[:12]) / intervals.series_scale(sales[:24])
    assert longer[95][0] == intervals.conformal_quantile(changes, 95)


def test_enough_errors_leave_no_level_at_the_widest_seen():
    rows = pd.DataFrame({
        "series": np.repeat(["a", "b", "c", "d"], 72),
        "origin": np.tile(np.repeat(np.arange(100, 106), 12), 4),
        "horizon": np.tile(np.arange(1, 13), 24), "actual": 10.0, "scale": 1.0,
        "served": 10.0 + np.arange(288) % 7})
    sales = {name: np.arange(1.0, 50.0) for name in "abcd"}

    result = calibrate_intervals(rows, sales, 12, floor=None)

    assert min(result["errors_per_months_ahead"]) == 48
    assert result["widest_seen"] == {} and intervals.thin_levels(result) == []
    assert intervals.thin_levels({"levels": [80, 95]}) == []  # older metadata


def test_coverage_is_measured_on_later_origins_with_earlier_quantiles():
    # Origin 100: every error is 1 (the calibration). Origin 103: errors alternate
    # 0.5 (inside any interval of half-width 1) and 2 (outside): coverage is 50%.
    later = np.where(np.arange(12) % 2 == 0, 0.5, 2.0)
    rows = pd.DataFrame({
        "series": "a", "origin": np.repeat([100, 103], 12),
        "horizon": np.tile(np.arange(1, 13), 2), "actual": 10.0, "scale": 1.0,
        "served": 10.0 + np.r_[np.ones(12), later]})
    errors = intervals.scaled_errors(rows, "served", {"a": 1.0})

    result = intervals.coverage(errors, rows, "served", {"a": 1.0}, 12, floor=None)

    assert result["calibration_origins"] == [100] and result["test_origins"] == [103]
    assert result["months"] == 12
    assert result["80"] == 0.5 and result["95"] == 0.5


def test_model_endpoint_reports_backtest_metrics_and_coverage(client):
    meta = client.get("/model").get_json()

    metrics = meta["metrics"]
    assert metrics["served"]["mase"] > 0 and metrics["seasonal-naive"]["mase"] > 0
    assert 0 <= metrics["coverage_80"] <= 1 and 0 <= metrics["coverage_95"] <= 1
    assert meta["intervals"]["coverage"]["measured"] is True
    assert len(meta["backtest"]["origins"]) >= 2
    # The origins that calibrated and that tested the intervals, named as the
    # backtest's own ("1992-05"), not as month numbers.
    coverage = meta["intervals"]["coverage"]
    split = coverage["calibration_origins"] + coverage["test_origins"]
    assert split == meta["backtest"]["origins"]
    per_horizon = meta["evaluation"]["wineind"]["per_horizon"]
    assert len(per_horizon["seasonal-naive"]) == 12


# Short and intermittent series -----------------------------------------------------

def test_short_and_intermittent_series_get_a_stated_choice_and_finite_answers(tmp_path):
    rng = np.random.default_rng(1)
    zeros = growing_seasonal(60, "spare parts").assign(
        sales=np.where(rng.random(60) < 0.6, 0.0, rng.integers(1, 5, 60)))
    data = write_csv(tmp_path / "mixed.csv", growing_seasonal(60, "regular"), zeros,
                     growing_seasonal(8, "new shop"),
                     growing_seasonal(20, "young shop"))

    assert train(data, tmp_path / "models") == 0

    meta = current_metadata(tmp_path / "models")
    by_name = {s["name"]: s for s in meta["series"]}
    assert by_name["new shop"]["model"] == "mean"
    assert f"fewer than {SEASONAL_MONTHS}" in by_name["new shop"]["reason"]
    assert by_name["young shop"]["model"] == "seasonal-naive"
    assert f"fewer than {BACKTEST_MONTHS}" in by_name["young shop"]["reason"]
    assert by_name["spare parts"]["tier"] == "intermittent"
    assert "intermittent" in by_name["spare parts"]["reason"]
    assert meta["data"]["min_months"] == 6
    assert json.dumps(meta, allow_nan=False)

    client = client_for(tmp_path / "models")
    for name in by_name:
        rows = client.post("/forecast", json={"horizon": 60, "series": name}) \
            .get_json()["forecast"]
        assert all(math.isfinite(v) for r in rows for k, v in r.items() if k != "date")


# The lag model ---------------------------------------------------------------------

def test_lag_forecast_is_the_hand_computed_recursion():
    history = growing_seasonal(37)  # the shortest history one lag can learn from
    y = history["sales"].to_numpy()
    model = LagForecaster(lags=1).fit(history[["date"]], y)
    w, b = model.regression_.coef_[0], model.regression_.intercept_

    z = list(np.log1p(y))
    change = z[-1] - z[-13]
    expected = []
    for _ in range(3):
        change = b + w * change  # next year-on-year change from the last one
        z.append(z[-12] + change)  # added to the same month a year before
        expected.append(np.expm1(z[-1]))

    future = pd.DataFrame({"date": pd.date_range("2018-02-01", periods=3, freq="MS")})
    assert model.predict(future) == pytest.approx(expected, rel=1e-12)


def test_every_model_answers_finite_values_far_ahead_and_before_the_history():
    history = growing_seasonal(72)
    rows = pd.DataFrame({"date": pd.date_range("2014-01-01", periods=72 + 80,
                                               freq="MS"), "series": "shop"})
    for kind in ("blend-members", "seasonal-naive", "linear", "mean"):
        models = {"shop": dict.fromkeys(BLEND_MEMBERS, 1)} \
            if kind == "blend-members" else None
        model = SalesForecaster(models=models, default=kind if models is None
                                else "seasonal")
        model.fit(history[["date", "series"]], history["sales"])
        first, second = model.predict(rows), model.predict(rows)
        assert np.isfinite(first).all() and (first == second).all(), kind


def taken_off_sale(name: str = "gone", zeros: int = 12, seed: int = 0) -> pd.DataFrame:
    """Ten years of a 25% seasonal swing around 1,000 with 5% noise, the last `zeros`
    months 0 (the product was taken off sale)."""
    t = np.arange(120)
    noise = 1 + 0.05 * np.random.default_rng(seed).standard_normal(120)
    sales = 1000 * (1 + 0.25 * np.sin(2 * np.pi * t / 12)) * noise
    sales[120 - zeros:] = 0.0
    return pd.DataFrame({"date": pd.date_range("2015-01-01", periods=120, freq="MS"),
                         "sales": sales, "series": name})


def blend_of_members(frame: pd.DataFrame) -> SalesForecaster:
    members = dict.fromkeys(BLEND_MEMBERS, 1)
    model = SalesForecaster(models=dict.fromkeys(frame["series"].unique(), members))
    return model.fit(frame[["date", "series"]], frame["sales"])


def months_after(frame: pd.DataFrame, name: str, months: int = 60) -> pd.DataFrame:
    return pd.DataFrame({"date": pd.date_range(frame["date"].max(), periods=months + 1,
                                               freq="MS")[1:], "series": name})


def test_a_product_taken_off_sale_does_not_send_the_lag_models_to_the_ceiling():
    # A yearly change of log1p(0) - log1p(1000) was never seen before the last year;
    # rolled forward unbounded the lag model swung to 5e21 within a year, and the
    # served blend sat at its ceiling (100 times the best month) for eighteen months.
    history = taken_off_sale()
    ahead = months_after(history, "gone")

    lag = LagForecaster().fit(history[["date"]], history["sales"]).predict(ahead)
    served = blend_of_members(history).predict(ahead)

    assert lag.max() <= history["sales"].max()
    assert served.max() <= history["sales"].max()


def test_a_series_taken_off_sale_does_not_carry_the_pooled_lag_away_for_others():
    healthy = taken_off_sale("healthy", zeros=0, seed=1)
    frame = pd.concat([healthy, taken_off_sale("gone", 6, seed=2)], ignore_index=True)
    ahead = months_after(frame, "healthy")

    model = blend_of_members(frame)

    # Unbounded, the regression learned from both series reached 5e21 for the
    # healthy one too, and its served forecast hit the ceiling 46 months ahead.
    # The members answer in the unit they were fitted in (SalesForecaster.units_).
    pooled = (model.models_["healthy"]["pooled-lag"][0].predict(ahead)
              / model.units_["healthy"])
    assert pooled.max() <= 2 * healthy["sales"].max()
    assert model.predict(ahead).max() <= 2 * healthy["sales"].max()


# The smoothing models --------------------------------------------------------------

def seasonal_rows(months: int, growth: float, start: str = "2015-01-01"):
    """Noise-free log-linear sales with a fixed month-of-year pattern."""
    t = np.arange(months)
    effects = 0.2 * np.sin(2 * np.pi * np.arange(12) / 12)
    sales = np.expm1(5 + growth * t + effects[t % 12])
    dates = pd.date_range(start, periods=months, freq="MS")
    return pd.DataFrame({"date": dates, "sales": sales, "series": "shop"}), effects


def test_seasonal_adjustment_recovers_the_month_of_year_effects():
    rows, effects = seasonal_rows(60, growth=0.01)

    found = seasonal_adjustment(np.log1p(rows["sales"].to_numpy()), 2015 * 12)

    assert found == pytest.approx(effects - effects.mean(), abs=1e-9)


@pytest.mark.parametrize("trend", ["theta", "damped"])
def test_smoothing_continues_a_clean_log_linear_trend(trend):
    rows, _ = seasonal_rows(72, growth=0.01)
    history, future = rows.iloc[:60], rows.iloc[60:]

    model = SmoothingForecaster(trend=trend).fit(history, history["sales"])
    forecast = model.predict(future)

    # Both follow the season exactly; the trend they carry differs (half the slope
    # for theta, a fading one for damped), so they land between flat and the truth.
    flat = np.expm1(np.log1p(history["sales"].to_numpy()[-12:]))
    truth = future["sales"].to_numpy()
    assert (forecast > flat * 0.999).all() and (forecast < truth * 1.001).all()
    assert np.abs(forecast - truth).mean() < np.abs(flat - truth).mean()


def test_theta_forecast_is_smoothing_plus_half_the_slope_by_hand():
    history = growing_seasonal(48)
    noise = np.random.default_rng(1).normal(0, 0.1, 48)
    y = history["sales"].to_numpy() * np.exp(noise)  # noisy: smoothing has work
    model = SmoothingForecaster(trend="theta").fit(history[["date"]], y)
    assert model.alpha_ < 1

    z = np.log1p(y)
    effects = seasonal_adjustment(z, 2015 * 12)
    adjusted = z - effects[np.arange(48) % 12]
    level, alpha = adjusted[0], model.alpha_
    for value in adjusted[1:]:
        level += alpha * (value - level)  # the last level has seen every month
    slope = np.polyfit(np.arange(48), adjusted, 1)[0] / 2
    h = np.arange(1, 4)
    drift = slope * (h - 1 + (1 - (1 - alpha) ** 48) / alpha)
    expected = np.expm1(level + drift + effects[(48 + h - 1) % 12])

    future = pd.DataFrame({"date": pd.date_range("2019-01-01", periods=3, freq="MS")})
    assert model.predict(future) == pytest.approx(expected, rel=1e-12)


def test_the_damped_trend_fades_month_by_month():
    rows, _ = seasonal_rows(60, growth=0.02)
    model = SmoothingForecaster(trend="damped").fit(rows, rows["sales"])

    steps = np.diff(model._ahead(np.arange(1.0, 61.0)))

    assert model.phi_ < 1
    assert (steps > 0).all() and (np.diff(steps) < 0).all()


@pytest.mark.parametrize("trend", ["theta", "damped"])
def test_smoothing_answers_finitely_before_inside_and_far_after_the_history(trend):
    rows, _ = seasonal_rows(40, growth=0.05)
    model = SmoothingForecaster(trend=trend).fit(rows, rows["sales"])
    asked = pd.DataFrame({"date": pd.date_range("2013-01-01", periods=24 + 40 + 60,
                                                freq="MS")})

    first, second = model.predict(asked), model.predict(asked)

    assert np.isfinite(first).all() and (first == second).all()
    # Before the history: the first month stands in.
    assert first[:24] == pytest.approx(rows["sales"].iloc[0])


@pytest.mark.parametrize("model, trend, rows, message", [
    (SmoothingForecaster, "theta", 23,
     "needs at least 24 months of non-negative sales, got 23"),
    (PooledSmoothingForecaster, "theta", 23,
     "needs at least one series with 24 months of non-negative sales; none has"),
    (SmoothingForecaster, "cubic", 48,
     "Unknown smoothing trend 'cubic'; choose one of: theta, damped"),
    (PooledSmoothingForecaster, "cubic", 48,
     "Unknown smoothing trend 'cubic'; choose one of: theta, damped"),
], ids=["too-short", "too-short-pooled", "unknown-trend", "unknown-trend-pooled"])
def test_smoothing_refuses_what_it_cannot_fit(model, trend, rows, message):
    history, _ = seasonal_rows(rows, growth=0.01)

    with pytest.raises(ValueError, match=message):
        model(trend=trend).fit(history, history["sales"])


def shops_with_a_season(noise: dict, months: int = 72, seed: int = 3) -> pd.DataFrame:
    """Shops growing 1% a month with the season of `seasonal_rows`, each with log
    noise of the size `noise` gives it; "campus" peaks six months later instead."""
    rng = np.random.default_rng(seed)
    t = np.arange(months)
    effects = 0.2 * np.sin(2 * np.pi * t / 12)
    frames = []
    for name, size in noise.items():
        season = -effects if name == "campus" else effects
        z = 5 + 0.01 * t + season + rng.normal(0, size, months)
        frames.append(pd.DataFrame({
            "date": pd.date_range("2015-01-01", periods=months, freq="MS"),
            "sales": np.expm1(z), "series": name}))
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("trend", ["theta", "damped"])
def test_in_a_file_of_one_series_the_pooled_smoothing_is_the_series_own(trend):
    history = growing_seasonal(60)
    asked = pd.concat([history[["date", "series"]], months_after(history, "shop")])

    pooled = PooledSmoothingForecaster(trend=trend).fit(history, history["sales"])
    alone = SmoothingForecaster(trend=trend).fit(history, history["sales"])

    assert pooled.weights_ == {"shop": 1.0}
    assert pooled.predict(asked) == pytest.approx(alone.predict(asked), rel=1e-12)


def test_a_noisy_season_leans_on_the_file_and_a_season_of_its_own_keeps_it():
    quiet = {f"shop {i}": 0.02 for i in range(8)}
    frame = shops_with_a_season(quiet | {"noisy": 0.15, "campus": 0.02})
    true_effects = 0.2 * np.sin(2 * np.pi * np.arange(12) / 12)

    model = PooledSmoothingForecaster(trend="theta").fit(frame, frame["sales"])

    noisy = frame[frame["series"] == "noisy"]
    own = seasonal_adjustment(np.log1p(noisy["sales"].to_numpy()), 2015 * 12)
    shrunk = model.models_["noisy"].effects_
    assert np.abs(shrunk - true_effects).max() < np.abs(own - true_effects).max() / 2
    assert model.weights_["noisy"] < min(model.weights_[name] for name in quiet)
    # Pulled towards the others, the campus' season would be half wrong.
    assert model.weights_["campus"] > 0.95


def fitted_with_the_shops(extra: pd.DataFrame):
    """The pooled theta fitted on eight shops and `extra`, after checking that the
    shops' seasons are those they have without it."""
    shops = shops_with_a_season({f"shop {i}": 0.1 for i in range(8)})
    alone = PooledSmoothingForecaster(trend="theta").fit(shops, shops["sales"])
    both = pd.concat([shops, extra], ignore_index=True)
    model = PooledSmoothingForecaster(trend="theta").fit(both, both["sales"])

    for i in range(8):
        assert model.models_[f"shop {i}"].effects_ == pytest.approx(
            alone.models_[f"shop {i}"].effects_, abs=1e-12)
    return model


SHOP_MONTHS = pd.date_range("2015-01-01", periods=72, freq="MS")


def test_a_series_of_mostly_zeros_does_not_shape_the_season_others_lean_on():
    rng = np.random.default_rng(5)
    # Sold in 40% of months only: log sales jump between 0 and about 6.
    lumpy = pd.DataFrame({"date": SHOP_MONTHS, "series": "lumpy", "sales": np.where(
        rng.random(len(SHOP_MONTHS)) < 0.4, rng.uniform(200, 600, len(SHOP_MONTHS)),
        0.0)})

    model = fitted_with_the_shops(lumpy)

    assert model.weights_["lumpy"] < 0.5  # it leans on the shops' season


def test_a_series_that_never_changes_does_not_shape_the_season_others_lean_on():
    flat = pd.DataFrame({"date": SHOP_MONTHS, "series": "flat fee", "sales": 50.0})

    model = fitted_with_the_shops(flat)

    # It keeps its own season of none: its forecast stays flat.
    ahead = months_after(flat, "flat fee", 12)
    assert model.predict(ahead) == pytest.approx(50.0, rel=1e-9)


@pytest.mark.parametrize("kind", ["theta", "damped"])
def test_the_backtest_and_the_served_model_share_the_files_season_alike(kind):
    frame = shops_with_a_season({"a": 0.05, "b": 0.05, "c": 0.1, "new": 0.05})
    # A shop too new for the smoothing models is left out of both fits.
    frame = frame[(frame["series"] != "new") | (frame["date"] >= "2019-07-01")]
    origin = rolling_origins(frame, count=1, step=3, horizon=12)[0]

    table = run_backtest(frame, [kind], [origin])

    history = with_months(frame).query("month <= @origin")
    served = SalesForecaster(default=kind).fit(history[["date", "series"]],
                                               history["sales"])
    scored = table[table["series"] != "new"]
    asked = with_months(frame).set_index(["series", "month"]).loc[
        list(zip(scored["series"], scored["month"])), "date"].reset_index()
    assert scored[kind].to_numpy() == pytest.approx(
        served.predict(asked[["date", "series"]]), rel=1e-12)
    assert table.loc[table["series"] == "new", kind].isna().all()


@pytest.mark.parametrize("kind", ["theta", "pooled-lag"])
def test_a_series_that_ends_at_a_cut_off_is_still_pooled_there(kind):
    frame = shops_with_a_season({"a": 0.05, "b": 0.05, "c": 0.1, "gone": 0.05})
    origin = rolling_origins(frame, count=1, step=3, horizon=12)[0]
    # The last month of "gone" is the cut-off: that it stops there is not known then.
    frame = with_months(frame).query("series != 'gone' or month <= @origin")

    table = run_backtest(frame, [kind], [origin])

    history = frame.query("month <= @origin")
    served = SalesForecaster(default=kind).fit(history[["date", "series"]],
                                               history["sales"])
    asked = frame.set_index(["series", "month"]).loc[
        list(zip(table["series"], table["month"])), "date"].reset_index()
    assert set(table["series"]) == {"a", "b", "c"}
    assert table[kind].to_numpy() == pytest.approx(
        served.predict(asked[["date", "series"]]), rel=1e-12)

# statsmodels 0.15.0, SARIMAX(order=(0, 1, 1), seasonal_order=(0, 1, 1, 12)) by exact
# maximum likelihood on log1p of data/wineind.csv (1980-01 to 1994-08): MA
# coefficients -0.8925 and -0.6530 (statsmodels' signs; theta = 0.8925 and
# Theta = 0.6530 here) and the next 12 months, rounded.
STATSMODELS_WINEIND = (0.8925, 0.6530, [
    24410, 27091, 31821, 37231, 15803, 21246, 23764, 25574, 24011, 25098, 29678, 26083])


def test_airline_agrees_with_statsmodels_seasonal_arima_on_wineind():
    frame = pd.read_csv(WINEIND, parse_dates=["date"])
    theta, big_theta, expected = STATSMODELS_WINEIND

    model = AirlineForecaster().fit(frame[["date"]], frame["sales"])
    future = pd.DataFrame({"date": pd.date_range("1994-09-01", periods=12, freq="MS")})

    # A grid 0.05 apart and a conditional rather than exact likelihood: coefficients
    # one step from statsmodels', forecasts within half a percent of its.
    assert model.theta_ == pytest.approx(theta, abs=0.05)
    assert model.big_theta_ == pytest.approx(big_theta, abs=0.05)
    assert model.predict(future) == pytest.approx(expected, rel=0.005)


def test_airline_continues_a_noise_free_trend_and_season_exactly():
    rows, _ = seasonal_rows(72, growth=0.01)
    history, future = rows.iloc[:48], rows.iloc[48:]

    model = AirlineForecaster().fit(history, history["sales"])

    # Log-linear with a fixed season: the doubly differenced series is zero, every
    # shock is zero, and undoing the differences continues the pattern as it was.
    assert model.predict(future) == pytest.approx(future["sales"], rel=1e-9)
    assert model.predict(history) == pytest.approx(history["sales"], rel=1e-9)


def test_airline_answers_finitely_before_inside_and_far_after_the_history():
    history = growing_seasonal(40)
    noisy = history["sales"].to_numpy() * np.exp(
        np.random.default_rng(2).normal(0, 0.1, 40))
    model = AirlineForecaster().fit(history[["date"]], noisy)
    asked = pd.DataFrame({"date": pd.date_range("2013-01-01", periods=24 + 40 + 60,
                                                freq="MS")})

    first, second = model.predict(asked), model.predict(asked)

    assert np.isfinite(first).all() and (first == second).all()
    assert first[:24] == pytest.approx(noisy[0])  # before the history: the first month
    # The first 13 months have no one-month-ahead fit and answer with themselves.
    assert first[24:37] == pytest.approx(noisy[:13])


@pytest.mark.parametrize("months, negative, message", [
    (35, False, "AirlineForecaster needs at least 36 months of non-negative sales, "
                "got 35 months"),
    (48, True, r"AirlineForecaster needs at least 36 months of non-negative sales, "
               r"got 48 months \(minimum -1\)"),
], ids=["too-short", "negative"])
def test_airline_refuses_what_it_cannot_fit(months, negative, message):
    history = growing_seasonal(months)
    sales = history["sales"].to_numpy().copy()
    if negative:
        sales[5] = -1

    with pytest.raises(ValueError, match=message):
        AirlineForecaster().fit(history[["date"]], sales)


def test_the_blend_averages_every_member_a_long_series_allows():
    long_enough = np.full(48, 10.0)

    assert members_of(BLEND, long_enough) == pytest.approx(
        dict.fromkeys(BLEND_MEMBERS, 1 / len(BLEND_MEMBERS)))
    assert {"theta", "damped"} <= set(BLEND_MEMBERS)


def test_a_blend_with_the_smoothing_models_loads_through_the_allow_list(tmp_path):
    import joblib

    history = growing_seasonal(60)
    model = SalesForecaster(models={"shop": dict.fromkeys(BLEND_MEMBERS, 1)})
    model.fit(history[["date", "series"]], history["sales"])
    joblib.dump(model, tmp_path / "model.joblib")

    loaded = load_model(tmp_path / "model.joblib")

    rows = history[["date", "series"]]
    assert type(loaded.models_["shop"]["theta"][0]) is PooledSmoothingForecaster
    assert loaded.predict(rows) == pytest.approx(model.predict(rows), rel=1e-12)


# The backtest ----------------------------------------------------------------------

def test_backtest_origins_are_time_ordered_and_never_see_the_future():
    frame = growing_seasonal(72)
    origins = rolling_origins(frame, count=4, step=3, horizon=12)

    table = run_backtest(frame, ["seasonal-naive"], origins)

    assert origins == sorted(origins) and origins[-1] == frame["date"].dt.year.max() \
        * 12 + 12 - 1 - 12
    assert (table["month"] > table["origin"]).all()
    assert table.groupby("origin")["horizon"].agg(["min", "max"]).values.tolist() \
        == [[1, 12]] * 4
    # Seasonal naive at one month ahead repeats the month a year before the target.
    first = table[(table["origin"] == origins[0]) & (table["horizon"] == 1)]
    target = frame["date"].dt.year * 12 + frame["date"].dt.month - 1
    assert first["seasonal-naive"].iloc[0] == \
        frame["sales"][target == first["month"].iloc[0] - 12].iloc[0]


def test_smape_and_undefined_mape():
    m = point_metrics([0, 10], [0, 30], scale=None)

    assert m["smape"] == pytest.approx((0 + 2 * 20 / 40) / 2 * 100)
    assert m["mape"] is None and m["mase"] is None


# The report ------------------------------------------------------------------------

def test_the_report_is_self_contained_and_served(client, trained_store):
    version = artifact.read_current(trained_store)
    stored = (trained_store / "versions" / version / "report.html").read_text()

    page = client.get("/report")
    one = client.get("/report?series=wineind")
    image = client.get("/report.png")

    assert page.status_code == 200 and page.mimetype == "text/html"
    assert page.get_data(as_text=True) == stored
    for html in (stored, one.get_data(as_text=True)):
        assert "data:image/png;base64," in html
        assert "http://" not in html and "https://" not in html
        assert 'src="/' not in html and "<script" not in html
        assert "seasonal naive" in html
    assert image.get_data()[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get("/report.png?series=wineind").get_data()[:4] == b"\x89PNG"
    assert client.get("/report?series=beer").status_code == 404


def test_the_report_is_unavailable_without_a_model(tmp_path):
    response = client_for(tmp_path).get("/report")

    assert response.status_code == 503
    assert response.get_json()["code"] == "not_ready"


def test_a_series_name_the_font_cannot_draw_trains_without_warnings(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    data = write_csv(tmp_path / "shop.csv", growing_seasonal().assign(series="咖啡 ☕"))

    # A process of its own: pytest resets warning filters around every test.
    result = subprocess.run(
        [sys.executable, "-m", "training", "--data", str(data), "--model-dir",
         str(tmp_path / "models")], cwd=ROOT, capture_output=True, text=True,
        timeout=120)

    assert result.returncode == 0, result.stderr
    assert "missing from font" not in result.stderr


@pytest.mark.parametrize("name", ["$\\sqrt{$", "costs in $ and $"],
                         ids=["broken-mathtext", "dollar-signs"])
def test_a_series_name_with_dollar_signs_trains_and_gets_its_report(tmp_path, name):
    data = write_csv(tmp_path / "shop.csv", growing_seasonal().assign(series=name))

    # matplotlib reads text between two $ as a formula, and one it cannot parse
    # failed the whole training run when the report was drawn.
    assert train(data, tmp_path / "models") == 0


def test_a_series_name_as_long_as_a_line_may_be_does_not_widen_the_report_image(
        tmp_path):
    long_name = "W" * 5000
    data = write_csv(tmp_path / "shop.csv", growing_seasonal().assign(series=long_name))

    assert train(data, tmp_path / "models") == 0

    version = artifact.read_current(tmp_path / "models")
    png = (tmp_path / "models" / "versions" / version / "report.png").read_bytes()
    width = int.from_bytes(png[16:20], "big")  # the IHDR chunk's first field
    assert width < 2000


def test_a_refusal_quotes_the_model_s_long_series_names_only_in_part(tmp_path):
    long_name = "W" * 5000
    data = write_csv(tmp_path / "shop.csv", growing_seasonal().assign(series=long_name))
    assert train(data, tmp_path / "models") == 0

    response = client_for(tmp_path / "models").post("/forecast", json={"series": "x"})

    assert response.status_code == 404
    assert f"this model has {'W' * 100!r}... (5000 characters)." \
        in response.get_json()["error"]


@pytest.mark.parametrize("months, held_80, warned", [
    (12, 0.42, True),    # 80% +- 2 x 11.5 points: below 57% is more than chance
    (12, 0.67, False),   # low, but within chance on 12 months
    (120, 0.70, True),   # 80% +- 2 x 3.7 points: below 72.7%
    (120, 0.75, False),
])
def test_coverage_far_below_its_level_is_warned_about(months, held_80, warned):
    coverage = {"measured": True, "months": months, "80": held_80, "95": 0.95}

    sentences = intervals.short_levels(coverage)

    assert bool(sentences) == warned
    if warned:
        assert sentences == [f"the 80% interval held only {held_80:.0%} of the later "
                             "backtest months, well below 80%: expect the bands to be "
                             "too narrow for this data"]
    assert intervals.short_levels({"measured": False}) == []
