"""`make train` and `make run` pass the paths they are given as one argument each,
whatever spaces or leading dash they hold."""

import shlex
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None,
                                reason="make is not installed")

PATHS = {"DATA": "-my sales.csv", "MODEL_DIR": "my models"}


def planned(target: str, **variables: str) -> list[list[str]]:
    """The commands `make TARGET` would run, each split as the shell splits it."""
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", target,
         *(f"{name}={value}" for name, value in variables.items())],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return [shlex.split(line) for line in
            result.stdout.replace("\\\n", " ").splitlines()]


def test_make_train_passes_paths_with_spaces_and_a_leading_dash_whole():
    training = [c for c in planned("train", **PATHS) if "training" in c]

    assert training and training[-1][-2:] == ["--data=-my sales.csv",
                                             "--model-dir=my models"]


def test_make_run_trains_once_and_serves_the_model_dir_it_was_given():
    commands = planned("run", **PATHS)

    first = [c for c in commands if "training" in c]
    serve = [c for c in commands if "service" in c]
    assert first and first[0][:3] == ["test", "-f", "my models/CURRENT"]
    assert first[0][-2:] == ["--data=-my sales.csv", "--model-dir=my models"]
    assert serve and "--model-dir=my models" in serve[0]
