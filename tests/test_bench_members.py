"""bench/members.py: the design-cut diagnostics never score an evaluation month; and
bench/quality.py says which series it scores."""

import pytest

from bench import members, quality
from bench.members import MIN_CUT, forecasts, main
from bench.quality import load
from tests.conftest import WINEIND


def test_cuts_that_would_reach_the_evaluation_windows_are_refused(capsys):
    with pytest.raises(SystemExit) as stopped:
        main([str(WINEIND), "--before", "36", "12"])
    assert stopped.value.code == 2
    assert "--before 12 would score months the evaluation scores" in \
        capsys.readouterr().err


def test_without_files_or_the_shared_series_the_screen_says_where_it_looked(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(members, "SHARED", tmp_path / "no-shared-folder")

    with pytest.raises(SystemExit) as stopped:
        main([])

    assert stopped.value.code == 2
    assert capsys.readouterr().err.endswith(
        "the shared series wineind.csv, airpassengers.csv, txhousing_sales.csv are "
        f"not in {tmp_path / 'no-shared-folder'}; name the files to screen.\n")


def test_every_scored_month_precedes_the_evaluation_origins():
    frame = load(WINEIND)
    rows = forecasts(frame, MIN_CUT)
    last = frame["month"].max()
    # The evaluation's oldest origin is 24 months before the end; it scores after it.
    oldest_evaluation_origin = frame.loc[frame["month"] == last - 24, "date"].item()
    assert rows["date"].max() <= oldest_evaluation_origin
    assert len(rows) == 5 * 12
    assert (rows["blend"] > 0).all()


def test_the_quality_benchmark_says_when_the_shared_series_are_missing(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(quality, "SHARED", tmp_path / "no-shared-folder")

    assert quality.main(["--origins", "1"]) == 0

    out = capsys.readouterr().out
    assert out.startswith("Note: the shared series (wineind.csv, airpassengers.csv, "
                          "txhousing_sales.csv) are not in ")
    assert "scoring the bundled wineind.csv alone" in out
    assert "airpassengers" not in out.split("\n", 1)[1]


def test_the_quality_benchmark_says_nothing_of_the_shared_series_for_named_files(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(quality, "SHARED", tmp_path / "no-shared-folder")

    assert quality.main([str(WINEIND), "--origins", "1"]) == 0

    assert "Note:" not in capsys.readouterr().out

