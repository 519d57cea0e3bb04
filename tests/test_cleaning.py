"""Gross errors in a history (training/cleaning.py): found, replaced for the fits only,
and never confused with real shocks, real changes or intermittent demand."""

import io
import json

import joblib
import numpy as np
import pandas as pd
import pytest

from tests.conftest import WINEIND, train
from training.backtest import rolling_origins, run_backtest
from training.cleaning import for_fitting, gross_errors
from training.features import log_unit
from training.models import SalesForecaster
from training.selection import BLEND_MEMBERS
from training.unpickle import ALLOWED, ForbiddenGlobal, load_model

FIRST = 1980 * 12  # January 1980 as a month number


def wineind() -> pd.DataFrame:
    frame = pd.read_csv(WINEIND, parse_dates=["date"])
    return frame.assign(series="wine")


def with_sales(frame: pd.DataFrame, changes: dict) -> pd.DataFrame:
    """A copy of FRAME with the sales at the given positions replaced."""
    sales = frame["sales"].to_numpy(dtype=np.float64, copy=True)
    for position, value in changes.items():
        sales[position] = value
    return frame.assign(sales=sales)


def future(frame: pd.DataFrame, months: int = 60) -> pd.DataFrame:
    parts = []
    for name, rows in frame.groupby("series"):
        start = rows["date"].max() + pd.DateOffset(months=1)
        parts.append(pd.DataFrame({
            "date": pd.date_range(start, periods=months, freq="MS"), "series": name}))
    return pd.concat(parts, ignore_index=True)


def blend_forecast(frame: pd.DataFrame, months: int = 60) -> tuple:
    model = SalesForecaster(models=dict.fromkeys(frame["series"].unique(),
                                                 dict.fromkeys(BLEND_MEMBERS, 1)))
    model.fit(frame[["date", "series"]], frame["sales"].to_numpy())
    asked = future(frame, months)
    return model, asked.assign(sales=model.predict(asked))


@pytest.mark.parametrize("recorded", [0.0, 50.0, 400_000.0],
                         ids=["stock-out", "lost-digits", "extra-digit"])
@pytest.mark.parametrize("position", [-1, -2, -5, 40], ids=["last", "2nd-last",
                                                               "5th-last", "old"])
def test_a_gross_error_is_found_and_replaced_by_what_season_and_neighbours_say(
        recorded, position):
    sales = wineind()["sales"].to_numpy(dtype=np.float64)
    truth = sales[position]
    sales[position] = recorded

    where, instead = gross_errors(sales, FIRST)

    assert where.tolist() == [position % len(sales)]
    # Not the recorded truth (nothing can know it), but the same order of magnitude.
    assert 0.6 * truth < instead[0] < 1.6 * truth


def test_real_shocks_and_the_untouched_bundled_series_are_left_alone():
    sales = wineind()["sales"].to_numpy(dtype=np.float64)
    assert gross_errors(sales, FIRST)[0].size == 0

    # A hurricane month: a third of the usual sales, and a tax-deadline spike of
    # three times them. Demand, not errors.
    shocked = sales.copy()
    shocked[100] /= 3
    shocked[130] *= 3
    assert gross_errors(shocked, FIRST)[0].size == 0


@pytest.mark.parametrize("run, found", [(1, 1), (2, 2), (3, 0), (6, 0)])
def test_only_short_runs_are_errors_a_longer_run_is_the_series_changing(run, found):
    sales = wineind()["sales"].to_numpy(dtype=np.float64)
    sales[-run:] = 0  # a product taken off sale for RUN months, or stock-outs

    assert gross_errors(sales, FIRST)[0].size == found


@pytest.mark.parametrize("case", ["short", "intermittent", "negative"])
def test_series_that_are_not_examined(case):
    sales = wineind()["sales"].to_numpy(dtype=np.float64)
    if case == "short":
        sales = sales[:35]
    elif case == "intermittent":
        sales[::3] = 0  # a third of the months sell nothing: zeros are the demand
    else:
        sales[10] = -5.0
    sales[-1] = 0 if case != "negative" else sales[-1] * 1000

    assert gross_errors(sales, FIRST)[0].size == 0


