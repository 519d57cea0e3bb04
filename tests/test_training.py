"""Features, metrics, the artifact's integrity and the training command."""

import errno
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT, WINEIND, train
from training import artifact, cli
from training.evaluate import holdout_scores, point_metrics, seasonal_scale
from training.features import CalendarFeatures
from training.models import SalesForecaster, SeasonalNaive


def months(start: str, count: int) -> pd.DataFrame:
    return pd.DataFrame({"date": pd.date_range(start, periods=count, freq="MS")})


def test_calendar_features_count_months_from_the_first_and_mark_the_month():
    features = CalendarFeatures().fit(months("2020-11-01", 3))

    out = features.transform(months("2020-11-01", 3))

    assert out[:, 0].tolist() == [0, 1, 2]
    assert out[0, 1:].tolist() == [0] * 9 + [1, 0]  # November
    assert out[2, 1:].tolist() == [0] * 11  # January is the reference month
    assert features.get_feature_names_out()[-1] == "month_12"


def test_calendar_features_without_season_is_the_plain_time_index():
    out = CalendarFeatures(season=False).fit(months("2020-01-01", 4)) \
        .transform(months("2021-01-01", 1))

    assert out.tolist() == [[12.0]]


def test_seasonal_naive_repeats_the_last_observed_year():
    history = months("2020-01-01", 24)
    y = np.arange(24, dtype=float)
    model = SeasonalNaive().fit(history, y)

    ahead = model.predict(months("2022-01-01", 25))
    inside = model.predict(months("2021-03-01", 1))

    assert ahead[:12].tolist() == list(range(12, 24))
    assert ahead[24] == 12  # two years ahead still maps onto the last year
    assert inside.tolist() == [2]  # twelve months before March 2021


def test_point_metrics_on_known_numbers():
    m = point_metrics([100, 200], [110, 180], scale=10)

    assert m["mae"] == 15
    assert m["rmse"] == pytest.approx(np.sqrt((100 + 400) / 2))
    assert m["mape"] == pytest.approx((0.1 + 0.1) / 2 * 100)
    assert m["mase"] == 1.5


def test_mape_is_undefined_not_infinite_when_an_actual_is_zero():
    m = point_metrics([0, 10], [1, 10], scale=1)

    assert m["mape"] is None
    assert m["mae"] == 0.5


def test_mase_is_undefined_for_an_exactly_periodic_history():
    assert seasonal_scale(np.tile(np.arange(12.0), 3)) is None
    assert seasonal_scale(np.arange(10.0)) is None


def test_holdout_scores_match_the_published_wineind_baselines():
    frame = pd.read_csv(WINEIND, parse_dates=["date"])

    scores = holdout_scores(frame, "seasonal")["scores"]

    # Published for this series on the last 12 months: 3028, 3114 and 5896.
    assert round(scores["seasonal"]["rmse"]) == 3028
    assert round(scores["seasonal-naive"]["rmse"]) == 3114
    assert round(scores["linear"]["rmse"]) == 5896


@pytest.mark.parametrize("kind", ["theta", "damped", "pooled-lag"])
def test_holdout_scores_take_the_kinds_fitted_on_a_whole_file(kind):
    frame = pd.read_csv(WINEIND, parse_dates=["date"])

    scores = holdout_scores(frame, kind)["scores"]

    assert 0 < scores[kind]["mase"] < 2 * scores["seasonal-naive"]["mase"]


def test_sales_forecaster_routes_rows_to_their_series_model():
    a, b = months("2020-01-01", 36), months("2020-01-01", 36)
    rows = pd.concat([a.assign(series="a"), b.assign(series="b")], ignore_index=True)
    y = np.r_[np.full(36, 10.0), np.full(36, 500.0)]
    model = SalesForecaster().fit(rows, y)

    query = pd.DataFrame({"date": pd.to_datetime(["2024-01-01", "2024-01-01"]),
                          "series": ["b", "a"]})

    assert model.predict(query) == pytest.approx([500.0, 10.0])
    with pytest.raises(ValueError, match="Unknown series 'c'; this model knows 2"):
        model.predict(query.assign(series="c"))


