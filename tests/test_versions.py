"""`python -m training.versions`: list, publish (roll back) and prune a model store."""

import errno
import fcntl
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from service.model_store import ModelStore
from tests.conftest import WINEIND, train
from training import artifact, cli
from training.versions import main, versions_in


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory) -> Path:
    """A store whose first version was replaced by a second one."""
    model_dir = tmp_path_factory.mktemp("versions") / "models"
    assert train(WINEIND, model_dir) == 0
    assert train(WINEIND, model_dir, "--model", "seasonal-naive", "--force") == 0
    return model_dir


@pytest.fixture
def store(two_versions, tmp_path) -> Path:
    return Path(shutil.copytree(two_versions, tmp_path / "models"))


@pytest.fixture
def settled(monkeypatch):
    """Every publication as if minutes old: workers have switched, so no version
    counts as served moments ago (`artifact.recently_left`) and the record is
    compacted whole."""
    monkeypatch.setattr(artifact, "RECENT_SECONDS", 0)


def ids(model_dir: Path) -> list[str]:
    return sorted(p.name for p in (model_dir / artifact.VERSIONS).iterdir())


def test_version_ids_sort_in_the_order_they_were_made_within_one_second():
    # Training takes under a second on a fast machine; `prune` keeps the newest by
    # id order, so a random suffix alone would keep a random one of the same second.
    start = datetime(2026, 12, 5, 15, 58, 1, tzinfo=timezone.utc)
    instants = [start + timedelta(microseconds=us)
                for us in (0, 16, 1_000, 250_000, 999_999)]
    made = [artifact.new_version_id(t) for t in instants]

    assert sorted(made) == made
    assert all(artifact.VERSION_PATTERN.match(v) for v in made)