def test_rows_in_any_order_come_back_in_that_order_and_gaps_disable_it():
    sales = wineind()["sales"].to_numpy(dtype=np.float64)
    sales[-3] = 0
    months = FIRST + np.arange(len(sales))
    order = np.random.default_rng(0).permutation(len(sales))

    cleaned, replaced = for_fitting(months[order], sales[order])

    assert [(m, recorded) for m, recorded, _ in replaced] == [(months[-3], 0.0)]
    changed = np.flatnonzero(cleaned != sales[order])
    assert months[order][changed].tolist() == [months[-3]]
    # A month missing: no neighbours to trust, nothing replaced.
    assert for_fitting(np.delete(months, 50), np.delete(sales, 50))[1] == []


@pytest.mark.parametrize("position", [-5, -2, -1])
def test_one_stock_out_month_no_longer_sends_the_forecast_to_the_ceiling(position):
    clean = wineind()
    broken = with_sales(clean, {len(clean) + position: 0.0})

    _, reference = blend_forecast(clean)
    model, forecast = blend_forecast(broken)

    # Before the cleaning, the lag models read the zero as a fall of ten orders of
    # magnitude and this forecast reached 100 times the largest month (the cap).
    assert forecast["sales"].max() < 1.5 * clean["sales"].max()
    # The replacement is an estimate of the lost month, so the forecast is near the
    # one the true history gives, not equal to it.
    assert forecast["sales"].to_numpy() == pytest.approx(
        reference["sales"].to_numpy(), rel=0.15)
    assert [m for m, _, _ in model.cleaned_["wine"]] == [FIRST + len(clean) + position]


def test_seasonal_naive_repeats_the_replacement_not_the_gross_error():
    broken = with_sales(wineind(), {len(wineind()) - 12: 0.0})  # a year before the end

    model = SalesForecaster(models={"wine": "seasonal-naive"})
    model.fit(broken[["date", "series"]], broken["sales"].to_numpy())

    replaced = model.cleaned_["wine"]
    assert [(m, recorded) for m, recorded, _ in replaced] == [
        (FIRST + len(broken) - 12, 0.0)]
    # The bar is last year's month as it should have been, not the stock-out: a bar
    # that copies a gross error is one any model clears.
    assert model.predict(future(broken, 1))[0] == pytest.approx(replaced[0][2])
    assert replaced[0][2] == pytest.approx(broken["sales"].iloc[-24], rel=0.5)


def test_one_series_stock_out_does_not_leak_into_the_others_through_pooled_models():
    other = wineind().assign(series="other",
                             sales=lambda f: (f["sales"] * 0.3).round())
    clean = pd.concat([wineind(), other], ignore_index=True)
    broken = with_sales(clean, {len(wineind()) - 4: 0.0})  # wine, 4 months back

    _, reference = blend_forecast(clean)
    _, forecast = blend_forecast(broken)

    mine = forecast["series"] == "other"
    assert forecast.loc[mine, "sales"].to_numpy() == pytest.approx(
        reference.loc[mine, "sales"].to_numpy(), rel=0.01)


def test_the_backtest_fits_the_forecasting_kinds_on_cleaned_sales_at_each_cut_off():
    frame = with_sales(wineind(), {len(wineind()) - 20: 0.0})  # inside the backtest
    origins = rolling_origins(frame, count=6, step=3, horizon=12)

    table = run_backtest(frame, ["lag", "seasonal-naive"], origins)

    # Cut-offs after the zero would have sent the lag model to the ceiling.
    assert table["lag"].max() < 1.5 * frame["sales"].max()
    # The zero is scored for no model, and seasonal naive, a year after it, repeats
    # the replacement rather than the zero.
    zero_month = FIRST + len(wineind()) - 20
    assert zero_month not in set(table["month"]) and (table["actual"] > 0).all()
    assert table.loc[table["month"] == zero_month + 12, "seasonal-naive"].min() > 0


def test_a_series_whose_months_after_a_cut_off_are_all_gross_errors_is_not_scored():
    wine = wineind()
    origin = rolling_origins(wine, count=1, step=3, horizon=12)[0]
    # It ends the month after the cut-off, with a stock-out.
    ended = with_sales(wine.iloc[:origin - FIRST + 2], {-1: 0.0}).assign(
        series="ended")

    table = run_backtest(pd.concat([wine, ended], ignore_index=True),
                         ["seasonal-naive", "lag"], [origin])

    assert set(table["series"]) == {"wine"}
    assert np.isfinite(table[["seasonal-naive", "lag"]].to_numpy()).all()