def test_with_json_a_refusal_is_json_on_stdout_too(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("date,sales\n2020-01-01,1\n2020-02-01,oops\n")

    assert train(bad, tmp_path / "models", "--json") == 2

    captured = capsys.readouterr()
    answer = json.loads(captured.out)
    assert answer["exit_code"] == 2
    assert "line 3" in answer["error"] and "'oops'" in answer["error"]
    assert captured.err == f"error: {answer['error']}\n"
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("extra, message", [
    (["--holdout", "0"], "--holdout must be between 1 and 60 months, got 0"),
    (["--encoding", "nope"], "argument --encoding: "),
    (["--model-dir", ""], "argument --model-dir: is empty"),
], ids=["holdout", "encoding", "model-dir"])
def test_with_json_a_usage_error_is_json_on_stdout_too(tmp_path, capsys, extra,
                                                       message):
    argv = ["--data", str(WINEIND), "--model-dir", str(tmp_path / "m"), *extra,
            "--jso"]  # argparse takes a prefix of an option for the option

    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)

    assert stopped.value.code == 2
    captured = capsys.readouterr()
    answer = json.loads(captured.out)
    assert answer["exit_code"] == 2 and message in answer["error"]
    assert f"error: {answer['error']}" in captured.err
    assert not (tmp_path / "m").exists()


def test_training_publishes_a_complete_verified_version(tmp_path, capsys):
    model_dir = tmp_path / "models"

    assert train(WINEIND, model_dir, "--json") == 0

    summary = json.loads(capsys.readouterr().out)
    version = artifact.read_current(model_dir)
    assert version == summary["version"]
    model, metadata = artifact.load_version(model_dir, version)
    assert metadata["data"]["rows"] == 176
    assert metadata["data"]["first"] == "1980-01"
    assert metadata["data"]["last"] == "1994-08"
    assert metadata["series"][0]["name"] == "wineind"
    assert set(metadata["libraries"]) >= {"scikit-learn", "pandas", "numpy", "joblib"}
    assert sorted(os.listdir(model_dir / "versions")) == [version]


def test_the_human_summary_shows_model_and_baselines(tmp_path, capsys):
    assert train(WINEIND, tmp_path / "models") == 0

    out = capsys.readouterr().out
    assert "Published model" in out
    assert "seasonal-naive" in out and "linear" in out


# The report's font has no CJK glyphs; it draws boxes and matplotlib warns.
@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")
@pytest.mark.parametrize("name", ["\u6771\u4eac\u90fd\u306e\u58f2\u4e0a",  # wide
                                  "Cafe\u0301 de Flore"],  # a combining accent
                         ids=["wide", "combining"])
def test_the_summary_keeps_its_columns_in_line_for_any_series_name(tmp_path, capsys,
                                                                   name):
    import unicodedata

    def cells(text):
        return sum(0 if unicodedata.combining(c)
                   else 2 if unicodedata.east_asian_width(c) in "WF" else 1
                   for c in text)

    assert train(WINEIND, tmp_path / "models", "--series-name", name) == 0

    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("series"))
    rows = [line for line in lines if "seasonal-naive" in line and "RMSE" not in line]
    assert rows and all(cells(row) == cells(header) for row in rows)


def test_the_summary_cuts_a_long_wide_name_to_its_column():
    from training.versions import in_column

    # Not half a cell: the end has room for one wide character of two cells.
    assert in_column("\u6771\u4eac\u90fd", 5) == "...\u90fd"
    assert in_column("\u6771\u4eac\u90fd", 2) == "\u6771"
    assert in_column("abc", 5) == "abc  "
    assert in_column("e\u0301", 1) == "e\u0301"


