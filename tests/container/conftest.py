"""Fixtures for the container suite, one rung on the other: an engine, a base image,
the image built from the working tree, a model volume trained by the image itself,
and a server running read-only from that volume.

With no Docker engine the suite fails under CI=true and is skipped, with the reason,
elsewhere ('hack/docker-engine.sh start' starts one).
"""

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from containerlib import (CANARY, ROOT, TRAIN_COMMAND, Names, docker,
                          engine_problem, run_detached)

BASE_IMAGE = "sales-forecast-base:bookworm"
TEST_IMAGE = "sales-forecast:test"


def run_script(script: str, *args: str, log: Path, timeout: float, **env) -> None:
    """Run a hack/ script, its output to `log`; fail with the log's tail if it fails."""
    with open(log, "w") as out:
        result = subprocess.run([str(ROOT / "hack" / script), *args], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT,
                                timeout=timeout, env={**os.environ, **env})
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        pytest.fail(f"hack/{script} exited {result.returncode}; last lines of {log}:\n"
                    f"{tail}", pytrace=False)


@pytest.fixture(scope="session")
def engine() -> None:
    problem = engine_problem()
    if problem is None:
        return
    message = (f"The container suite needs a Docker engine, and {problem}. Start one "
               f"with 'hack/docker-engine.sh start' (as root).")
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def names(engine):
    made = Names()
    yield made
    made.remove_all()


@pytest.fixture(scope="session")
def base_image(engine, tmp_path_factory) -> str:
    """The offline base; SALES_FORECAST_TEST_BASE_IMAGE names another (e.g. the
    official python:3.11-slim-bookworm on a machine that can pull it)."""
    chosen = os.environ.get("SALES_FORECAST_TEST_BASE_IMAGE")
    if chosen:
        return chosen
    log = tmp_path_factory.mktemp("base") / "base-image.log"
    run_script("base-image.sh", log=log, timeout=900)
    return BASE_IMAGE


@pytest.fixture(scope="session")
def build_ca_bundle(tmp_path_factory) -> Path:
    """The host's CA bundle, which pip in the build needs here, plus the canary line.
    PEM readers ignore text outside the certificate blocks."""
    source = Path(os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
                  or "/etc/ssl/certs/ca-certificates.crt")
    bundle = tmp_path_factory.mktemp("ca") / "build-ca.pem"
    host_text = source.read_text() if source.is_file() else ""
    bundle.write_text(f"{CANARY}\n{host_text}")
    return bundle


@pytest.fixture(scope="session")
def image(base_image, build_ca_bundle, tmp_path_factory) -> str:
    """The image built from the working tree; the engine's build cache makes a
    rebuild with no change take seconds."""
    log = tmp_path_factory.mktemp("build") / "build.log"
    run_script("build-image.sh", TEST_IMAGE, log=log, timeout=1800,
               BASE_IMAGE=base_image, BUILD_CA_BUNDLE=str(build_ca_bundle))
    return TEST_IMAGE


@dataclass
class TrainingRun:
    volume: str
    exit_code: int
    stdout: str
    stderr: str
    diff: list[str]

    @property
    def output(self) -> str:
        return f"exit {self.exit_code}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


@pytest.fixture(scope="session")
def trained_volume(image, names) -> TrainingRun:
    """The training job run by the image, as its own user, into a fresh named volume.
    Docker gives a new named volume the owner of the image's /models (10001), as a
    Kubernetes fsGroup would. Not read-only, so 'docker diff' can show what it wrote."""
    volume = names.volume("models")
    docker("volume", "create", volume)
    name = names.container("train")
    result = docker("run", "--name", name, "--tmpfs", "/tmp", "--volume",
                    f"{volume}:/models", image, *TRAIN_COMMAND, check=False,
                    timeout=600)
    diff = docker("diff", name).stdout.splitlines()
    return TrainingRun(volume, result.returncode, result.stdout, result.stderr, diff)


@pytest.fixture(scope="session")
def read_only_server(image, names, trained_volume):
    """The default command, read-only root, /tmp the only writable path besides the
    model volume, published on the loopback address only."""
    assert trained_volume.exit_code == 0, trained_volume.output
    container = run_detached(image, names.container("serve"), trained_volume.volume,
                             "--read-only", "--tmpfs", "/tmp")
    container.wait_ready()
    return container
