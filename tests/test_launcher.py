"""`python -m service` refuses a port it cannot bind with one line, not a traceback.

The command-line option is checked before gunicorn is started; the environment
variable by the gunicorn configuration, before the master binds or forks.
"""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


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