def test_the_summary_marks_a_cut_name_and_keeps_where_long_names_differ(
        tmp_path, capsys):
    shared = "Store 0001 - Beverages - Sparkling water - "
    lines = ["date,sales,series"]
    for name in (shared + "north", shared + "south"):
        lines += [f"{2018 + m // 12}-{m % 12 + 1:02d},{100 + m % 12 * 5},{name}"
                  for m in range(48)]
    (tmp_path / "shops.csv").write_text("\n".join(lines) + "\n")

    assert train(tmp_path / "shops.csv", tmp_path / "models") == 0

    rows = [line for line in capsys.readouterr().out.splitlines()
            if "(served)" in line]
    names = sorted(row[2:26] for row in rows)
    assert names == ["Store 0001 ...er - north", "Store 0001 ...er - south"]


def test_a_mark_whose_letter_was_cut_off_is_not_shown_alone():
    from training.versions import in_column

    # "e" with an accent, then "f": the end keeps one cell, "f", not the accent.
    assert in_column("abcdefghije\u0301f", 5) == "a...f"
    assert in_column("abcdefghije\u0301f", 8) == "abc...e\u0301f"


@pytest.mark.parametrize("name, cells", [
    ("\u0e2a\u0e31\u0e19", 2),  # Thai: a vowel sign above the first letter
    ("\u0915\u0941", 1),  # Devanagari KA with the vowel sign U below
    ("\u0645\u200c\u06cc", 2),  # Persian letters kept apart by a zero-width non-joiner
])
def test_marks_without_a_combining_class_take_no_cell(name, cells):
    from training.versions import in_column

    assert in_column(name, 4) == name + " " * (4 - cells)


def test_a_series_name_the_locale_cannot_print_still_gives_a_summary(
        tmp_path, monkeypatch):
    latin1 = io.TextIOWrapper(io.BytesIO(), encoding="latin-1")
    monkeypatch.setattr(sys, "stdout", latin1)

    athens = "\u0391\u03b8\u03ae\u03bd\u03b1"  # outside Latin-1, in the report's font
    assert train(WINEIND, tmp_path / "models", "--series-name", athens) == 0

    latin1.flush()
    out = latin1.buffer.getvalue().decode("latin-1")
    assert "Published model" in out
    assert "\\u0391\\u03b8\\u03ae\\u03bd\\u03b1" in out


def test_a_file_name_in_another_encoding_than_the_system_s_still_trains(tmp_path):
    data = tmp_path / os.fsdecode(b"Ums\xe4tze.csv")  # Latin-1, on a UTF-8 system
    shutil.copy(WINEIND, data)

    assert train(data, tmp_path / "models") == 0

    version = artifact.read_current(tmp_path / "models")
    _, metadata = artifact.load_version(tmp_path / "models", version)
    assert metadata["data"]["source"] == "Ums\ufffdtze.csv"
    assert metadata["series"][0]["name"] == "Ums\ufffdtze"


@pytest.mark.parametrize("umask", [0o077, 0o000], ids=["private", "open"])
def test_the_store_has_the_same_modes_whatever_the_umask(tmp_path, umask):
    model_dir = tmp_path / "new" / "models"
    previous = os.umask(umask)
    try:
        assert train(WINEIND, model_dir) == 0
    finally:
        os.umask(previous)

    folders = [tmp_path / "new", model_dir, model_dir / "versions",
               *(model_dir / "versions").iterdir()]
    files = [model_dir / "CURRENT", *(model_dir / "versions").glob("*/*")]
    assert {oct(path.stat().st_mode & 0o777) for path in folders} == {"0o755"}
    assert {oct(path.stat().st_mode & 0o777) for path in files} == {"0o644"}


def test_a_refused_file_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("date,sales\n2020-01-01,abc\n")
    model_dir = tmp_path / "models"

    assert train(bad, model_dir) == 2

    assert "bad.csv" in capsys.readouterr().err
    assert not model_dir.exists() or not any(model_dir.rglob("*"))


def test_an_empty_model_dir_is_a_usage_error_not_the_current_directory(tmp_path,
                                                                       capsys):
    with pytest.raises(SystemExit) as stopped:
        train(WINEIND, "")

    assert stopped.value.code == 2
    assert "--model-dir: is empty" in capsys.readouterr().err


