"""`make train` and `make run` pass the paths they are given as one argument each,
whatever spaces, leading dash, quotes or shell syntax they hold; every `make TARGET`
the documentation names is a target of the Makefile."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None,
                                reason="make is not installed")

PATHS = {"DATA": "-my sales.csv", "MODEL_DIR": "my models"}


def ran(tmp_path: Path, target: str, **variables: str) -> list[list[str]]:
    """The argument lists `make TARGET` ran its Python with, in order. The Python is
    a stand-in that only records them; the environment it names is made to look
    installed, so nothing is installed."""
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".installed").touch()  # newer than the locks: `venv` has nothing to do
    record = tmp_path / "calls.jsonl"
    python = tmp_path / "python"
    python.write_text(f"#!{sys.executable}\nimport json, sys\n"
                      f"with open({str(record)!r}, 'a') as f:\n"
                      "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n")
    python.chmod(0o755)
    subprocess.run(
        ["make", "--no-print-directory", target, f"VENV={venv}", f"PY={python}",
         *(f"{name}={value}" for name, value in variables.items())],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "HOME": str(tmp_path)})
    return [json.loads(line) for line in record.read_text().splitlines()]


def test_make_train_passes_paths_with_spaces_and_a_leading_dash_whole(tmp_path):
    calls = ran(tmp_path, "train", **PATHS)

    assert calls == [["-m", "training", "--data=-my sales.csv",
                      "--model-dir=my models"]]


def test_make_run_trains_once_and_serves_the_model_dir_it_was_given(tmp_path):
    calls = ran(tmp_path, "run", **PATHS)

    assert calls[0][-2:] == ["--data=-my sales.csv", "--model-dir=my models"]
    assert calls[1][:3] == ["-m", "service", "--model-dir=my models"]


@pytest.mark.parametrize("name", [
    'say "hi".csv', "a`touch {pwned}`.csv", "a$$(touch {pwned}).csv", "it's.csv"])
def test_a_path_with_quotes_or_shell_syntax_is_a_name_not_a_command(tmp_path, name):
    pwned = tmp_path / "pwned"
    data = name.format(pwned=pwned)

    calls = ran(tmp_path, "run", DATA=data, MODEL_DIR=f"{data}-models")

    shell = data.replace("$$", "$")  # make's own escape of a dollar
    assert calls[0][-2:] == [f"--data={shell}", f"--model-dir={shell}-models"]
    assert calls[1][2] == f"--model-dir={shell}-models"
    assert not pwned.exists()


def test_every_make_target_the_documentation_names_exists():
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(),
                             re.MULTILINE))
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
                 *sorted((ROOT / "charts").rglob("*.yaml")),
                 *sorted((ROOT / "charts").rglob("*.md"))]

    named = {(path.relative_to(ROOT).as_posix(), target) for path in documents
             for target in re.findall(r"`make ([\w-]+)", path.read_text())}

    assert {(path, target) for path, target in named if target not in targets} \
        == set()
