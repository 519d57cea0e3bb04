"""The image doing both jobs: training into a volume as its own user, then serving
from that volume with a read-only root, writing nowhere else."""

import json

import pytest
import requests

from containerlib import TRAIN_COMMAND, docker, run_detached

pytestmark = pytest.mark.container


def test_training_job_writes_a_model_version_into_the_volume(image, trained_volume):
    assert trained_volume.exit_code == 0, trained_volume.output
    summary = json.loads(trained_volume.stdout)
    listing = docker(
        "run", "--rm", "--volume", f"{trained_volume.volume}:/models", image,
        "python", "-c",
        "import os, pathlib;"
        "[print(p.stat().st_uid, p.stat().st_gid, p) for p in "
        "sorted(pathlib.Path('/models').rglob('*'))]",
    ).stdout.splitlines()
    owners = {tuple(line.split()[:2]) for line in listing}
    paths = {line.split()[2] for line in listing}

    assert owners == {("10001", "10001")}
    assert "/models/CURRENT" in paths
    assert f"/models/versions/{summary['version']}/model.joblib" in paths
    assert f"/models/versions/{summary['version']}/metadata.json" in paths


def test_training_job_writes_nothing_outside_the_volume_and_tmp(trained_volume):
    # The root filesystem was writable for this run; the diff shows what a job
    # would have changed in it (mounted paths are not part of the diff).
    assert trained_volume.exit_code == 0, trained_volume.output
    assert trained_volume.diff == []


def test_training_job_refuses_a_missing_file_with_exit_2(image, names):
    volume = names.volume("refused")
    command = [*TRAIN_COMMAND]
    command[command.index("/app/data/wineind.csv")] = "/app/data/absent.csv"

    result = docker("run", "--rm", "--read-only", "--tmpfs", "/tmp", "--volume",
                    f"{volume}:/models", image, *command, check=False, timeout=120)
    left = docker("run", "--rm", "--volume", f"{volume}:/models", image,
                  "python", "-c", "import os; print(os.listdir('/models'))").stdout

    assert result.returncode == 2, result.stdout + result.stderr
    assert "absent.csv" in result.stderr
    assert left.strip() == "[]"


def test_read_only_server_is_ready_and_forecasts_twelve_months(read_only_server):
    ready = requests.get(read_only_server.url + "/readyz", timeout=5)
    response = requests.post(read_only_server.url + "/forecast",
                             json={"horizon": 12}, timeout=10)

    assert ready.status_code == 200
    assert response.status_code == 200, response.text
    forecast = response.json()["forecast"]
    assert len(forecast) == 12
    assert all(isinstance(month["sales"], (int, float)) for month in forecast)


def test_read_only_server_exposes_prometheus_metrics(read_only_server):
    requests.post(read_only_server.url + "/forecast", json={"horizon": 3}, timeout=10)

    response = requests.get(read_only_server.url + "/metrics", timeout=10)

    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "# TYPE " in response.text


def test_server_is_published_on_the_loopback_address_only(read_only_server):
    published = docker("port", read_only_server.name).stdout.split()

    addresses = [item for item in published if ":" in item and "->" not in item]
    assert addresses and all(a.startswith("127.0.0.1:") for a in addresses)


def test_read_only_server_starts_without_errors_in_its_log(read_only_server):
    # gunicorn's own lines, the service's JSON lines, Python tracebacks and warnings
    # (a library finding its cache directory read-only warns, say).
    marks = ("[ERROR]", '"level": "error"', "Traceback", "Warning:")
    errors = [line for line in read_only_server.logs().splitlines()
              if any(mark in line for mark in marks)]

    assert errors == []


def test_server_runs_as_10001_with_gunicorn_as_pid_1(read_only_server):
    status = read_only_server.exec("cat", "/proc/1/status")
    command_line = read_only_server.exec("cat", "/proc/1/cmdline").split("\0")

    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    gid_line = next(line for line in status.splitlines() if line.startswith("Gid:"))
    assert uid_line.split()[1:] == ["10001"] * 4
    assert gid_line.split()[1:] == ["10001"] * 4
    # No shell in between: the process that receives 'docker stop' is gunicorn.
    assert "gunicorn" in command_line


def test_server_writes_nothing_outside_the_volume_and_tmp(image, names,
                                                          trained_volume):
    # A writable root this time, so a stray write would succeed and show in the diff.
    container = run_detached(image, names.container("diff"), trained_volume.volume,
                             "--tmpfs", "/tmp")
    container.wait_ready()
    for path in ("/", "/model", "/metrics", "/openapi.json"):
        requests.get(container.url + path, timeout=10)
    requests.post(container.url + "/forecast", json={"horizon": 12}, timeout=10)

    assert container.diff() == []