def test_a_missing_file_is_a_clear_error(tmp_path, capsys):
    assert train(tmp_path / "nope.csv", tmp_path / "models") == 2

    assert "no such file" in capsys.readouterr().err


def test_an_address_of_another_scheme_is_told_what_can_be_downloaded(tmp_path, capsys):
    assert train("ftp://files.invalid/sales.csv", tmp_path / "models") == 2

    assert ("only http:// and https:// addresses can be downloaded, not ftp://"
            in capsys.readouterr().err)
    assert not (tmp_path / "models").exists()


def test_a_changed_model_file_is_refused(store_copy):
    version = artifact.read_current(store_copy)
    (store_copy / "versions" / version / "model.joblib").write_bytes(b"not a model")

    with pytest.raises(artifact.ArtifactError, match="does not match its metadata"):
        artifact.load_version(store_copy, version)


@pytest.mark.parametrize("pointer", ["../../etc", "/etc/passwd", "", "x" * 500],
                         ids=["relative escape", "absolute path", "empty", "junk"])
def test_a_pointer_that_is_not_a_version_id_is_refused(store_copy, pointer):
    (store_copy / "CURRENT").write_text(pointer)

    with pytest.raises(artifact.ArtifactError, match="not a version id"):
        artifact.read_current(store_copy)


def test_a_failed_write_leaves_no_partial_version(tmp_path):
    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        artifact.write_version(tmp_path, "20260101T000000Z-00000000", Unpicklable(), {})

    assert list((tmp_path / "versions").iterdir()) == []
    assert artifact.read_current(tmp_path) is None


# The model directory ---------------------------------------------------------------

def refuse_to_train(args, loaded=None):
    raise AssertionError("training started before the model directory was checked")


def a_file(tmp: Path):
    (tmp / "afile").touch()
    return tmp / "afile", f"--model-dir {tmp / 'afile'} exists and is not a directory"


def under_a_file(tmp: Path):
    (tmp / "afile").touch()
    return tmp / "afile" / "models", \
        f"cannot be created: {tmp / 'afile'} exists and is not a directory"


def a_dangling_link(tmp: Path):
    (tmp / "models").symlink_to(tmp / "gone")
    return tmp / "models", f"is a symbolic link to {str(tmp / 'gone')!r}, which does"


def current_is_a_directory(tmp: Path):
    (tmp / "models" / "CURRENT").mkdir(parents=True)
    return tmp / "models", f"{tmp / 'models' / 'CURRENT'} is a directory, so"


def published_is_a_directory(tmp: Path):
    (tmp / "models" / "PUBLISHED").mkdir(parents=True)
    return tmp / "models", f"{tmp / 'models' / 'PUBLISHED'} is a directory, so"


def versions_is_a_file(tmp: Path):
    (tmp / "models").mkdir()
    (tmp / "models" / "versions").touch()
    return tmp / "models", f"{tmp / 'models' / 'versions'} is not a directory, so"


def the_lock_is_a_link(tmp: Path):
    # Opened for writing through the link, the lock would truncate its target.
    (tmp / "models").mkdir()
    (tmp / "victim.txt").write_text("important")
    (tmp / "models" / ".publish.lock").symlink_to(tmp / "victim.txt")
    return tmp / "models", ".publish.lock is a symbolic link, so"


def the_lock_is_a_folder(tmp: Path):
    (tmp / "models" / ".publish.lock").mkdir(parents=True)
    return tmp / "models", ".publish.lock is not a file, so"


@pytest.mark.parametrize("layout", [a_file, under_a_file, a_dangling_link,
                                    current_is_a_directory, published_is_a_directory,
                                    versions_is_a_file,
                                    the_lock_is_a_link, the_lock_is_a_folder],
                         ids=lambda layout: layout.__name__.replace("_", " "))
