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
        assert all(math.isfinite(v) for r in rows for k, v in r.items() if k != "date")