def trained_metadata(frame: pd.DataFrame, tmp_path) -> dict:
    """The metadata of the version `python -m training` publishes from FRAME."""
    data = tmp_path / "wine.csv"
    frame[["date", "sales"]].assign(date=frame["date"].dt.strftime("%Y-%m")).to_csv(
        data, index=False)
    assert train(data, tmp_path / "models") == 0
    version = (tmp_path / "models" / "CURRENT").read_text().strip()
    return json.loads((tmp_path / "models" / "versions" / version /
                       "metadata.json").read_text())


def test_training_states_each_replaced_month_in_the_metadata_and_the_summary(
        tmp_path, capsys):
    meta = trained_metadata(with_sales(wineind(), {len(wineind()) - 5: 0.0}),  # 1994-04
                            tmp_path)
    [entry] = meta["series"][0]["cleaned"]
    assert entry["month"] == "1994-04" and entry["recorded"] == 0.0
    assert 15_000 < entry["used"] < 40_000
    assert ("wine: gross errors kept out of the models' fits: 1994-04 recorded 0, "
            "fitted as ") in capsys.readouterr().out


# Units: amounts in a large unit are read as the same amounts in a smaller one ---------

@pytest.mark.parametrize("sales, unit", [
    ([3, 0, 5, 4], 1.0),                  # counts keep the +1 of one item
    ([104.0, 622.0], 1.0),                # whole numbers, however few
    ([1234.5, 2000.25], 1.0),             # amounts with a typical month of 1,000+
    ([0.8, 2.5, 1.7], 1000.0),            # millions: 800 to 2,500 thousands
    ([1.0, 1.5], 1000.0),                 # not whole: a typical month of exactly 1
    ([0.0013, 0.0021], 1_000_000.0),
    ([0.0, 0.0], 1.0),                    # nothing to go on
    ([3.0] * 9 + [2.5], 1.0),             # counts with one month filled in between
    ([3.0] * 8 + [2.5, 2.5], 1000.0),     # a fifth of the months are not whole
])
def test_the_unit_the_log_models_read_sales_in(sales, unit):
    assert log_unit(sales) == unit


def test_the_same_amounts_in_another_unit_forecast_the_same_in_that_unit():
    # Wine sales in millions of litres (0.013 to 0.040 a month) and in thousands.
    millions = wineind().assign(sales=lambda f: f["sales"] / 1e6)
    thousands = wineind().assign(sales=lambda f: f["sales"] / 1e3)

    _, small = blend_forecast(millions)
    _, large = blend_forecast(thousands)
    # Read as given, log1p(0.03) is nearly 0.03: the log models turned additive and
    # forecast otherwise (a relative difference of several percent).
    np.testing.assert_allclose(small["sales"] * 1000, large["sales"], rtol=1e-9)

    origins = rolling_origins(millions, count=6, step=3, horizon=12)
    kinds = [*BLEND_MEMBERS, "airline", "seasonal-naive"]
    small = run_backtest(millions, kinds, origins)
    large = run_backtest(thousands, kinds, origins)
    for kind in kinds:
        np.testing.assert_allclose(small[kind] * 1000, large[kind], rtol=1e-9)


def test_a_gross_error_in_small_amounts_is_found_as_in_large_ones():
    sales = wineind()["sales"].to_numpy(dtype=np.float64) / 1e7  # about 0.0025
    truth = sales[-1]
    sales[-1] *= 10

    where, instead = gross_errors(sales, FIRST)

    assert where.tolist() == [len(sales) - 1]
    assert 0.5 * truth < instead[0] < 2 * truth


def test_training_states_the_unit_it_fitted_each_series_in(tmp_path, capsys):
    meta = trained_metadata(wineind().assign(sales=lambda f: f["sales"] / 1e6),
                            tmp_path)
    assert meta["series"][0]["unit_factor"] == 100_000.0
    assert ("units: 1 series of amounts with a typical month under 1,000 fitted in a "
            "unit a power of ten smaller") in capsys.readouterr().out


