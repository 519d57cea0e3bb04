"""`python -m service` refuses a port it cannot bind, or a worker count that is a typo,
with one line, not a traceback or a master forking thousands of workers.

Command-line options are checked before gunicorn is started; the environment
variables by the gunicorn configuration, before the master binds or forks.
"""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, free_port


def launch(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service", *args],
                          env={**os.environ, **env}, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("port", ["99999", "65536", "0", "-1"])
def test_a_port_option_out_of_range_stops_before_gunicorn(tmp_path, port):
    result = launch("--model-dir", str(tmp_path), f"--port={port}")

    assert result.returncode == 1
    assert result.stderr == f"--port must be between 1 and 65535, got {port}.\n"


@pytest.mark.integration
def test_a_port_variable_out_of_range_stops_gunicorn_before_it_binds(tmp_path):
    result = launch("--model-dir", str(tmp_path), SALES_FORECAST_PORT="99999",
                    PROMETHEUS_MULTIPROC_DIR=str(tmp_path))

    assert result.returncode == 1
    assert result.stderr.strip() == \
        "SALES_FORECAST_PORT must be at most 65535, got 99999."


@pytest.mark.parametrize("option", ["--host", "--model-dir"])
def test_an_empty_host_or_model_dir_option_is_refused_by_its_name(option):
    result = launch(f"{option}= ", "--port=1")  # a port gunicorn would not bind

    assert result.returncode == 1
    assert result.stderr.startswith(f"{option} is empty, got ' '; give ")


@pytest.mark.parametrize("workers", ["0", "65", "10000"])
def test_a_worker_count_out_of_range_stops_before_gunicorn(tmp_path, workers):
    result = launch("--model-dir", str(tmp_path), f"--workers={workers}")

    assert result.returncode == 1
    assert result.stderr == f"--workers must be between 1 and 64, got {workers}.\n"


@pytest.mark.integration
@pytest.mark.parametrize("name, value, message", [
    ("WORKERS", "10000", "SALES_FORECAST_WORKERS must be at most 64, got 10000."),
    ("THREADS", "1000", "SALES_FORECAST_THREADS must be at most 64, got 1000."),
    # Read by the application in each worker, and checked by the master first.
    ("UPLOADS", "maybe", "SALES_FORECAST_UPLOADS must be true or false, got 'maybe'."),
    # One segment of the /v2/models/NAME paths: with a slash no V2 path would match.
    ("MODEL_NAME", "a/b", "SALES_FORECAST_MODEL_NAME must be 1 to 63 letters, digits, "
     "'.', '_' or '-', starting with a letter or digit (it is a segment of the "
     "/v2/models/NAME paths), got 'a/b'."),
    ("RELOAD_INTERVAL", "-1",
     "SALES_FORECAST_RELOAD_INTERVAL must be at least 0.0, got -1."),
    # A sleep that long ends the thread that checks for new versions.
    ("RELOAD_INTERVAL", "inf",
     "SALES_FORECAST_RELOAD_INTERVAL must be at most 86400, got inf."),
    ("SHUTDOWN_DELAY", "100000",
     "SALES_FORECAST_SHUTDOWN_DELAY must be at most 3600, got 100000."),
])
def test_a_bad_setting_stops_gunicorn_before_it_forks(
        tmp_path, name, value, message):
    result = launch("--model-dir", str(tmp_path),
                    PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
                    **{f"SALES_FORECAST_{name}": value})

    assert result.returncode == 1
    assert result.stderr.strip() == message


@pytest.mark.integration
def test_tls_options_stop_the_master_before_it_binds(tmp_path):
    # gunicorn would perform each TLS handshake in a thread's blocking read with no
    # deadline: one byte of a handshake, then silence, held a thread for good.
    port = free_port()
    result = launch("--model-dir", str(tmp_path), f"--port={port}",
                    PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
                    GUNICORN_CMD_ARGS=f"--certfile {tmp_path / 'cert.pem'} "
                                      f"--keyfile {tmp_path / 'key.pem'}")

    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "TLS options (--certfile, --keyfile) are set, through GUNICORN_CMD_ARGS; "
        "the service serves plain HTTP only. Terminate TLS in front of it (an "
        "ingress, a mesh sidecar or a load balancer) and remove them.")
    assert f"Listening at: http://127.0.0.1:{port}" not in result.stderr