def test_a_model_dir_publishing_would_fail_on_is_refused_before_training(
        tmp_path, capsys, monkeypatch, layout):
    model_dir, message = layout(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    monkeypatch.setattr(cli, "train", refuse_to_train)

    assert train(WINEIND, model_dir) == 2

    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert sorted(tmp_path.rglob("*")) == before
    if (tmp_path / "victim.txt").exists():
        assert (tmp_path / "victim.txt").read_text() == "important"


def test_a_lock_planted_after_the_checks_is_never_followed(tmp_path):
    """held_lock itself refuses a link or a folder, so a lock planted while training
    ran truncates nothing either."""
    (tmp_path / "victim.txt").write_text("important")
    (tmp_path / "link.lock").symlink_to(tmp_path / "victim.txt")
    (tmp_path / "folder.lock").mkdir()

    for name in ("link.lock", "folder.lock"):
        with pytest.raises(artifact.ArtifactError, match="cannot serve as a lock"):
            with artifact.held_lock(tmp_path / name):
                pass

    assert (tmp_path / "victim.txt").read_text() == "important"


def test_a_store_that_cannot_be_written_leaves_nothing_behind(tmp_path, capsys,
                                                              monkeypatch):
    """The disk fills up as CURRENT is switched: one error line, exit 4, no version
    left whose metadata says it was promoted, CURRENT unchanged."""
    model_dir = tmp_path / "models"
    assert train(WINEIND, model_dir) == 0
    served = artifact.read_current(model_dir)
    capsys.readouterr()

    def disk_full(directory, version):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(artifact, "set_current", disk_full)

    assert train(WINEIND, model_dir, "--force") == 4

    err = capsys.readouterr().err
    assert err == (f"error: the model store {model_dir} could not be written: No "
                   "space left on device. Nothing was published; CURRENT is "
                   "unchanged.\n")
    assert [p.name for p in (model_dir / "versions").iterdir()] == [served]
    assert artifact.read_current(model_dir) == served


def fsync_failing(folder: Path, call: int = 1):
    """artifact._fsync_dir as it is, except that its `call`-th call on `folder`
    raises an I/O error: the rename before it is done, its durability not."""
    real, calls = artifact._fsync_dir, []

    def fsync_dir(path):
        if Path(path) == folder:
            calls.append(path)
            if len(calls) == call:
                raise OSError(errno.EIO, "Input/output error")
        real(path)
    return fsync_dir


def test_a_version_whose_folder_cannot_be_synced_is_not_left_behind(
        tmp_path, capsys, monkeypatch):
    """The rename is done when the fsync of versions/ fails: the run says nothing
    was published, so the version does not stay looking complete and promoted."""
    model_dir = tmp_path / "models"
    assert train(WINEIND, model_dir) == 0
    served = artifact.read_current(model_dir)
    monkeypatch.setattr(artifact, "_fsync_dir",
                        fsync_failing(model_dir / artifact.VERSIONS))

    assert train(WINEIND, model_dir, "--force") == 4

    assert "Nothing was published; CURRENT is unchanged." in capsys.readouterr().err
    assert [p.name for p in (model_dir / "versions").iterdir()] == [served]


def test_a_switch_that_cannot_be_synced_is_not_called_unpublished(
        tmp_path, capsys, monkeypatch):
    """CURRENT was replaced and only its folder's fsync failed: services follow it,
    and the message says so instead of 'CURRENT is unchanged'."""
    model_dir = tmp_path / "models"
    assert train(WINEIND, model_dir) == 0
    capsys.readouterr()
    # The first fsync of the store follows PUBLISHED, the second CURRENT.
    monkeypatch.setattr(artifact, "_fsync_dir", fsync_failing(model_dir, call=2))

    assert train(WINEIND, model_dir, "--force") == 4

    version = artifact.read_current(model_dir)
    assert capsys.readouterr().err == (
        f"error: the model store {model_dir} failed after CURRENT was switched to "
        f"{version}: Input/output error. The version is published and services "
        "switch to it, but the switch may not survive a crash of the machine; "
        "check the disk.\n")
    assert (model_dir / artifact.VERSIONS / version / artifact.METADATA_FILE).is_file()


def test_a_record_that_cannot_be_written_leaves_current_unchanged(tmp_path, capsys,
                                                                 monkeypatch):
    """When PUBLISHED cannot be written (here a folder put in its place while the
    run trained, past the checks made before training), CURRENT is left as it was,
    as exit 4 says."""
    model_dir = tmp_path / "models"
    assert train(WINEIND, model_dir) == 0
    served = artifact.read_current(model_dir)
    capsys.readouterr()

    def train_then_plant(args, *rest):
        trained = real_train(args, *rest)
        (model_dir / artifact.PUBLISHED).unlink()
        (model_dir / artifact.PUBLISHED).mkdir()
        return trained

    real_train = cli.train
    monkeypatch.setattr(cli, "train", train_then_plant)

    assert train(WINEIND, model_dir, "--force") == 4

    assert "Nothing was published; CURRENT is unchanged." in capsys.readouterr().err
    assert artifact.read_current(model_dir) == served
    assert [p.name for p in (model_dir / "versions").iterdir()] == [served]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a file system needs root")
def test_a_model_dir_on_a_read_only_file_system_is_named_as_such(tmp_path, capsys):
    mount = tmp_path / "ro"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)],
                   check=True)
    try:
        assert train(WINEIND, mount / "models") == 2
    finally:
        subprocess.run(["umount", str(mount)], check=True)

    err = capsys.readouterr().err
    assert f"cannot be written: {mount} is on a read-only file system" in err