def test_releases_without_units_refuse_a_model_fitted_in_a_smaller_unit(
        monkeypatch):
    """A service of a release before `units_` existed loads a model without
    dividing the factor out: it answers a power of ten too much, or the forecast
    cap, for every month, with nothing to say it is wrong. Such a model names a
    class that release's allow-list unpickler does not have, so it is refused
    there; a model of counts (every factor 1) stays one that release serves."""
    amounts, asked = blend_forecast(wineind().assign(sales=lambda f: f["sales"] / 1e6))
    counts, _ = blend_forecast(wineind())
    files = {}
    for name, model in (("amounts", amounts), ("counts", counts)):
        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        files[name] = buffer.getvalue()

    loaded = load_model(io.BytesIO(files["amounts"]))
    np.testing.assert_array_equal(loaded.predict(asked[["date", "series"]]),
                                  asked["sales"])

    # The same files as such a release's unpickler reads them.
    monkeypatch.delattr("training.models.UnitFactors", raising=False)
    monkeypatch.setattr("training.unpickle.ALLOWED",
                        ALLOWED - {("training.models", "UnitFactors")})
    with pytest.raises(ForbiddenGlobal, match=r"training\.models\.UnitFactors"):
        load_model(io.BytesIO(files["amounts"]))
    assert load_model(io.BytesIO(files["counts"])).units_ == {"wine": 1.0}


def test_counts_keep_their_unit_when_a_gross_error_is_replaced(monkeypatch):
    # Bottles in hundreds, whole numbers: a stock-out month replaced by a fraction
    # must not turn them into amounts read in a unit ten times smaller.
    hundreds = wineind().assign(sales=lambda f: f["sales"] // 100)
    counts = with_sales(hundreds, {40: 0.0})

    model, _ = blend_forecast(counts)
    assert model.cleaned_ and model.units_ == {"wine": 1.0}

    origins = rolling_origins(counts, count=6, step=3, horizon=12)
    kinds = [*BLEND_MEMBERS, "seasonal-naive"]
    table = run_backtest(counts, kinds, origins)
    monkeypatch.setattr("training.backtest.log_unit", lambda sales: 1.0)
    as_given = run_backtest(counts, kinds, origins)
    for kind in kinds:
        np.testing.assert_array_equal(table[kind], as_given[kind])


def test_the_summary_shows_the_errors_of_small_amounts_to_their_digits(
        tmp_path, capsys):
    # Sales in millions of litres: errors of a few thousandths, not "0.0".
    meta = trained_metadata(wineind().assign(sales=lambda f: f["sales"] / 1e6),
                            tmp_path)
    scores = meta["evaluation"]["wine"]["scores"][meta["series"][0]["model"]]
    [line] = [ln for ln in capsys.readouterr().out.splitlines() if "(served)" in ln]
    rmse, mae = (float(word) for word in line.split()[-5:-3])
    assert rmse == pytest.approx(scores["rmse"], rel=1e-3)
    assert mae == pytest.approx(scores["mae"], rel=1e-3)


def test_the_summary_keeps_the_errors_of_huge_amounts_in_their_columns(
        tmp_path, capsys):
    # Sales in units of a thousandth of a cent, say: errors of hundreds of billions.
    meta = trained_metadata(wineind().assign(sales=lambda f: f["sales"] * 1e7),
                            tmp_path)
    scores = meta["evaluation"]["wine"]["scores"][meta["series"][0]["model"]]
    lines = capsys.readouterr().out.splitlines()
    [header] = [ln for ln in lines if ln.split()[:3] == ["series", "model", "RMSE"]]
    rows = [ln for ln in lines if ln.startswith("  wine ")]

    assert rows and all(len(row) == len(header) for row in rows), [header, *rows]
    served = next(row for row in rows if "(served)" in row)
    rmse, mae = (float(word) for word in served.split()[-5:-3])
    assert rmse == pytest.approx(scores["rmse"], rel=1e-3)
    assert mae == pytest.approx(scores["mae"], rel=1e-3)


def test_a_series_in_a_large_unit_is_capped_at_its_own_size():
    from sklearn.dummy import DummyRegressor

    millions = wineind().assign(sales=lambda f: f["sales"] / 1e6)  # at most 0.040
    runaway = DummyRegressor(strategy="constant", constant=1e9)
    model = SalesForecaster(models={"wine": runaway})
    model.fit(millions[["date", "series"]], millions["sales"].to_numpy())

    served = model.predict(future(millions, 12))

    # 100 times the largest month, as for any series; the cap used to be at least
    # 100 whatever the unit, 2,500 times this series' largest month.
    assert served.max() == pytest.approx(100 * millions["sales"].max())