@pytest.mark.parametrize("host, bind", [
    ("::1", "[::1]:8080"), ("::", "[::]:8080"), ("[::1]", "[::1]:8080"),
    ("0.0.0.0", "0.0.0.0:8080"),
])
def test_an_ipv6_address_is_bracketed_for_gunicorn(monkeypatch, host, bind):
    import importlib

    from service import gunicorn_conf

    monkeypatch.setenv("SALES_FORECAST_HOST", host)
    monkeypatch.delenv("SALES_FORECAST_PORT", raising=False)
    try:
        assert importlib.reload(gunicorn_conf).bind == bind
    finally:
        monkeypatch.undo()
        importlib.reload(gunicorn_conf)


def test_a_host_and_model_dir_with_spaces_around_are_read_without_them(
        monkeypatch):
    import importlib
    from pathlib import Path

    from service import gunicorn_conf
    from service.config import Settings

    monkeypatch.setenv("SALES_FORECAST_HOST", " 127.0.0.1 ")
    monkeypatch.setenv("SALES_FORECAST_MODEL_DIR", " /srv/models\n")
    monkeypatch.delenv("SALES_FORECAST_PORT", raising=False)
    try:
        assert importlib.reload(gunicorn_conf).bind == "127.0.0.1:8080"
        assert Settings.from_env().model_dir == Path("/srv/models")
    finally:
        monkeypatch.undo()
        importlib.reload(gunicorn_conf)


def test_a_model_dir_named_with_spaces_at_its_edges_is_the_folder_training_wrote(
        monkeypatch, tmp_path):
    """Training takes `--model-dir "my models "` whole; the service, given the same
    name, must read that folder, not "my models"."""
    from pathlib import Path

    from service.config import Settings

    store = tmp_path / "my models "
    store.mkdir()
    monkeypatch.setenv("SALES_FORECAST_MODEL_DIR", str(store))

    assert Settings.from_env().model_dir == Path(str(store))


@pytest.mark.parametrize("name, meaning", [
    # gunicorn would listen on every interface.
    ("HOST", "the address to listen on (0.0.0.0 for every interface), or unset it "
             "for '127.0.0.1'."),
    # The service would wait for a model in its working directory.
    ("MODEL_DIR", "the model store folder the training job publishes into, or "
                  "unset it for 'models'."),
])
def test_an_empty_host_or_model_dir_is_refused_not_read(monkeypatch, name, meaning):
    import importlib

    from service import gunicorn_conf

    monkeypatch.setenv(f"SALES_FORECAST_{name}", " ")
    try:
        with pytest.raises(SystemExit) as stopped:
            importlib.reload(gunicorn_conf)
    finally:
        monkeypatch.undo()
        importlib.reload(gunicorn_conf)

    assert str(stopped.value) == \
        f"SALES_FORECAST_{name} is empty, got ' '; set it to {meaning}"


def test_no_client_can_move_the_service_off_the_root_with_a_header():
    import socket

    from gunicorn.config import Config
    from gunicorn.http.parser import RequestParser
    from gunicorn.http.wsgi import create

    from service import gunicorn_conf

    config = Config()
    for name, value in vars(gunicorn_conf).items():
        if name in config.settings:
            config.set(name, value)
    # From the loopback, where gunicorn trusts forwarding headers by default.
    peer = ("127.0.0.1", 40000)
    raw = b"GET //elsewhere/ HTTP/1.1\r\nHost: x\r\nSCRIPT_NAME: //elsewhere\r\n\r\n"

    request = next(RequestParser(config, iter([raw]), peer))
    server, client = socket.socketpair()
    with server, client:
        _, environ = create(request, server, peer, ("127.0.0.1", 8080), config)

    assert environ["SCRIPT_NAME"] == ""
    assert environ["PATH_INFO"] == "//elsewhere/"
