"""A model of many series (a supplier's thousands of products): no step may cost
more per series as the series grow, and no answer may grow with all of them when
it is about one.

The files here are small; what is checked is how the work is done (how often a
whole table is scanned), which is what makes thousands of series slow."""

from types import SimpleNamespace

import numpy as np
import pandas as pd

from training import report


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
