"""The model's life in a running service: hot swaps, refused candidates, shutdown.

The first tests drive `ModelStore` directly (no server): a refused version is tried
again when its files change, a transient read error is retried, a lasting problem is
logged once. The integration tests run real gunicorn (2 workers) under steady
keep-alive load from 127.0.0.1 while the model store is changed underneath it, and
a graceful stop while requests are in flight.
"""

import io
import json
import logging
import os
import signal
import socket
import time
from pathlib import Path

import pytest
import requests

from bench.lifecycle import (flip_one_byte, model_path, point_current_at,
                             publish_broken, publish_copy,
                             truncate_with_matching_hash, version_id)
from bench.traffic import REFUSED, Traffic, summarize
from service.model_store import ModelStore
from tests.conftest import FakeClock
from training import artifact

RELOAD_INTERVAL = 0.2
# A published version must be served by every worker this long after CURRENT moves:
# a few reload intervals plus loading and self-checking the model on a busy machine.
SWITCH_BOUND = 2.0
SETTLE = 2.5


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, outcome, version, error):
        self.calls.append((outcome, version))


# ModelStore without a server --------------------------------------------------------

def test_a_refused_version_is_tried_again_once_its_files_change(
        store_copy, trained_store, caplog):
    recorder = Recorder()
    store = ModelStore(store_copy, on_load=recorder)
    store.refresh()
    first = store.predictor.version
    version = publish_copy(store_copy, trained_store, 1)
    good = model_path(store_copy, version).read_bytes()
    model_path(store_copy, version).write_bytes(good[:200])

    with caplog.at_level(logging.ERROR, logger="service"):
        for _ in range(5):
            store.refresh()
    refusals = [r for r in caplog.records if version in r.getMessage()]
    assert store.predictor.version == first
    assert len(refusals) == 1
    assert recorder.calls.count(("failure", version)) == 1

    model_path(store_copy, version).write_bytes(good)
    store.refresh()
    assert store.predictor.version == version
    assert recorder.calls[-1] == ("success", version)


def test_a_transient_read_error_is_retried_later_not_on_every_request(
        store_copy, trained_store, monkeypatch):
    """An I/O error may pass, so the version is not refused for good; but requests
    that ask out of turn (catch_up, on every unknown series) do not retry it before
    TRANSIENT_RETRY seconds."""
    from service import model_store

    clock = FakeClock(1000.0)
    monkeypatch.setattr(model_store.time, "monotonic", clock)
    recorder = Recorder()
    store = ModelStore(store_copy, on_load=recorder)
    store.refresh()
    version = publish_copy(store_copy, trained_store, 2)
    real_read = artifact.read_regular
    failures = {"left": 1}

    def flaky_read(path, limit=-1):
        if Path(path).name == artifact.MODEL_FILE and failures["left"]:
            failures["left"] -= 1
            raise OSError(5, "Input/output error")
        return real_read(path, limit)

    monkeypatch.setattr(artifact, "read_regular", flaky_read)
    store.refresh()
    for _ in range(50):
        store.catch_up(None)
    assert store.predictor.version != version
    assert recorder.calls.count(("failure", version)) == 1

    clock.now += model_store.TRANSIENT_RETRY
    store.refresh()

    assert store.predictor.version == version


def test_a_bad_pointer_is_logged_once_and_counted_once(store_copy, caplog):
    recorder = Recorder()
    store = ModelStore(store_copy, on_load=recorder)
    store.refresh()
    served = store.predictor.version

    point_current_at(store_copy, "../../etc/passwd\n")
    with caplog.at_level(logging.WARNING, logger="service"):
        for _ in range(10):
            store.refresh()
        (store_copy / artifact.CURRENT).unlink()
        for _ in range(10):
            store.refresh()

    messages = [r.getMessage() for r in caplog.records]
    assert store.predictor.version == served and store.ready
    assert sum("etc/passwd" in m for m in messages) == 1
    assert sum("is missing" in m for m in messages) == 1
    assert recorder.calls.count(("failure", "pointer")) == 1


