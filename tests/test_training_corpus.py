"""Broken training input is refused cleanly, and a killed training run harms nothing.

The corpus in tests/data/broken/ holds one file per way a sales history goes wrong;
each must stop `python -m training` with exit code 2, a message that names the
problem, and nothing written. A run killed with SIGKILL at any point while it
publishes must leave the served version untouched and no incomplete version visible;
the next publish removes the hidden staging it left.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.model_store import ModelStore
from tests.conftest import ROOT, TESTDATA, WINEIND
from training import artifact
from training.cli import main as train_main

BROKEN = TESTDATA / "broken"
# File -> words the refusal must contain (case-insensitive), so the message names
# the actual problem rather than failing somewhere downstream.
CORPUS = {
    "empty.csv": ["empty"],
    "header_only.csv": ["no data lines"],
    "truncated.csv": ["line 54", "cut off"],
    "binary.csv": ["not a csv text file"],
    "nul_bytes.csv": ["nul byte", "line 62"],
    "utf16.csv": ["utf-16"],
    "latin1.csv": ["not valid utf-8", "--encoding"],
    "one_column.csv": ["only one column"],
    "all_nan.csv": ["nan", "not a number"],
    "future_dates.csv": ["2090-01", "future"],
    "mixed_frequency.csv": ["same month", "daily or weekly"],
    "quarterly.csv": ["3 months apart", "quarterly data", "per month"],
}


def refuse(data: Path, model_dir: Path, capsys) -> str:
    code = train_main(["--data", str(data), "--model-dir", str(model_dir)])
    err = capsys.readouterr().err

    assert code == 2, err
    assert not model_dir.exists(), "a refused file must not create the model store"
    assert err.startswith("error: ") and "Traceback" not in err
    return err.lower()


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_a_broken_file_is_refused_with_a_message_naming_the_problem(
        name, tmp_path, capsys):
    message = refuse(BROKEN / name, tmp_path / "models", capsys)

    assert name.lower() in message
    for words in CORPUS[name]:
        assert words in message, message


def test_a_million_identical_rows_are_refused_quickly(tmp_path, capsys):
    data = tmp_path / "million.csv"
    data.write_text("date,sales\n" + "1990-01-01,100\n" * 1_000_000)

    started = time.monotonic()
    message = refuse(data, tmp_path / "models", capsys)
    seconds = time.monotonic() - started

    print(f"\na million identical rows refused in {seconds:.1f} s")
    assert "999999" in message and "1990-01" in message
    assert seconds < 60


def test_a_refused_file_leaves_an_existing_store_as_it_was(store_copy, capsys):
    before = sorted(str(p.relative_to(store_copy)) for p in store_copy.rglob("*"))

    code = train_main(["--data", str(BROKEN / "truncated.csv"),
                       "--model-dir", str(store_copy)])

    assert code == 2
    assert sorted(str(p.relative_to(store_copy)) for p in store_copy.rglob("*")) \
        == before


# SIGKILL while publishing -----------------------------------------------------------

# Runs `python -m training` in a child process with one step replaced by "write the
# marker file, then wait to be killed", so the test can kill it at exactly that step.
KILLABLE_TRAINING = r"""
import os, sys, time
point, marker, data, model_dir = sys.argv[1:5]
from training import artifact, cli, models

def stop_here(*args, **kwargs):
    open(marker, "w").close()
    time.sleep(600)

def after(original):
    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        stop_here()
        return result
    return wrapper

if point == "fitting":
    models.SalesForecaster.fit = stop_here
elif point == "model-file-written":
    artifact.sha256_of = after(artifact.sha256_of)
elif point == "before-rename":
    os.rename = stop_here
elif point == "before-current":
    artifact.set_current = stop_here
elif point == "pointer-temp-written":
    # PUBLISHED's temporary file, the first of the two pointer files replaced
    os.replace = stop_here
elif point == "record-written":
    artifact._replace_file = after(artifact._replace_file)
# --force: the file's series differ from the served ones, which alone would stop the
# run before CURRENT moves.
sys.exit(cli.main(["--data", data, "--model-dir", model_dir, "--force"]))
"""
KILL_POINTS = ["fitting", "model-file-written", "before-rename", "before-current",
               "pointer-temp-written", "record-written"]


def visible_versions(store: Path) -> set[str]:
    return {p.name for p in (store / artifact.VERSIONS).iterdir()
            if not p.name.startswith(".")}


def staging_left(store: Path) -> list[str]:
    return sorted([p.name for p in (store / artifact.VERSIONS).glob(".incoming-*")]
                  + [p.name for prefix in artifact.POINTER_TEMP_PREFIXES
                     for p in store.glob(prefix + "*")])


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_training_run_killed_while_publishing_changes_nothing_served(
        point, store_copy, tmp_path):
    served = artifact.read_current(store_copy)
    versions_before = visible_versions(store_copy)
    marker = tmp_path / "reached"

    child = subprocess.Popen(
        [sys.executable, "-c", KILLABLE_TRAINING, point, str(marker),
         str(TESTDATA / "txhousing_sales.csv"), str(store_copy)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert child.poll() is None, child.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, f"{point} not reached in 120 s"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    left = staging_left(store_copy)

    store = ModelStore(store_copy)
    store.refresh()
    assert artifact.read_current(store_copy) == served
    assert store.predictor is not None and store.predictor.version == served
    for version in visible_versions(store_copy) - versions_before:
        # Only a complete version may have become visible (killed after its rename).
        assert point in ("before-current", "pointer-temp-written", "record-written")
        artifact.load_version(store_copy, version)
    print(f"\nkilled at {point}: staging left behind {left or 'none'}")

    # The next publish under the lock clears what the killed run left.
    assert train_main(["--data", str(WINEIND), "--model-dir", str(store_copy)]) == 0
    assert staging_left(store_copy) == []
    assert artifact.read_current(store_copy) not in (None, served)
