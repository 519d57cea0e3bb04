"""Fixtures shared by the suite: data, a trained model store, an app, a live server.

They build on each other: the bundled series is trained once per session into a
model store; tests that change a store get their own copy.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from training.cli import main as train_main

ROOT = Path(__file__).resolve().parent.parent
WINEIND = ROOT / "data" / "wineind.csv"
TESTDATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    """No test sees another test's (or the developer's) service settings."""
    for name in list(os.environ):
        if name.startswith("SALES_FORECAST_") or name == "PROMETHEUS_MULTIPROC_DIR":
            monkeypatch.delenv(name)


def train(data: Path, model_dir: Path, *extra: str) -> int:
    return train_main(["--data", str(data), "--model-dir", str(model_dir), *extra])


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory) -> Path:
    """A model store holding one version trained on the bundled wineind series."""
    model_dir = tmp_path_factory.mktemp("store") / "models"
    assert train(WINEIND, model_dir) == 0
    return model_dir


@pytest.fixture
def store_copy(trained_store, tmp_path) -> Path:
    """A private copy of the trained store, for tests that publish or break things."""
    return Path(shutil.copytree(trained_store, tmp_path / "models", symlinks=True))


@pytest.fixture
def app(trained_store):
    from service.app import create_app
    from service.config import Settings

    return create_app(Settings(model_dir=trained_store), watch=False)


@pytest.fixture
def client(app):
    return app.test_client()


class FakeClock:
    """A stand-in for time.monotonic that moves only when a test sets `now`."""

    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self):
        return self.now


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`python -m service` as a real gunicorn process on a free loopback port."""

    def __init__(self, model_dir: Path, tmp: Path, **env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        metrics_dir = tmp / f"metrics-{self.port}"
        metrics_dir.mkdir()
        self.log_path = tmp / f"server-{self.port}.log"
        self.env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
                    "SALES_FORECAST_RELOAD_INTERVAL": "0.2",
                    **{k: str(v) for k, v in env.items()}}
        self.args = [sys.executable, "-m", "service", "--model-dir", str(model_dir),
                     "--port", str(self.port)]
        self.process = None

    def start(self, wait_ready: bool = True, timeout: float = 30) -> "LiveServer":
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(self.args, env=self.env, cwd=ROOT,
                                        stdout=self._log, stderr=subprocess.STDOUT)
        self.wait_for("/readyz" if wait_ready else "/healthz", timeout)
        return self

    def wait_for(self, path: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n"
                                     + self.log())
            try:
                if requests.get(self.url + path, timeout=1).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                # The master accepts connections before a worker has loaded the app.
                pass
            time.sleep(0.05)
        raise AssertionError(f"{path} not 200 after {timeout}s:\n" + self.log())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


@pytest.fixture
def live_server(tmp_path):
    """A factory: `live_server(model_dir, **env)` starts a server stopped at teardown."""
    servers = []

    def start(model_dir: Path, wait_ready: bool = True, **env) -> LiveServer:
        server = LiveServer(model_dir, tmp_path, **env)
        servers.append(server)
        return server.start(wait_ready=wait_ready)

    yield start
    for server in servers:
        server.stop()