@pytest.mark.parametrize("tamper", ["version-edited", "directory-symlink"])
def test_a_version_that_is_not_what_it_claims_is_refused(store_copy, trained_store,
                                                          tmp_path, tamper):
    store = ModelStore(store_copy)
    store.refresh()
    served = store.predictor.version
    version = version_id(3)
    if tamper == "version-edited":
        publish_copy(store_copy, trained_store, 3)
        meta = store_copy / artifact.VERSIONS / version / artifact.METADATA_FILE
        document = json.loads(meta.read_text())
        document["version"] = served
        meta.write_text(json.dumps(document))
    else:
        outside = tmp_path / "outside"
        publish_copy(outside, trained_store, 3)
        (store_copy / artifact.VERSIONS / version).symlink_to(
            outside / artifact.VERSIONS / version)
        point_current_at(store_copy, version + "\n")

    store.refresh()

    assert store.predictor.version == served


def publish_planted_model(store_copy, trained_store, content: bytes) -> str:
    """Publish a copy of the trained version whose model file is `content`, with its
    hash recorded in the metadata as whoever can write the store could do."""
    version = publish_copy(store_copy, trained_store, 4, current=False)
    model_path(store_copy, version).write_bytes(content)
    meta = store_copy / artifact.VERSIONS / version / artifact.METADATA_FILE
    document = json.loads(meta.read_text())
    document["sha256"] = artifact.sha256_of(model_path(store_copy, version))
    meta.write_text(json.dumps(document))
    artifact.set_current(store_copy, version)
    return version


def test_a_pickle_that_calls_a_function_is_refused_even_with_a_matching_hash(
        store_copy, trained_store, tmp_path):
    import pickle

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    store = ModelStore(store_copy)
    store.refresh()
    served = store.predictor.version
    evil = io.BytesIO()
    pickle.dump(Payload(), evil)
    publish_planted_model(store_copy, trained_store, evil.getvalue())

    store.refresh()

    assert store.predictor.version == served
    assert not (tmp_path / "ran").exists()
    assert "posix.system" in store._reported or "os.system" in store._reported


def test_a_pickle_naming_a_script_module_is_refused_without_running_it(
        store_copy, trained_store):
    # Finding a class imports its module; `training.__main__` runs the training
    # command when imported, whose SystemExit no `except Exception` catches.
    store = ModelStore(store_copy)
    store.refresh()
    served = store.predictor.version
    publish_planted_model(store_copy, trained_store, b"ctraining.__main__\nmain\n.")

    store.refresh()

    assert store.predictor.version == served
    assert "training.__main__.main" in store._reported


# Real gunicorn under load -----------------------------------------------------------

