"""bench/scale.py, piece by piece on tiny inputs: the synthetic file is the same on
every run and the loader takes it, and the memory, disk and version readers measure
what they say. No training here: the benchmark itself trains thousands of series."""

import csv
import os
import resource
import subprocess
import sys
from collections import defaultdict
from types import SimpleNamespace

import pytest

from bench import scale
from training import artifact
from training.data import load_sales
from training.selection import MIN_MONTHS


def months_by_series(path) -> dict[str, list[tuple[str, float]]]:
    found = defaultdict(list)
    with open(path, newline="") as lines:
        for row in csv.DictReader(lines):
            found[row["series"]].append((row["date"], float(row["sales"])))
    return found


def test_the_synthetic_file_is_the_same_bytes_on_every_run(tmp_path):
    scale.write_series(tmp_path / "a.csv", 60)
    scale.write_series(tmp_path / "b.csv", 60)
    scale.write_series(tmp_path / "c.csv", 60, seed=scale.SEED + 1)

    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()


def test_the_synthetic_series_have_the_documented_shape(tmp_path):
    scale.write_series(tmp_path / "s.csv", 400)
    series = months_by_series(tmp_path / "s.csv")
    lengths = [len(rows) for rows in series.values()]

    assert list(series) == [f"SKU-{i:05d}" for i in range(400)]
    assert all(8 <= n <= 30 or 48 <= n <= 120 for n in lengths)
    assert 0 < sum(n <= 30 for n in lengths) < 40
    assert 70 < sum(lengths) / len(lengths) < 95
    assert {rows[-1][0] for rows in series.values()} == {
        "2025-10", "2025-11", "2025-12"}
    intermittent = [rows for rows in series.values()
                    if sum(v == 0 for _, v in rows) > len(rows) / 4]
    assert 10 < len(intermittent) < 60
    assert all(rows[0][1] > 0 for rows in intermittent)


def test_training_loads_every_series_and_a_seasonal_minimum_the_long_ones(tmp_path):
    scale.write_series(tmp_path / "s.csv", 200)
    lengths = {name: len(rows)
               for name, rows in months_by_series(tmp_path / "s.csv").items()}

    as_training = load_sales(tmp_path / "s.csv", min_months=MIN_MONTHS)
    two_years = load_sales(tmp_path / "s.csv", min_months=36)

    assert set(as_training.frame["series"]) == set(lengths)
    assert not as_training.rejected
    assert set(two_years.frame["series"]) == {n for n, k in lengths.items() if k >= 48}
    assert set(two_years.rejected) == {n for n, k in lengths.items() if k <= 30}


def test_the_memory_reader_finds_the_children_and_their_pss(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        read = scale.memory(os.getpid())
    finally:
        child.kill()
        child.wait()

    assert read["master"] > 0
    assert len(read["workers"]) >= 1 and all(k > 0 for k in read["workers"])
    assert all(rss >= pss for rss, pss in zip(read["worker_rss"], read["workers"]))
    assert read["total"] == read["master"] + sum(read["workers"])


def test_each_child_reports_its_own_peak_not_the_largest_so_far(tmp_path):
    # A child's figure is at least this process's own peak (until exec its memory
    # is this one's), so the big child grows well past that.
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    grow = "b = bytearray({} * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"
    big = scale.run_child([sys.executable, "-c", grow.format(floor + 150)],
                          tmp_path / "log")
    small = scale.run_child([sys.executable, "-c", grow.format(1)], tmp_path / "log")

    assert big.returncode == small.returncode == 0
    assert big.max_rss_kib > (floor + 150) * 1024
    assert small.max_rss_kib < (floor + 50) * 1024


def test_the_sizes_are_those_of_the_served_version(tmp_path):
    for version, size in (("20300101T000000Z-00000001", 1000),
                          ("20300101T000001Z-00000002", 10)):
        folder = tmp_path / artifact.VERSIONS / version
        folder.mkdir(parents=True)
        (folder / artifact.METADATA_FILE).write_bytes(b"m" * size)
        (folder / artifact.MODEL_FILE).write_bytes(b"j" * 2 * size)
    (tmp_path / artifact.CURRENT).write_text("20300101T000000Z-00000001\n")

    assert scale.version_sizes(tmp_path) == {
        "total": 3000, artifact.METADATA_FILE: 1000, artifact.MODEL_FILE: 2000,
        "report.html": None}


def test_the_versions_served_are_those_a_worker_still_sets_to_one():
    exposition = "\n".join([
        "# HELP sales_forecast_model_info The model version served (value 1).",
        'sales_forecast_model_info{trained_at="t",version="20300101T000000Z-0a"} 0.0',
        'sales_forecast_model_info{trained_at="t",version="20300101T000001Z-0b"} 1.0',
        'sales_forecast_model_loaded 1.0',
    ])

    assert scale.parse_versions_served(exposition) == {"20300101T000001Z-0b"}


def test_the_table_has_a_column_per_count_and_a_line_per_figure():
    memory = {"master": 90_000, "workers": [60_000, 62_000],
              "worker_rss": [140_000, 141_000], "total": 212_000}
    result = {
        "count": 100, "accepted": 97, "months": 8_400,
        "train": SimpleNamespace(seconds=9.5, max_rss_kib=300_000),
        "disk": {"total": 3 << 20, artifact.METADATA_FILE: 2 << 20,
                 artifact.MODEL_FILE: 1 << 19, "report.html": None},
        "idle": memory, "model": (0.02, 2 << 20), "model_list": (0.004, 9000),
        "model_one": (0.003, 12000), "forecast": (0.002, 2100),
        "switch": {"train_seconds": 9.0, "switch_seconds": 4.2, "peak": 250_000,
                   "after": 215_000}}

    lines = scale.table([result, {**result, "count": 1000}]).splitlines()

    assert lines[0].split() == ["100", "series", "1000", "series"]
    assert len(lines) == 1 + len(scale.ROWS)
    assert lines[1].split()[-6:] == ["100", "/", "97", "1000", "/", "97"]
    assert "59-61 MB" in lines[10] and "  -" in lines[8]


@pytest.mark.parametrize("counts", [["0"], ["100", "-5"]], ids=["zero", "negative"])
def test_counts_of_series_must_be_positive(counts, capsys):
    with pytest.raises(SystemExit):
        scale.parse_args(["--series", *counts])

    assert "--series takes positive counts" in capsys.readouterr().err


def test_the_loads_counted_are_the_successful_ones_of_every_worker():
    exposition = "\n".join([
        'sales_forecast_model_loads_total{outcome="failure"} 3.0',
        'sales_forecast_model_loads_total{outcome="success"} 2.0',
        'sales_forecast_model_loads_created{outcome="success"} 1.8e+09',
    ])

    assert scale.loads_succeeded(exposition) == 2.0
    assert scale.loads_succeeded("sales_forecast_model_loaded 1.0") == 0.0