def test_a_model_dir_where_nothing_can_be_created_is_refused_before_training(capsys):
    # /proc passes every permission check for root, yet no folder can be made there.
    assert train(WINEIND, Path("/proc/sales-forecast-models")) == 2

    err = capsys.readouterr().err
    assert "--model-dir /proc/sales-forecast-models cannot be written: creating a " \
        "folder in /proc failed" in err
    assert "backtest" not in err


def statvfs_with(blocks: int, files: int):
    """os.statvfs as it is, except that `blocks` blocks and `files` files are
    free."""
    real = os.statvfs

    def statvfs(path):
        st = real(path)
        return os.statvfs_result((st.f_bsize, st.f_frsize, st.f_blocks, blocks,
                                  blocks, 1000, files, files, st.f_flag,
                                  st.f_namemax))
    return statvfs


@pytest.mark.parametrize("blocks, files, what", [
    (0, 1000, "no space left"), (1000, 0, "no file (inode) left")],
    ids=["no block left", "no inode left"])
def test_a_full_file_system_is_refused_before_training_as_a_store_failure(
        tmp_path, capsys, monkeypatch, blocks, files, what):
    """A full disk is no bad input: exit 4, as when it fills up while publishing,
    said before training spends its minutes, with the way to free space."""
    monkeypatch.setattr(cli, "train", refuse_to_train)
    monkeypatch.setattr(os, "statvfs", statvfs_with(blocks, files))

    assert train(WINEIND, tmp_path / "models", "--json") == 4

    captured = capsys.readouterr()
    assert captured.err == (
        f"error: the model store {tmp_path / 'models'} cannot take a new version: "
        f"the file system holding {tmp_path} is full ({what}). Nothing was "
        "trained or published; CURRENT is unchanged. Free some space (`python -m "
        f"training.versions prune --model-dir {tmp_path / 'models'} --keep N` "
        "removes old versions) and run again.\n")
    assert json.loads(captured.out)["exit_code"] == 4
    assert not (tmp_path / "models").exists()


def test_a_folder_the_full_disk_refuses_is_a_store_failure_not_bad_input(
        tmp_path, capsys, monkeypatch):
    """Where the free counts do not tell (a quota, a file system that counts no
    files), the probe's ENOSPC does."""
    def no_space(prefix, dir):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(cli, "train", refuse_to_train)
    monkeypatch.setattr(cli.tempfile, "mkdtemp", no_space)

    assert train(WINEIND, tmp_path / "models") == 4

    err = capsys.readouterr().err
    assert f"the file system holding {tmp_path} is full (No space left on " \
        "device)" in err
    assert "writable file system" not in err