@pytest.mark.integration
def test_versions_change_under_load_exactly_when_they_should(
        live_server, store_copy, trained_store, tmp_path):
    server = live_server(store_copy, SALES_FORECAST_WORKERS="2",
                         SALES_FORECAST_RELOAD_INTERVAL=str(RELOAD_INTERVAL))
    v0 = artifact.read_current(store_copy)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / artifact.CURRENT).write_text(v0 + "\n")

    v1, v2 = version_id(11), version_id(12)
    steps = [
        ("publish a new version",
         lambda: publish_copy(store_copy, trained_store, 11), v1),
        ("truncated model file", lambda: publish_broken(
            store_copy, trained_store, 13, truncate_with_matching_hash),
         v1),
        ("hash does not match", lambda: publish_broken(
            store_copy, trained_store, 14, flip_one_byte), v1),
        ("CURRENT holds a path", lambda: point_current_at(
            store_copy, "../../../etc/passwd\n"), v1),
        ("CURRENT is a symlink out", lambda: (
            (store_copy / artifact.CURRENT).unlink(),
            (store_copy / artifact.CURRENT).symlink_to(
                outside / artifact.CURRENT)), v1),
        ("CURRENT deleted", lambda: (store_copy / artifact.CURRENT).unlink(), v1),
        ("publish again", lambda: publish_copy(store_copy, trained_store, 12), v2),
    ]

    load = Traffic(server.url, clients=4, rate=40, timeout=10, max_seconds=120)
    ready = Traffic(server.url, path="/readyz", method="GET", clients=1, rate=20,
                    timeout=10, max_seconds=120)
    timeline = [("start", time.monotonic(), v0)]
    with load, ready:
        time.sleep(SETTLE)
        for name, action, expected in steps:
            at = time.monotonic()
            action()
            timeline.append((name, at, expected))
            time.sleep(SETTLE)
        end = time.monotonic()
    results, probes = load.results, ready.results

    print(f"\n{'scenario':<26} {'sent':>6} {'failed':>6}  versions served")
    problems = []
    for i, (name, at, expected) in enumerate(timeline):
        until = timeline[i + 1][1] if i + 1 < len(timeline) else end
        window = [r for r in results + probes if at <= r.started < until]
        previous = timeline[i - 1][2] if i else v0
        served = {r.version for r in window}
        summary = summarize(window)
        late = [r for r in window if r.started >= at + SWITCH_BOUND
                and r.version != expected]
        early = [r for r in results + probes if r.version == expected != previous
                 and r.finished < at]
        switched = max((r.finished for r in window if r.version == previous),
                       default=at) - at if expected != previous else 0.0
        print(f"{name:<26} {summary['sent']:>6} {summary['failed']:>6}  "
              f"{sorted(v for v in served if v)}"
              + (f"  (old version last seen {switched:.2f} s after the switch)"
                 if expected != previous else ""))
        if summary["failed"]:
            problems.append(f"{name}: {summary['by_kind']}")
        if served - {previous, expected}:
            unexpected = served - {previous, expected}
            problems.append(f"{name}: unexpected versions {unexpected}")
        if late:
            problems.append(f"{name}: {len(late)} answers from {late[0].version} "
                            f"more than {SWITCH_BOUND} s after the change")
        if early:
            problems.append(f"{name}: {expected} served before it was published")
    total = summarize(results + probes)
    print(f"{'all':<26} {total['sent']:>6} {total['failed']:>6}")

    assert not problems, problems
    assert all(r.version for r in results), "an answer did not name its model version"
    assert total["sent"] > 500
    log = server.log()
    # Each refused candidate is logged once per worker, not once per check.
    for version in (version_id(13), version_id(14)):
        assert 1 <= log.count(f"refused candidate {version}") <= 2, log[-3000:]
    assert 1 <= log.count("etc/passwd") <= 2
    assert "Traceback" not in log