def test_list_shows_every_version_and_which_is_served(store, capsys):
    first, second = ids(store)

    assert main(["list", "--model-dir", str(store), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)

    assert [(r["version"], r["current"]) for r in rows] == [(first, False),
                                                             (second, True)]
    assert rows[0]["data"] == "wineind.csv" and rows[0]["series"] == 1
    assert rows[0]["mase"] < rows[0]["seasonal_naive_mase"]
    assert rows[1]["mase"] == pytest.approx(rows[1]["seasonal_naive_mase"])


def test_list_prints_a_file_name_the_locale_cannot_spell(tmp_path, monkeypatch):
    sales = "\u03c0\u03c9\u03bb\u03ae\u03c3\u03b5\u03b9\u03c2"  # outside Latin-1, in the font
    data = tmp_path / f"{sales}.csv"
    shutil.copy(WINEIND, data)
    assert train(data, tmp_path / "models") == 0
    latin1 = io.TextIOWrapper(io.BytesIO(), encoding="latin-1")
    monkeypatch.setattr(sys, "stdout", latin1)

    assert main(["list", "--model-dir", str(tmp_path / "models")]) == 0

    latin1.flush()
    escaped = sales.encode("ascii", "backslashreplace").decode()
    assert f"{escaped}.csv" in latin1.buffer.getvalue().decode("latin-1")


def test_publish_rolls_back_and_a_running_service_follows(store, capsys):
    first, second = ids(store)
    service = ModelStore(store)
    service.refresh()
    assert service.serving().version == second

    assert main(["publish", "--model-dir", str(store), first]) == 0
    service.refresh()

    assert artifact.read_current(store) == first
    assert service.serving().version == first
    assert f"names {first} (before: {second})" in capsys.readouterr().out


def test_publishing_the_served_version_again_changes_nothing(store, capsys):
    _, second = ids(store)
    record = (store / artifact.PUBLISHED).read_bytes()

    assert main(["publish", "--model-dir", str(store), second]) == 0

    assert capsys.readouterr().out == (f"{artifact.CURRENT} already names {second}; "
                                       "nothing changed.\n")
    assert (store / artifact.PUBLISHED).read_bytes() == record


@pytest.mark.parametrize("damage, message", [
    ("metadata", "names version"),
    ("model", "does not match its metadata"),
])
def test_a_damaged_version_is_not_published(store, capsys, damage, message):
    first, second = ids(store)
    folder = store / artifact.VERSIONS / first
    if damage == "metadata":
        metadata = json.loads((folder / artifact.METADATA_FILE).read_text())
        metadata["version"] = second
        (folder / artifact.METADATA_FILE).write_text(json.dumps(metadata))
    else:
        with open(folder / artifact.MODEL_FILE, "ab") as model:
            model.write(b"tampered")

    assert main(["publish", "--model-dir", str(store), first]) == 2

    assert message in capsys.readouterr().err
    assert artifact.read_current(store) == second


@pytest.mark.parametrize("version, message", [
    ("../../etc", "is not a version id"),
    ("20261205T062645Z-d1a2a24e", "There is no version 20261205T062645Z-d1a2a24e"),
])
def test_publishing_what_is_not_in_the_store_is_refused(store, capsys, version,
                                                        message):
    assert main(["publish", "--model-dir", str(store), version]) == 2
    assert message in capsys.readouterr().err


def test_prune_keeps_the_newest_the_served_and_the_one_published_before(
        store, capsys, settled):
    first, second = ids(store)
    assert train(WINEIND, store, "--force") == 0
    third = ids(store)[-1]

    # A rollback from third to first: first is served, and nothing is where a
    # worker would go back to (third and second were rolled back from).
    assert main(["publish", "--model-dir", str(store), first]) == 0
    assert main(["prune", "--model-dir", str(store), "--keep", "1"]) == 0
    assert ids(store) == [first, third]  # third is the newest
    assert capsys.readouterr().out.endswith(
        f"removed 1 version(s): {second}; kept {first} (served) and the 1 newest\n")

    assert main(["publish", "--model-dir", str(store), third]) == 0
    assert main(["prune", "--model-dir", str(store), "--keep", "1"]) == 0
    assert ids(store) == [first, third]  # first is where a worker would go back to
    assert capsys.readouterr().out.endswith(
        f"removed 0 version(s); kept {third} (served), {first} (published before "
        "it, where workers go back to if the served one is damaged) and the 1 "
        "newest\n")


def test_prune_is_refused_when_the_served_version_is_unknown(store, capsys):
    (store / artifact.CURRENT).write_text("garbage\n")

    assert main(["prune", "--model-dir", str(store), "--keep", "1"]) == 2

    assert "is not a version id" in capsys.readouterr().err
    assert len(ids(store)) == 2


def test_prune_is_refused_while_the_served_version_does_not_load(store, capsys):
    """Workers then serve an earlier version, which prune must not take away."""
    _, second = ids(store)
    with open(store / artifact.VERSIONS / second / artifact.MODEL_FILE, "ab") as model:
        model.write(b"damaged")

    assert main(["prune", "--model-dir", str(store), "--keep", "1"]) == 2

    err = capsys.readouterr().err
    assert f"CURRENT names {second}, which a service refuses" in err
    assert "does not match its metadata" in err and "nothing was removed" in err
    assert len(ids(store)) == 2

    (store / artifact.CURRENT).unlink()
    assert main(["prune", "--model-dir", str(store), "--keep", "1"]) == 2
    assert "Nothing is published" in capsys.readouterr().err
    assert len(ids(store)) == 2


def test_publish_refuses_what_a_service_worker_would_refuse(store, capsys):
    """The hash covers the model file only; a metadata that names a series the
    model does not know passes it, and fails the worker's own check."""
    first, second = ids(store)
    path = store / artifact.VERSIONS / first / artifact.METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata["series"][0]["name"] = "ghost"
    path.write_text(json.dumps(metadata))

    assert main(["publish", "--model-dir", str(store), first]) == 2

    err = capsys.readouterr().err
    assert f"Version {first} cannot be served: Unknown series 'ghost'" in err
    assert artifact.read_current(store) == second


def test_a_model_dir_that_is_not_a_store_is_refused(tmp_path, capsys):
    assert main(["list", "--model-dir", str(tmp_path / "missing")]) == 2
    assert "is not a model store folder" in capsys.readouterr().err
    assert main(["prune", "--model-dir", str(tmp_path), "--keep", "0"]) == 2
    assert "--keep must be at least 1" in capsys.readouterr().err


def test_a_reader_that_stops_reading_is_no_store_error(store):
    # `versions list --json | head -c 10`: the pipe closes before the list is out.
    child = subprocess.Popen(
        [sys.executable, "-m", "training.versions", "list", "--json", "--model-dir",
         str(store)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[1])
    child.stdout.close()  # long before the child has imported anything

    err = child.communicate(timeout=60)[1].decode()

    assert child.returncode == 128 + signal.SIGPIPE
    assert err == ""


def test_a_read_only_store_is_listed_and_refused_changes_clearly(store, capsys,
                                                                 monkeypatch):
    # The chart's server pods mount the store read-only; the lock file cannot open.
    def read_only(model_dir):
        raise OSError(30, "Read-only file system", str(model_dir / ".publish.lock"))
    monkeypatch.setattr(artifact, "publish_lock", read_only)
    first, _ = ids(store)

    assert main(["list", "--model-dir", str(store)]) == 0
    assert main(["publish", "--model-dir", str(store), first]) == 2

    err = capsys.readouterr().err
    assert f"cannot change the model store {store}: Read-only file system" in err


@pytest.mark.parametrize("error, message", [
    (OSError(errno.EROFS, "Read-only file system"),
     "{store} is on a read-only file system"),
    (OSError(errno.ENOSPC, "No space left on device"),
     "{lock} cannot be created: the file system holding {store} is full (No space "
     "left on device).")], ids=["read-only", "full"])
def test_a_lock_the_file_system_refuses_is_named_for_what_it_is(store, capsys,
                                                               monkeypatch, error,
                                                               message):
    real_open = os.open

    def refused(path, flags, *args):
        if str(path).endswith(artifact.PUBLISH_LOCK):
            raise OSError(error.errno, error.strerror, str(path))
        return real_open(path, flags, *args)
    monkeypatch.setattr(artifact.os, "open", refused)
    first, _ = ids(store)

    assert main(["publish", "--model-dir", str(store), first]) == 2

    err = capsys.readouterr().err
    assert message.format(store=store, lock=store / artifact.PUBLISH_LOCK) in err
    assert "Move it out of the way" not in err


def test_list_warns_when_current_names_a_version_a_service_refuses(store, capsys):
    _, second = ids(store)
    with open(store / artifact.VERSIONS / second / artifact.MODEL_FILE, "ab") as model:
        model.write(b"damaged")

    assert main(["list", "--model-dir", str(store)]) == 0

    err = capsys.readouterr().err
    assert err.startswith(f"warning: CURRENT names {second}, which a service refuses")
    assert "serve the version published before it" in err

    (store / artifact.CURRENT).write_text("hello\nworld\n")
    assert main(["list", "--model-dir", str(store)]) == 0
    err = capsys.readouterr().err
    assert "which is not a version id" in err
    assert "serve the version published last that loads" in err


def test_publish_names_the_series_clients_lose(store, tmp_path, capsys):
    first, _ = ids(store)
    other = tmp_path / "other.csv"
    other.write_text(WINEIND.read_text())
    assert train(other, store, "--force") == 0  # its one series is named "other"
    capsys.readouterr()

    assert main(["publish", "--model-dir", str(store), first]) == 0

    err = capsys.readouterr().err
    assert "does not have 1 series" in err and "404: 'other'" in err


def test_prune_leaves_an_incomplete_version_folder_alone(store, capsys, settled):
    """A folder with a version's name and no metadata is not a version: it takes
    no place among the newest, and is not removed either."""
    for _ in range(2):
        assert train(WINEIND, store, "--force") == 0
    v1, v2, v3, v4 = ids(store)
    planted = store / artifact.VERSIONS / "20990101T000000Z-deadbeef"
    planted.mkdir()

    assert main(["prune", "--model-dir", str(store), "--keep", "3"]) == 0

    assert ids(store) == [v2, v3, v4, planted.name]


def test_prune_removes_what_a_killed_run_left_half_written(store):
    stale = store / artifact.VERSIONS / ".incoming-20260101T000000Z-00000000-x"
    stale.mkdir()
    (stale / artifact.MODEL_FILE).write_bytes(b"half")
    (store / ".CURRENT-x").write_text("half")

    assert main(["prune", "--model-dir", str(store), "--keep", "5"]) == 0

    assert not stale.exists() and not (store / ".CURRENT-x").exists()
    assert len(ids(store)) == 2


def test_training_with_keep_holds_the_store_at_that_size(store, capsys, settled):
    """Retrained on a schedule with --keep, the store stops growing; the served
    version and the one published before it are always among those kept."""
    first, second = ids(store)
    assert main(["publish", "--model-dir", str(store), first]) == 0

    assert train(WINEIND, store, "--force", "--keep", "2") == 0
    third = ids(store)[-1]
    assert ids(store) == [first, second, third]  # first: published before third
    for _ in range(3):
        assert train(WINEIND, store, "--force", "--keep", "2") == 0
        assert len(ids(store)) == 2
        assert artifact.read_current(store) == ids(store)[-1]

    err = capsys.readouterr().err
    assert f"--keep 2: removed 2 older version(s) from {store}: {first}, " \
        f"{second}\n" in err


def test_keep_removes_nothing_when_the_store_cannot_be_changed(store, capsys,
                                                              monkeypatch):
    """The version is published; a store that refuses the removal (here remounted
    read-only meanwhile) gets a warning, and the run keeps its exit code."""
    def read_only(model_dir, keep, spared):
        raise OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(cli, "prune_versions", read_only)

    assert train(WINEIND, store, "--keep", "1", "--json") == 0

    assert len(ids(store)) == 3
    captured = capsys.readouterr()
    assert f"warning: --keep 1: no version was removed from {store}: Read-only " \
        "file system\n" in captured.err
    assert "pruned" not in json.loads(captured.out)


def test_keep_makes_room_after_a_store_failure(store, capsys, monkeypatch, settled):
    """A run that found the disk full still prunes: the next one has room."""
    first, second = ids(store)
    assert train(WINEIND, store, "--force") == 0

    def disk_full(directory, version, *args):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(artifact, "write_version", disk_full)

    assert train(WINEIND, store, "--force", "--keep", "1") == 4

    assert ids(store)[0] == second and first not in ids(store)
    assert "No space left on device. Nothing was published" in capsys.readouterr().err


def test_prune_keeps_the_version_workers_go_back_to_past_a_damaged_one(store, capsys,
                                                                     settled):
    """A damaged CURRENT replaced by a new version: workers served the one before
    the damaged one, and go back there if the new one fails too."""
    first, second = ids(store)
    assert train(WINEIND, store, "--force") == 0
    third = ids(store)[-1]
    with open(store / artifact.VERSIONS / second / artifact.MODEL_FILE, "ab") as f:
        f.write(b"damaged")
    capsys.readouterr()

    assert main(["prune", "--model-dir", str(store), "--keep", "1"]) == 0

    assert ids(store) == [first, second, third]
    assert capsys.readouterr().out == (
        f"removed 0 version(s); kept {third} (served), {first} (published before "
        "it, where workers go back to if the served one is damaged), "
        f"{second} (damaged, on the way back) and the 1 newest\n")


def test_keep_never_removes_the_version_the_run_kept_unpublished(store, capsys,
                                                                 monkeypatch):
    """Refused promotion (exit 3) tells to publish the version it wrote; --keep 1
    must not remove it, even when a newer one is in the store (a run that
    started later and finished first)."""
    made = artifact.new_version_id
    monkeypatch.setattr(artifact, "new_version_id",
                        lambda now: made(datetime(2020, 1, 1, tzinfo=timezone.utc)))

    code = train(WINEIND, store, "--series-name", "other", "--keep", "1", "--json")

    assert code == 3
    summary = json.loads(capsys.readouterr().out)
    assert summary["version"] in ids(store)
    assert summary["version"] not in summary["pruned"]


def test_keep_makes_room_when_the_disk_is_found_full_before_training(
        store, capsys, monkeypatch, settled):
    """Found full before training, a run with --keep prunes first and goes on: a
    job retrained on a schedule is not stuck at exit 4 for good."""
    first, second = ids(store)
    assert train(WINEIND, store, "--force") == 0

    def full_while_three(path):
        return "no space left" if len(ids(store)) > 2 else None
    monkeypatch.setattr(cli, "room_problem", full_while_three)

    assert train(WINEIND, store, "--force", "--keep", "1") == 0

    assert first not in ids(store) and len(ids(store)) == 2
    assert f"--keep 1: removed 1 older version(s) from {store}: {first}\n" \
        in capsys.readouterr().err


@pytest.mark.parametrize("keep", ["0", "-3"])
def test_keep_below_one_is_a_usage_error(tmp_path, capsys, keep):
    with pytest.raises(SystemExit) as exit:
        train(WINEIND, tmp_path / "models", "--keep", keep)

    assert exit.value.code == 2
    assert f"--keep must be at least 1, got {keep}" in capsys.readouterr().err


@pytest.mark.parametrize("published, chain", [
    ([], []),
    (["A"], ["A"]),
    (["A", "B", "C"], ["C", "B", "A"]),
    (["A", "B", "A"], ["A"]),  # rolled back from B: B is not on the way back
    (["A", "B", "C", "B"], ["B", "A"]),
    (["A", "B", "A", "B"], ["B", "A"]),
    (["A", "B", "A", "C"], ["C", "A"]),
    (["A", "A"], ["A"]),
])
def test_the_way_back_skips_versions_rolled_back_from(published, chain):
    assert artifact.publication_chain(published) == chain


def fake_store(tmp_path, count: int) -> tuple[Path, list[str]]:
    """A store of `count` version folders, enough for set_current to name them."""
    names = [f"2026010{k}T000000Z-0000000{k}" for k in range(1, count + 1)]
    for name in names:
        folder = tmp_path / artifact.VERSIONS / name
        folder.mkdir(parents=True)
        (folder / artifact.METADATA_FILE).write_text("{}")
    return tmp_path, names


def test_a_long_record_keeps_the_way_back_of_a_version_published_long_ago(
        tmp_path, settled):
    """Rolled back to `first` after more publications than the record keeps: the
    way back from it must still end there, not lead to the version rolled back
    from."""
    store, (first, second, third) = fake_store(tmp_path, 3)
    artifact.set_current(store, first)
    for turn in range(artifact.PUBLISHED_KEPT + 10):
        artifact.set_current(store, third if turn % 2 else second)
    assert artifact.publication_chain(artifact.read_published(store)) == [
        third, second, first]

    artifact.set_current(store, first)

    published = artifact.read_published(store)
    assert artifact.publication_chain(published) == [first]
    assert len(published) <= artifact.PUBLISHED_KEPT


def test_a_compacted_record_drops_versions_no_longer_in_the_store(tmp_path):
    store, (first, second, third) = fake_store(tmp_path, 3)
    published = [first, second, third, second] * 30 + [third]

    record = artifact.compact_published(published, {first, third})

    assert record == [first, third]
    assert artifact.publication_chain(record + [first]) == [first]


@pytest.mark.parametrize("published, current, chain", [
    (["A", "B", "C"], "C", ["C", "B", "A"]),
    (["A", "B", "C"], "A", ["A"]),  # CURRENT set back to A by hand
    (["A", "B", "C"], "D", ["D", "C", "B", "A"]),
    ([], "A", ["A"]),
])
def test_current_edited_by_hand_counts_as_one_more_publication(published, current,
                                                              chain):
    assert artifact.publication_chain(published, current) == chain


def test_prune_spares_every_version_served_moments_ago(store, capsys):
    """A rollback, then a training run publishing within the workers' reload
    interval: some workers may still serve the version rolled back from, which is
    neither the newest nor on the way back."""
    first, second = ids(store)
    assert main(["publish", "--model-dir", str(store), first]) == 0  # from second
    assert train(WINEIND, store, "--force") == 0
    third = ids(store)[-1]
    capsys.readouterr()

    assert main(["prune", "--model-dir", str(store), "--keep", "1"]) == 0

    assert ids(store) == [first, second, third]
    assert capsys.readouterr().out.endswith(
        f"removed 0 version(s); kept {third} (served), {first} (published before "
        "it, where workers go back to if the served one is damaged), "
        f"{second} (served until moments ago; workers may not have switched yet) "
        "and the 1 newest\n")

    # Ten minutes on, every worker has switched.
    later = [(v, t - artifact.RECENT_SECONDS) for v, t in
             artifact.read_publications(store)]
    (store / artifact.PUBLISHED).write_text(
        "".join(f"{v} {t:.3f}\n" for v, t in later))
    assert main(["prune", "--model-dir", str(store), "--keep", "1"]) == 0
    assert ids(store) == [first, third]


def test_a_current_edited_by_hand_counts_as_named_when_its_file_changed(store):
    first, second = ids(store)
    (store / artifact.CURRENT).write_text(first + "\n")

    assert artifact.recently_left(store, first) == {second}
    changed = (store / artifact.CURRENT).stat().st_mtime
    os.utime(store / artifact.CURRENT,
             (changed, changed - artifact.RECENT_SECONDS - 1))
    assert artifact.recently_left(store, first, now=changed) == set()


def test_a_rollback_recorded_without_times_spares_the_version_rolled_back_from(
        tmp_path, capsys):
    """A release before PUBLISHED kept times rolled back from `second` to `first`
    (its entries have no times; it wrote CURRENT last). Pruning right after must
    spare `second`: workers may still serve it. CURRENT's file dates the entry."""
    store, (first, second, third) = fake_store(tmp_path, 3)
    (store / artifact.PUBLISHED).write_text(f"{first}\n{second}\n{first}\n")
    (store / artifact.CURRENT).write_text(first + "\n")
    changed = (store / artifact.CURRENT).stat().st_mtime

    assert artifact.recently_left(store, first, now=changed + 5) == {second}
    assert artifact.recently_left(
        store, first, now=changed + artifact.RECENT_SECONDS + 1) == set()

    # The whole command, on a store such a release wrote (the real versions are
    # checked the way workers check them).
    model_dir = tmp_path / "models"
    assert train(WINEIND, model_dir) == 0
    assert train(WINEIND, model_dir, "--force") == 0
    assert train(WINEIND, model_dir, "--model", "seasonal-naive") == 3
    old, rolled_back_from, unpublished = ids(model_dir)
    (model_dir / artifact.PUBLISHED).write_text(f"{old}\n{rolled_back_from}\n{old}\n")
    (model_dir / artifact.CURRENT).write_text(old + "\n")
    capsys.readouterr()

    assert main(["prune", "--model-dir", str(model_dir), "--keep", "1"]) == 0

    assert ids(model_dir) == [old, rolled_back_from, unpublished]
    assert f"{rolled_back_from} (served until moments ago" in capsys.readouterr().out


def test_the_record_reads_entries_without_times_and_skips_what_is_not_one(tmp_path):
    store, (first, second, third) = fake_store(tmp_path, 3)
    (store / artifact.PUBLISHED).write_text(
        f"{first}\n{second} 1764950000.5\n{third} soon\nnot-a-version 1\n"
        f"{first} nan\n")

    assert artifact.read_publications(store) == [
        (first, None), (second, 1764950000.5), (third, None), (first, None)]
    assert artifact.read_published(store) == [first, second, third, first]


def test_a_shortened_record_keeps_its_recent_entries_and_their_times(tmp_path):
    store, (first, second, third) = fake_store(tmp_path, 3)
    now = 1_800_000_000.0
    old = [(second if turn % 2 else third, now - 3600 + turn)
           for turn in range(artifact.PUBLISHED_KEPT)]
    recent = [(first, now - 30), (second, now - 20), (third, now - 10)]

    record = artifact.shortened([(first, None), *old, *recent],
                                {first, second, third}, now)

    assert record[-3:] == recent
    assert len(record) < artifact.PUBLISHED_KEPT
    versions = [v for v, _ in record]
    full = [first, *(v for v, _ in old), first, second, third]
    for version in (first, second, third):
        cut = len(versions) - versions[::-1].index(version)
        whole = len(full) - full[::-1].index(version)
        assert artifact.publication_chain(versions[:cut]) == \
            artifact.publication_chain(full[:whole])


@pytest.mark.parametrize("length", [61, 64], ids=["cut-in-a-line", "cut-at-a-line-end"])
def test_a_record_longer_than_is_read_keeps_its_newest_entries(tmp_path, length):
    """A record lengthened by hand (a comment on each line) is read from its end:
    the newest entries say what is served and what was moments ago. Lines of 64
    bytes divide the read limit, so the cut falls exactly at a line end."""
    store, names = fake_store(tmp_path, 3)
    lines = []
    for i in range(3000):
        line = f"{names[i % 3]} {1_700_000_000 + i} #"
        lines.append(line + "x" * (length - len(line) - 1) + "\n")
    (store / artifact.PUBLISHED).write_text("".join(lines))

    entries = artifact.read_publications(store)

    whole_lines = artifact.PUBLISHED_READ_LIMIT // length
    assert len(entries) == whole_lines
    assert entries[-1] == (names[2999 % 3], 1_700_000_000 + 2999)
    assert entries[0][1] == 1_700_000_000 + 3000 - whole_lines


def test_times_far_ahead_of_the_clock_count_as_old_both_when_pruning_and_shortening(
        tmp_path):
    """A publisher's clock set wrong by an hour: its entries do not stay recent
    until the clocks meet, for pruning or for shortening. `second` was named until
    `first` replaced it now, so that one was served moments ago."""
    store, (first, second, third) = fake_store(tmp_path, 3)
    now = 1_800_000_000.0
    ahead = now + 3600
    entries = [(second if turn % 2 else third, ahead + turn)
               for turn in range(artifact.PUBLISHED_KEPT)] + [(first, now)]
    (store / artifact.PUBLISHED).write_text(
        "".join(f"{v} {t:.3f}\n" for v, t in entries))
    (store / artifact.CURRENT).write_text(first + "\n")

    assert artifact.recently_left(store, first, now=now) == {second}
    assert artifact.shortened(entries, {first, second, third}, now)[-2:] == [
        (second, None), (first, now)]


@pytest.mark.parametrize("name", [artifact.PUBLISHED, artifact.CURRENT])
def test_a_pointer_file_replaced_by_a_folder_is_named_when_publishing(store, capsys,
                                                                      name):
    """Renaming the new file over a folder would fail naming a hidden temporary
    file; the error names the store's own file instead."""
    first, _ = ids(store)
    (store / name).unlink()
    (store / name).mkdir()

    assert main(["publish", "--model-dir", str(store), first]) == 2

    err = capsys.readouterr().err
    assert f"{store / name} is a directory" in err and f"/.{name}-" not in err
    assert not list(store.glob(".*-*"))
    if name == artifact.CURRENT:  # the record names no version CURRENT never did
        assert artifact.read_published(store)[-1] != first


class Killed(BaseException):
    """A remover stopped halfway, as SIGKILL stops it."""


def test_a_prune_killed_halfway_leaves_no_version_with_files_missing(
        store, monkeypatch, settled):
    """Each version leaves the store whole: a prune stopped after deleting one file
    of a version leaves only a hidden folder, which the next prune removes."""
    for _ in range(2):
        assert train(WINEIND, store, "--force") == 0
    whole = {p.name for p in (store / artifact.VERSIONS / ids(store)[-1]).iterdir()}
    real_rmtree = shutil.rmtree

    def stopped_after_one_file(path, *args, **kwargs):
        next(Path(path).iterdir()).unlink()
        raise Killed

    monkeypatch.setattr(shutil, "rmtree", stopped_after_one_file)
    with pytest.raises(Killed):
        main(["prune", "--model-dir", str(store), "--keep", "1"])

    for version in versions_in(store):
        folder = store / artifact.VERSIONS / version
        assert {p.name for p in folder.iterdir()} == whole, version
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)
    assert main(["prune", "--model-dir", str(store), "--keep", "1"]) == 0
    assert all(name[0] != "." for name in ids(store))


def test_a_publication_killed_before_current_moved_is_not_on_the_way_back(
        tmp_path, monkeypatch):
    """Killed after the record named `third` and before CURRENT did: the next
    publication goes back to `second`, which was served, not to `third`, which never
    was."""
    store, (first, second, third, fourth) = fake_store(tmp_path, 4)
    artifact.set_current(store, first)
    artifact.set_current(store, second)
    real_replace = artifact._replace_file

    def killed_before_current(model_dir, name, text):
        if name == artifact.CURRENT:
            raise Killed
        real_replace(model_dir, name, text)

    monkeypatch.setattr(artifact, "_replace_file", killed_before_current)
    with pytest.raises(Killed):
        artifact.set_current(store, third)
    monkeypatch.setattr(artifact, "_replace_file", real_replace)
    assert artifact.read_published(store)[-1] == third
    assert artifact.read_current(store) == second

    artifact.set_current(store, fourth)

    chain = artifact.publication_chain(artifact.read_published(store))
    assert chain == [fourth, second, first]


def test_a_run_waiting_for_the_store_lock_says_so(tmp_path, caplog):
    lock = tmp_path / artifact.PUBLISH_LOCK
    holder = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)
    threading.Timer(0.3, os.close, [holder]).start()

    with caplog.at_level("WARNING", logger="training"):
        with artifact.held_lock(lock):
            pass

    assert f"waiting for {lock}: another run is publishing or pruning in " \
        f"{tmp_path}" in caplog.text
