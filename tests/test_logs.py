"""The request line's direct write (service/logs.py) against the logging path it
replaces: same keys, same order, same values, whole lines."""

import io
import json
import logging
import threading

import pytest

from service import logs

FIELDS = {"method": "POST", "path": "/predict", "status": 200, "duration_ms": 0.25,
          "request_id": "abc", "model_version": "v1"}


@pytest.fixture
def service_logger():
    logger = logging.getLogger("service")
    saved = logger.handlers[:], logger.level, logger.propagate
    logs.configure("info")
    yield logger
    logger.handlers[:], logger.level, logger.propagate = saved


def read_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_direct_line_matches_what_logging_writes(service_logger, tmp_path):
    path = tmp_path / "service.log"
    with open(path, "w") as stream:
        service_logger.handlers[0].setStream(stream)
        service_logger.info("request", extra=FIELDS)
        logs.write_request(FIELDS)

    by_logging, direct = read_lines(path)

    assert list(direct) == list(by_logging)
    assert {k: v for k, v in direct.items() if k != "time"} == \
        {k: v for k, v in by_logging.items() if k != "time"}
    assert direct["time"].endswith("Z") and len(direct["time"]) == 24


def test_a_stream_without_a_descriptor_gets_the_line_through_its_methods(
        service_logger):
    buffer = io.StringIO()
    service_logger.handlers[0].setStream(buffer)

    logs.write_request(FIELDS)

    line = json.loads(buffer.getvalue())
    assert line["message"] == "request" and line["request_id"] == "abc"


def test_no_line_below_info(service_logger, tmp_path):
    path = tmp_path / "service.log"
    with open(path, "w") as stream:
        service_logger.handlers[0].setStream(stream)
        service_logger.setLevel(logging.WARNING)
        logs.write_request(FIELDS)

    assert path.read_text() == ""


def test_lines_from_many_threads_stay_whole(service_logger, tmp_path):
    path = tmp_path / "service.log"
    long_path = "/predict/" + "x" * 3000  # several times a typical line
    with open(path, "w") as stream:
        service_logger.handlers[0].setStream(stream)

        def write(thread):
            for n in range(200):
                logs.write_request({**FIELDS, "path": long_path,
                                    "request_id": f"{thread}-{n}"})

        threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    ids = [line["request_id"] for line in read_lines(path)]
    assert sorted(ids) == sorted(f"{t}-{n}" for t in range(4) for n in range(200))


def test_a_failed_write_does_not_fail_the_request(service_logger, tmp_path):
    stream = open(tmp_path / "service.log", "w")
    service_logger.handlers[0].setStream(stream)
    stream.close()  # the descriptor is gone: os.write raises EBADF

    logs.write_request(FIELDS)