def test_what_a_killed_run_left_is_removed_before_the_disk_is_judged_full(
        tmp_path, capsys, monkeypatch):
    """A run killed while writing left a staging folder; on a disk it filled, the
    next run removes it, as publishing would, instead of refusing."""
    model_dir = tmp_path / "models"
    assert train(WINEIND, model_dir) == 0
    served = artifact.read_current(model_dir)
    stale = model_dir / artifact.VERSIONS / ".incoming-20260101T000000Z-00000000-x"
    stale.mkdir()
    real = os.statvfs

    def full_while_stale(path):
        st = real(path)
        free = 1000 * (not stale.exists())
        return os.statvfs_result((*st[:3], free, free, *st[5:]))
    monkeypatch.setattr(os, "statvfs", full_while_stale)

    assert train(WINEIND, model_dir, "--force") == 0

    assert not stale.exists()
    assert artifact.read_current(model_dir) != served


def test_a_model_dir_this_user_cannot_write_is_refused_before_training():
    # Root may write anywhere, so as root the command runs as the unprivileged
    # user nobody; the directory is outside pytest's tmp_path, which only its
    # owner may enter.
    as_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] \
        if os.geteuid() == 0 else []
    readonly = Path(tempfile.mkdtemp(prefix="sales-forecast-readonly-"))
    try:
        os.chmod(readonly, 0o555)
        result = subprocess.run(
            [*as_user, sys.executable, "-m", "training", "--data", str(WINEIND),
             "--model-dir", str(readonly / "models")],
            cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        os.chmod(readonly, 0o755)
        shutil.rmtree(readonly)

    assert result.returncode == 2, result.stderr
    assert f"cannot be written: {readonly} is not writable by this user" \
        in result.stderr
    assert "Traceback" not in result.stderr


# A damaged CURRENT -----------------------------------------------------------------

@pytest.mark.parametrize("pointer, extra", [("../../etc", []), ("v1", []), ("", []),
                                            ("v1", ["--force"])],
                         ids=["relative escape", "not a version id", "empty",
                              "forced"])
def test_retraining_replaces_a_current_that_holds_no_version_id(
        store_copy, capsys, pointer, extra):
    from service.app import create_app
    from service.config import Settings

    old = artifact.read_current(store_copy)
    (store_copy / "CURRENT").write_text(pointer + "\n")
    app = create_app(Settings(model_dir=store_copy), watch=False)
    # The service does not follow such a pointer: with no model yet, it serves the
    # newest promoted version instead (service.model_store.ModelStore._fall_back).
    store = app.extensions["model_store"]
    assert store.serving().version == old
    assert "not a version id" in store._reported
    capsys.readouterr()

    assert train(WINEIND, store_copy, *extra) == 0

    err = capsys.readouterr().err
    assert err.startswith(f"warning: CURRENT in {store_copy} holds {pointer!r}, "
                          "which is not a version id")
    new = artifact.read_current(store_copy)
    assert new != old and f"CURRENT now names {new}" in err
    assert "Traceback" not in err
    promotion = artifact.read_metadata(store_copy, new)["promotion"]
    assert promotion["promoted"] is True
    assert promotion["compared_with"]["served_version"] is None
    assert repr(pointer) in promotion["compared_with"]["bad_pointer"]


def test_a_long_backtest_says_how_far_it_got(tmp_path, capsys, monkeypatch):
    from training import backtest

    monkeypatch.setattr(backtest, "PROGRESS_AFTER", -1.0)  # every run is "long"

    assert train(WINEIND, tmp_path / "models") == 0

    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("backtest: ")]
    assert "report: drawing it (1 series in the table, at most 12 plotted)" in err
    assert lines[0].startswith("backtest: 0 of 6 cut-offs done in ")
    assert lines[-2].startswith("backtest: 5 of 6 cut-offs done in ")
    assert lines[-2].endswith("(1 series)")
    # What follows the backtest is said too, so a long run is never silent for long.
    assert lines[-1].startswith("backtest: done in ")
    assert lines[-1].endswith("fitting the chosen models on every month and "
                              "calibrating the intervals (1 series)")