def slow_request(port: int, body: bytes) -> socket.socket:
    """Send the headers and half the body of a /predict request, and stop there."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode()
                 + body[: len(body) // 2])
    return sock


def finish_request(sock: socket.socket, body: bytes) -> int:
    sock.sendall(body[len(body) // 2:])
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    sock.close()
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


@pytest.mark.integration
def test_sigterm_under_load_loses_no_request_already_sent(live_server, store_copy):
    """"Loses none" means: every request the client had started before SIGTERM,
    including those in flight (half-sent bodies, answers being computed), completes
    with a 200. Requests started after SIGTERM may find the listener closed
    ("refused") or be cut before the server read them; those are counted
    separately, and none may get an error status."""
    server = live_server(store_copy, SALES_FORECAST_WORKERS="2")
    body = json.dumps({"instances": [{"date": f"19{80 + i % 14}-{i % 12 + 1:02d}"}
                                     for i in range(2000)]}).encode()
    # Unpaced: each client sends its next request as soon as the last is answered, so
    # at any instant nearly all six have one in flight, on a fast machine or a slow one.
    load = Traffic(server.url, path="/predict", body=json.loads(body), clients=6,
                   timeout=30, max_seconds=60).start()
    time.sleep(1.5)
    slow = [slow_request(server.port, body) for _ in range(3)]
    time.sleep(0.3)

    sigterm_at = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    slow_statuses = [finish_request(sock, body) for sock in slow]
    exit_code = server.process.wait(timeout=40)
    results = load.stop()

    before = [r for r in results if r.started < sigterm_at]
    in_flight = [r for r in before if r.finished > sigterm_at]
    after = [r for r in results if r.started >= sigterm_at]
    after_summary = summarize(after)
    print(f"\nstarted before SIGTERM: {len(before)} sent, "
          f"{sum(not r.ok for r in before)} failed ({len(in_flight)} in flight at "
          f"SIGTERM, plus {len(slow)} half-sent bodies finished after it: "
          f"{slow_statuses}); started after: {after_summary['sent']} sent, "
          f"{after_summary['ok']} answered 200, by kind {after_summary['by_kind']}; "
          f"exit code {exit_code}")

    assert exit_code == 0
    assert len(before) > 20 and in_flight, "the test must catch requests in flight"
    assert all(r.ok for r in before), [r.detail for r in before if not r.ok][:3]
    assert slow_statuses == [200, 200, 200]
    assert all(r.ok or r.failure for r in after), "an error status after SIGTERM"
    assert set(after_summary["by_kind"]) <= {REFUSED, "reset"}


def test_a_master_removes_a_draining_marker_left_under_its_own_pid(monkeypatch,
                                                                   tmp_path):
    """A master killed while draining leaves its marker behind; a later master with
    the same pid (1, in a container) must not read it as its own shutdown."""
    from types import SimpleNamespace

    from service import gunicorn_conf
    from service.config import draining_marker

    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    marker = Path(draining_marker(os.getpid()))
    marker.write_text("")
    assert marker.parent == metrics_dir
    server = SimpleNamespace(log=SimpleNamespace(info=lambda *a: None),
                             cfg=SimpleNamespace(is_ssl=False),
                             handle_term=lambda: None)

    gunicorn_conf.on_starting(server)

    assert not marker.exists()


@pytest.mark.integration
def test_readiness_turns_off_for_the_shutdown_delay_with_the_marker_in_the_metrics_dir(
        live_server, store_copy, tmp_path):
    # A marker in a /tmp shared with other users could be created by any of them
    # ahead of the master; the metrics directory is the master's own.
    monkey_tmp = tmp_path / "shared-tmp"
    monkey_tmp.mkdir()
    server = live_server(store_copy, SALES_FORECAST_SHUTDOWN_DELAY=3,
                         TMPDIR=str(monkey_tmp))
    metrics_dir = Path(server.env["PROMETHEUS_MULTIPROC_DIR"])

    server.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 2
    while requests.get(server.url + "/readyz", timeout=5).status_code == 200:
        assert time.monotonic() < deadline, "readiness still on after SIGTERM"
        time.sleep(0.05)

    assert (metrics_dir / f"sales-forecast-{server.process.pid}.draining").exists()
    assert not list(monkey_tmp.iterdir())
    # Still answering while the load balancer takes it out of rotation.
    assert requests.post(server.url + "/forecast", json={"horizon": 1},
                         timeout=5).status_code == 200
    assert server.process.wait(timeout=30) == 0
    assert not list(metrics_dir.glob("*.draining"))


@pytest.mark.parametrize("middle_published", [True, False])
def test_a_worker_started_after_current_went_bad_serves_the_last_good_version(
        store_copy, trained_store, middle_published):
    """Its siblings kept their model when CURRENT went bad; a worker started after
    that (crashed and replaced) serves the version published before the bad one,
    not nothing. One training kept unpublished is passed over."""
    first = artifact.read_current(store_copy)
    middle = publish_copy(store_copy, trained_store, 2, current=middle_published)
    if not middle_published:
        path = store_copy / artifact.VERSIONS / middle / artifact.METADATA_FILE
        document = json.loads(path.read_text())
        document["promotion"] = {"promoted": False}
        path.write_text(json.dumps(document))
    bad = publish_broken(store_copy, trained_store, 3, flip_one_byte)
    recorder = Recorder()

    store = ModelStore(store_copy, on_load=recorder)
    store.refresh()
    store.refresh()

    expected = middle if middle_published else first
    assert store.serving().version == expected
    assert recorder.calls == [("failure", bad), ("success", expected)]

    fixed = publish_copy(store_copy, trained_store, 4)
    store.refresh()
    assert store.serving().version == fixed


@pytest.mark.parametrize("how", ["refused version", "garbled pointer"])
def test_after_a_rollback_a_new_worker_does_not_bring_back_the_newer_version(
        store_copy, trained_store, how):
    """Rolled back from `newer` to `first`, the siblings serve `first`; when CURRENT
    then goes bad, a new worker follows the store's publication record to `first`,
    not to `newer`, the newest version by id."""
    first = artifact.read_current(store_copy)
    newer = publish_copy(store_copy, trained_store, 2)
    with artifact.publish_lock(store_copy):
        artifact.set_current(store_copy, first)
    if how == "refused version":
        publish_broken(store_copy, trained_store, 3, flip_one_byte)
    else:
        point_current_at(store_copy, "../../etc/passwd\n")

    store = ModelStore(store_copy)
    store.refresh()

    assert newer > first  # the order of the ids would have chosen `newer`
    assert store.serving().version == first


def test_when_the_version_rolled_back_to_is_damaged_a_new_worker_stays_unready(
        store_copy, trained_store):
    """Rolled back from `newer` to `first`, then `first`'s file is damaged: the
    siblings keep serving `first` from memory, and a new worker must not bring
    back `newer`, the version the operator rolled back from."""
    first = artifact.read_current(store_copy)
    publish_copy(store_copy, trained_store, 2)
    with artifact.publish_lock(store_copy):
        artifact.set_current(store_copy, first)
    flip_one_byte(store_copy, first)

    store = ModelStore(store_copy)
    store.refresh()

    assert store.predictor is None
    assert "does not match its metadata" in store.problem


def test_a_rollback_made_by_editing_current_counts_as_one(store_copy,
                                                         trained_store):
    """CURRENT set back to `first` by hand, then `first` damaged: a new worker does
    not bring back `newer`, which the hand edit rolled back from."""
    first = artifact.read_current(store_copy)
    publish_copy(store_copy, trained_store, 2)
    point_current_at(store_copy, first + "\n")
    flip_one_byte(store_copy, first)

    store = ModelStore(store_copy)
    store.refresh()

    assert store.predictor is None
    assert "does not match its metadata" in store.problem


def test_a_worker_finding_current_removed_says_what_to_publish(store_copy):
    (store_copy / artifact.CURRENT).unlink()

    store = ModelStore(store_copy)
    store.refresh()

    assert store.predictor is None
    assert "CURRENT is missing from" in store.problem
    assert "python -m training.versions publish" in store.problem


def test_with_no_good_version_left_a_new_worker_stays_unready(store_copy,
                                                             trained_store):
    only = artifact.read_current(store_copy)
    flip_one_byte(store_copy, only)

    store = ModelStore(store_copy)
    store.refresh()

    assert store.predictor is None
    assert "does not match its metadata" in store.problem


@pytest.mark.parametrize("record", [True, False],
                         ids=["published record", "store without the record"])
def test_a_worker_started_after_current_was_garbled_serves_the_newest_version(
        store_copy, trained_store, record):
    newest = publish_copy(store_copy, trained_store, 2)
    point_current_at(store_copy, "../../etc/passwd\n")
    if not record:  # a store written before PUBLISHED existed: the newest promoted
        (store_copy / artifact.PUBLISHED).unlink()

    store = ModelStore(store_copy)
    store.refresh()
    store.refresh()

    assert store.serving().version == newest
