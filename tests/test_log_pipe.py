"""A request line stays within one atomic pipe write, whatever path the client sent.

gunicorn's workers share one stderr, a pipe under a container runtime; the kernel
keeps each write whole only up to PIPE_BUF bytes, so a longer request line (a
client's ~4 KB path, six bytes per escaped control character) could be split by
another worker's line and neither would parse.
"""

import json
import logging
import os

import pytest

from service import logs

FIELDS = {"method": "GET", "status": 404, "duration_ms": 0.25, "request_id": "r" * 128,
          "model_version": "20261204T171500Z-3f1c2a9b"}


@pytest.fixture
def pipe_logger():
    logger = logging.getLogger("service")
    saved = logger.handlers[:], logger.level, logger.propagate
    logs.configure("info")
    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w")
    logger.handlers[0].setStream(stream)
    yield read_end, logger.handlers[0]
    stream.close()
    os.close(read_end)
    logger.handlers[:], logger.level, logger.propagate = saved


@pytest.mark.parametrize("path", [
    "/" + "\x01" * 4000,        # each escaped as \u0001: ~24 KB of JSON
    "/" + "a" * 4090,           # the longest request line gunicorn accepts
    "/" + "\u2603" * 2000,      # three bytes each in UTF-8
], ids=["control-characters", "plain", "multibyte"])
def test_a_long_path_is_shortened_to_fit_one_pipe_write(pipe_logger, path):
    read_end, handler = pipe_logger
    # The handler's own method: pytest adds capture handlers to the logger during a
    # test, which would send `logs.write_request` the slow way, through logging.
    handler.write_request({**FIELDS, "path": path})

    line = os.read(read_end, 65536)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert len(line) <= logs.PIPE_BUF
    entry = json.loads(line)
    assert entry["path"].endswith(logs.TRUNCATED)
    kept = entry["path"][:-len(logs.TRUNCATED)]
    assert path.startswith(kept) and len(kept) > 100
    assert entry["request_id"] == "r" * 128 and entry["status"] == 404


def test_a_short_path_is_written_as_it_is(pipe_logger):
    read_end, handler = pipe_logger
    handler.write_request({**FIELDS, "path": "/forecast"})

    assert json.loads(os.read(read_end, 65536))["path"] == "/forecast"
