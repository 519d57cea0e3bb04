"""The gunicorn worker's share-out of connections (service/worker.py), on its own and
in a real gunicorn with two workers."""

import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from service.worker import ConnectionShares, write_json_error
from tests.conftest import FakeClock, ROOT


def test_a_claimed_slot_counts_only_once_its_worker_serves():
    shares = ConnectionShares()
    first, second = shares.claim(), shares.claim()

    assert (first, second) == (0, 1)
    assert shares.least_loaded_elsewhere(first) is None
    shares.publish(second, 0, now=5.0)
    assert shares.least_loaded_elsewhere(first) == (0, second)
    assert shares.passes[second] == 5.0


def test_the_least_loaded_sibling_is_never_the_asking_worker():
    shares = ConnectionShares()
    slots = [shares.claim() for _ in range(3)]
    for slot, connections in zip(slots, (9, 4, 6)):
        shares.publish(slot, connections, now=1.0)

    assert shares.least_loaded_elsewhere(slots[0]) == (4, slots[1])
    assert shares.least_loaded_elsewhere(slots[1]) == (6, slots[2])


def test_a_released_slot_no_longer_counts_and_is_claimed_again():
    shares = ConnectionShares()
    alone, gone = shares.claim(), shares.claim()
    shares.publish(gone, 0, now=1.0)

    shares.release(gone)

    assert shares.least_loaded_elsewhere(alone) is None
    assert shares.claim() == gone


def test_a_worker_beyond_the_slots_gets_none_and_releasing_none_is_harmless():
    shares = ConnectionShares()
    for _ in range(ConnectionShares.SLOTS):
        shares.claim()

    assert shares.claim() is None
    shares.release(None)


def test_the_answer_to_malformed_http_is_json_that_may_not_be_sniffed():
    server, client = socket.socketpair()
    with server, client:
        write_json_error(server, 400, "Bad Request", "Invalid header name: '<b>'")
        head, _, body = client.recv(4096).partition(b"\r\n\r\n")

    assert b"\r\nContent-Type: application/json\r\n" in head
    assert b"\r\nX-Content-Type-Options: nosniff\r\n" in head
    assert json.loads(body)["code"] == "bad_request"


def open_sockets(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass  # closed between the listing and the read
    return count


def worker_pids(master: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                pids.append(int(entry.name))
    return pids


@pytest.mark.integration
def test_connections_opened_at_once_are_shared_out_between_the_workers(
        live_server, trained_store):
    server = live_server(trained_store, SALES_FORECAST_WORKERS=2)
    deadline = time.monotonic() + 30
    # Ready is one worker ready; each worker logs its model once it has loaded it.
    while server.log().count("serving model version") < 2:
        assert time.monotonic() < deadline, "the second worker never loaded the model"
        time.sleep(0.05)
    # A worker logs its model just before it enters its loop and publishes its count;
    # until then it is no sibling to share with.
    time.sleep(0.5)
    workers = worker_pids(server.process.pid)
    idle = {pid: open_sockets(pid) for pid in workers}

    # All at once, as a load balancer or a benchmark opens its keep-alive pool;
    # each asks once, so it is accepted and served before the count.
    clients = [socket.create_connection(("127.0.0.1", server.port), timeout=10)
               for _ in range(16)]
    try:
        for client in clients:
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        for client in clients:
            assert client.recv(64).startswith(b"HTTP/1.1 200")
        held = {pid: open_sockets(pid) - idle[pid] for pid in workers}
    finally:
        for client in clients:
            client.close()

    # Without the share-out one worker usually takes 14 to 16 of them; with it the
    # split is 8/8 to 12/4 (a sibling busy with its own share misses some pauses).
    assert sum(held.values()) == 16
    assert min(held.values()) >= 3, held


@pytest.mark.integration
def test_static_files_go_out_whole_on_a_kept_alive_connection(live_server,
                                                              trained_store):
    # gunicorn sends files with socket.sendfile, which refuses a socket left
    # non-blocking; the worker applies the mode it asked for only when needed.
    server = live_server(trained_store)
    expected = (ROOT / "service" / "static" / "page.js").read_bytes()

    with requests.Session() as session:
        for _ in range(3):
            answer = session.get(server.url + "/static/page.js", timeout=10)
            assert answer.status_code == 200
            assert answer.content == expected


def paused_worker(monkeypatch, sibling_last_pass: float):
    """A worker holding more connections than its one sibling, whose loop last went
    round at `sibling_last_pass`; taking a connection and gthread's listener switch
    record what they are asked instead of touching sockets."""
    from gunicorn.workers import gthread

    from service import worker

    calls = []
    monkeypatch.setattr(worker.ThreadWorker, "_take",
                        lambda self, listener: calls.append("accepted"))
    monkeypatch.setattr(gthread.ThreadWorker, "set_accept_enabled",
                        lambda self, enabled: calls.append(f"listening={enabled}"))
    clock = FakeClock()
    monkeypatch.setattr(worker.time, "monotonic", clock)
    shares = ConnectionShares()
    mine, sibling = shares.claim(), shares.claim()
    shares.publish(sibling, 0, now=sibling_last_pass)
    busy = object.__new__(worker.ThreadWorker)  # no gunicorn arbiter behind it
    busy.shares, busy.share_slot, busy.nr_conns = shares, mine, 3
    busy._accept_paused_until = busy._no_pause_until = 0.0
    busy._accept_anyway, busy._sibling = False, None
    return busy, calls, clock


def test_a_stopped_sibling_is_not_waited_for_again_at_once(monkeypatch):
    """A stopped or stuck sibling looks least loaded for ever; once a connection
    waited out a whole pause and the sibling has not been round its loop for a
    while, the next connections are taken without pausing for a while."""
    from service import worker

    busy, calls, clock = paused_worker(monkeypatch, sibling_last_pass=100.0)
    clock.now = 100.0 + worker.SIBLING_STUCK * 2

    busy.accept(None)
    assert calls == ["listening=False"]  # paused, left to the sibling

    calls.clear()
    busy._accept_anyway = True  # the pause ended with the connection still queued
    busy.accept(None)
    clock.now += worker.SIBLING_BACKOFF / 2
    busy.accept(None)
    assert calls == ["accepted", "accepted"]

    calls.clear()
    clock.now += worker.SIBLING_BACKOFF
    busy.accept(None)
    assert calls == ["listening=False"]  # the sibling gets its chance again


def test_a_busy_sibling_keeps_its_share_of_new_connections(monkeypatch):
    """A sibling that went round its loop recently is only busy: a connection it left
    waiting through a pause is taken, and the next one is paused for again."""
    from service import worker

    busy, calls, clock = paused_worker(monkeypatch, sibling_last_pass=100.0)
    clock.now = 100.0 + worker.SIBLING_STUCK / 2

    busy.accept(None)
    busy._accept_anyway = True
    busy.accept(None)
    busy.accept(None)

    assert calls == ["listening=False", "accepted", "listening=False"]


def read_answer(stream) -> tuple[int, bytes]:
    """One HTTP/1.1 answer from a socket's file object: status and body."""
    line = stream.readline()
    assert line, "the server closed the connection without an answer"
    status = int(line.split()[1])
    length = 0
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, stream.read(length)


@pytest.mark.integration
def test_a_kept_alive_connection_does_not_keep_the_only_thread(live_server,
                                                               trained_store):
    # A pool thread waits a moment for the next request on the connection it served
    # while the worker has no more connections than threads; an idle client must
    # not hold it beyond that.
    server = live_server(trained_store, SALES_FORECAST_WORKERS=1,
                         SALES_FORECAST_THREADS=1)
    request = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    other = None
    try:
        idle_stream = idle.makefile("rb")
        idle.sendall(request)
        assert read_answer(idle_stream)[0] == 200

        # Connected only now, while the thread may be waiting on the idle one.
        started = time.monotonic()
        other = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        other_stream = other.makefile("rb")
        other.sendall(request)
        assert read_answer(other_stream)[0] == 200
        assert time.monotonic() - started < 2

        idle.sendall(request)  # and the idle one is still served afterwards
        assert read_answer(idle_stream)[0] == 200
    finally:
        idle.close()
        if other is not None:
            other.close()


@pytest.mark.integration
def test_requests_sent_together_on_one_connection_are_answered_in_order(
        live_server, trained_store):
    server = live_server(trained_store)
    body = b'{"instances": [{"date": "1990-01"}]}'
    requests_ = [
        b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n",
        b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body,
        b"GET /nothing-here HTTP/1.1\r\nHost: test\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n",
    ]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
        client.sendall(b"".join(requests_))
        stream = client.makefile("rb")
        answers = [read_answer(stream) for _ in requests_]

    assert [status for status, _ in answers] == [200, 200, 404, 200]
    assert b"predictions" in answers[1][1]


def test_a_second_quit_signal_does_not_run_the_handler_again(monkeypatch):
    """Ctrl-C reaches a worker, then the master's SIGQUIT does: the second must not
    run gthread's handler inside the first (its pool shutdown takes a lock that is
    not re-entrant)."""
    import signal

    from gunicorn.workers import gthread

    from service import worker

    calls = []
    monkeypatch.setattr(gthread.ThreadWorker, "handle_quit",
                        lambda self, sig, frame: calls.append(sig))
    quitting = object.__new__(worker.ThreadWorker)  # no gunicorn arbiter behind it
    quitting._quitting = False

    quitting.handle_quit(signal.SIGINT, None)
    quitting.handle_quit(signal.SIGQUIT, None)

    assert calls == [signal.SIGINT]


HEAD = b"POST /forecast HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize("data, complete", [
    (b"GET /healthz HTTP/1.1\r\nHost: x", False),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", True),
    (HEAD + b"Content-Length: 12\r\n\r\n" + b'{"horizon":', False),
    (HEAD + b"Content-Length: 12\r\n\r\n" + b'{"horizon":1}', True),
    (HEAD + b"content-length : 2\r\n\r\n{}", True),
    # What the thread's parser reads or refuses: no reason to wait in the loop.
    (HEAD + b"Content-Length: 999999\r\n\r\n", True),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\n", True),
    (HEAD + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n", True),
    (HEAD + b"Content-Length: ten\r\n\r\n", True),
    (HEAD + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n", True),
    (b"GET / HTTP/1.1\nHost: x\n\n", True),
], ids=["half a head", "head", "half a body", "body", "spaced name",
        "body past the gather limit", "chunked", "expect", "bad length",
        "two lengths", "bare line feeds"])
def test_a_request_is_complete_when_a_thread_would_not_wait_for_it(data, complete):
    from service.worker import request_complete

    assert request_complete(data) is complete


def test_a_timeout_gunicorn_left_on_the_socket_does_not_make_gathering_wait():
    # gunicorn drains an unread body with a timeout on the socket, then asks for
    # blocking mode again; the timeout stayed on the real socket, and Python waits
    # up to a socket's timeout before a read even with MSG_DONTWAIT: the event
    # loop's read of the next request then stopped the whole worker for seconds.
    from service.worker import DeadlineSocket

    server, client = socket.socketpair()
    try:
        sock = DeadlineSocket(server)
        sock.start()
        sock.settimeout(3.0)  # what gunicorn's drain asks for ...
        late = threading.Timer(0.05, client.sendall, [b"x"])
        late.start()
        assert sock.recv(1) == b"x"
        late.join()
        # ... around a read that had to wait (the body came after the answer)
        sock.settimeout(None)
        sock.stop()
        sock.setblocking(False)  # back to the event loop

        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        still_open = sock.gather()
        waited = time.monotonic() - started
    finally:
        server.close()
        client.close()

    assert still_open is True
    assert bytes(sock.gathered).startswith(b"GET /healthz")
    assert waited < 1.0


def test_an_answer_the_client_does_not_read_ends_as_a_quiet_broken_pipe(
        monkeypatch):
    # gunicorn logs a client gone (EPIPE, ECONNRESET) at debug level and any other
    # socket error with a traceback: one line of ERROR per slow reader.
    import errno

    from service import worker

    monkeypatch.setattr(worker, "RECEIVE_LIMIT", 0.2)
    server, client = socket.socketpair()
    try:
        sock = worker.DeadlineSocket(server)
        sock.start()
        with pytest.raises(BrokenPipeError) as cut:
            sock.sendall(b"x" * (16 * 1024 * 1024))  # more than the buffers hold
    finally:
        server.close()
        client.close()

    assert cut.value.errno == errno.EPIPE


def test_a_file_the_client_does_not_read_is_cut_off_at_the_write_deadline(
        monkeypatch, tmp_path):
    # gunicorn sends static files with sendfile on the real socket, which waited
    # for as long as the client did not read: a thread held for ever.
    from service import worker

    monkeypatch.setattr(worker, "RECEIVE_LIMIT", 0.2)
    path = tmp_path / "large"
    path.write_bytes(b"x" * (16 * 1024 * 1024))  # more than the buffers hold
    server, client = socket.socketpair()
    outcome = []

    def send():
        sock = worker.DeadlineSocket(server)
        sock.start()
        with open(path, "rb") as file:
            try:
                sock.sendfile(file, offset=0, count=path.stat().st_size)
            except BrokenPipeError:
                outcome.append("cut off")

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    sender.join(5)
    server.close()  # ends the send if it still waits
    client.close()
    sender.join(5)

    assert outcome == ["cut off"]


def test_a_file_goes_out_whole_from_its_offset(tmp_path):
    from service import worker

    path = tmp_path / "page"
    path.write_bytes(bytes(range(256)) * 4000)
    server, client = socket.socketpair()
    received = bytearray()

    def read():
        while data := client.recv(65536):
            received.extend(data)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        sock = worker.DeadlineSocket(server)
        sock.start()
        with open(path, "rb") as file:
            assert sock.sendfile(file, offset=10, count=900_000) == 900_000
        server.shutdown(socket.SHUT_WR)
        reader.join(5)
    finally:
        server.close()
        client.close()

    assert bytes(received) == path.read_bytes()[10:900_010]


def test_gathering_what_is_there_takes_one_read():
    # A second read after a short one nearly always finds nothing: a system call
    # per request for nothing, now that a kept-alive connection's next request is
    # gathered too.
    from service.worker import DeadlineSocket

    class Peer:
        def __init__(self):
            self.reads = 0
            self.waiting = [b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"]

        def gettimeout(self):
            return 0.0

        def recv(self, size, flags=0):
            self.reads += 1
            if not self.waiting:
                raise BlockingIOError
            return self.waiting.pop(0)

    peer = Peer()
    sock = DeadlineSocket(peer)

    assert sock.gather() is True
    assert bytes(sock.gathered).startswith(b"GET /healthz")
    assert peer.reads == 1


@pytest.mark.integration
def test_a_body_sent_after_its_answer_does_not_stall_the_worker(live_server,
                                                                 trained_store):
    # A request answered before its body arrived (405 here): gunicorn drains the
    # body with a timeout on the socket. Each later request on that connection
    # was answered 5 s late, and the worker's event loop, every connection of the
    # worker with it, stood still meanwhile. A thread takes such a request once
    # its head is in only when the head and the body pass the gather limit; this
    # body does, yet is short enough for gunicorn to drain.
    from service.worker import GATHER_LIMIT

    server = live_server(trained_store, SALES_FORECAST_WORKERS=1)
    healthz = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"
    body = b"x" * (GATHER_LIMIT - 40)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
        stream = client.makefile("rb")
        client.sendall(healthz + b"PUT /forecast HTTP/1.1\r\nHost: test\r\n"
                       b"Content-Type: application/json\r\nContent-Length: "
                       + str(len(body)).encode() + b"\r\n\r\n")
        assert read_answer(stream)[0] == 200
        assert read_answer(stream)[0] == 405
        client.sendall(body)
        time.sleep(0.2)  # the body is drained; the connection waits in the loop

        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as other:
            took = []
            for sock, answers in ((client, stream), (other, other.makefile("rb"))):
                started = time.monotonic()
                sock.sendall(healthz)
                assert read_answer(answers)[0] == 200
                took.append(time.monotonic() - started)

    assert max(took) < 2, took


@pytest.mark.integration
@pytest.mark.parametrize("part, rest, status", [
    (b"G", b"ET /healthz HTTP/1.1\r\nHost: test\r\n\r\n", 200),
    (b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json"
     b"\r\nContent-Length: 36\r\n\r\n", b'{"instances": [{"date": "1990-01"}]}',
     200),
], ids=["a byte of a head", "a head without its body"])
def test_part_of_a_request_sent_behind_another_holds_no_thread(
        live_server, trained_store, part, rest, status):
    # The thread that answered the first request read the start of the next one
    # with it, and waited for the rest until the receive deadline, 5 s: a few
    # such clients, one per thread, kept every other client waiting that long.
    server = live_server(trained_store, SALES_FORECAST_WORKERS=1,
                         SALES_FORECAST_THREADS=1)
    healthz = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as slow:
        slow_answers = slow.makefile("rb")
        slow.sendall(healthz + part)
        assert read_answer(slow_answers)[0] == 200
        time.sleep(0.2)  # the rest of the slow client's request is awaited

        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.port),
                                      timeout=10) as other:
            other.sendall(healthz)
            assert read_answer(other.makefile("rb"))[0] == 200
        took = time.monotonic() - started

        slow.sendall(rest)  # and the request, once whole, is answered
        assert read_answer(slow_answers)[0] == status

    assert took < 2, took


def closing_worker(monkeypatch):
    """A worker with just what closing a connection needs: its poller, its lists of
    connections, and a clock that moves only when the test sets it."""
    import selectors
    from collections import deque

    from service import worker

    clock = FakeClock()
    monkeypatch.setattr(worker.time, "monotonic", clock)
    closing = object.__new__(worker.ThreadWorker)  # no gunicorn arbiter behind it
    closing.poller = selectors.DefaultSelector()
    closing.pending_conns, closing._gathering, closing._lingering = deque(), {}, {}
    return closing, clock


def dispatch(worker_) -> None:
    """One pass of the worker's event loop over what is ready now."""
    for key, _ in worker_.poller.select(0.5):
        key.data(key.fileobj)


def test_closing_a_connection_does_not_wait_for_the_client_to_close(monkeypatch):
    # gthread closes a connection whose answer said "close" from its event loop,
    # in a read that waits up to 2 s for the client to close its side: a client
    # that kept it open stopped every connection of the worker that long.
    from service import worker

    closing, clock = closing_worker(monkeypatch)
    server, client = socket.socketpair()
    client.settimeout(2)
    try:
        conn = worker.Connection(closing._linger, None, server, None, None)
        conn.sock = worker.DeadlineSocket(server)
        started = time.perf_counter()
        conn.close(graceful=True)
        assert time.perf_counter() - started < 0.5

        assert client.recv(1) == b""  # the client sees the end of the answer
        client.sendall(b"sent before it saw the end")
        dispatch(closing)
        assert server.fileno() != -1  # dropped, still waiting for the client's end

        clock.now += worker.LINGER_SECONDS
        closing.murder_pending()
        assert server.fileno() == -1
        assert not closing._lingering
    finally:
        server.close()
        client.close()


def test_a_closing_connection_closes_once_the_client_closes(monkeypatch):
    from service import worker

    closing, _ = closing_worker(monkeypatch)
    server, client = socket.socketpair()
    conn = worker.Connection(closing._linger, None, server, None, None)
    conn.sock = worker.DeadlineSocket(server)
    conn.close(graceful=True)
    client.close()
    dispatch(closing)

    assert server.fileno() == -1
    assert not closing._lingering
    assert not closing.poller.get_map()


@pytest.mark.integration
def test_clients_that_keep_closed_connections_open_do_not_stall_the_worker(
        live_server, trained_store):
    server = live_server(trained_store, SALES_FORECAST_WORKERS=1,
                         SALES_FORECAST_THREADS=1)
    closing = [socket.create_connection(("127.0.0.1", server.port), timeout=10)
               for _ in range(3)]
    try:
        for client in closing:
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n"
                           b"Connection: close\r\n\r\n")
        time.sleep(0.2)  # answered; kept open, each stopped the loop for 2 s
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.port),
                                      timeout=10) as other:
            other.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            assert read_answer(other.makefile("rb"))[0] == 200
        took = time.monotonic() - started
        for client in closing:  # each answer whole, then the end of the stream
            assert read_answer(client.makefile("rb")) == (200, b'{"status":"alive"}')
            assert client.recv(1) == b""
    finally:
        for client in closing:
            client.close()

    assert took < 1, took


def refused_unread(body_reader) -> bool:
    """Whether an application that answers 404 without reading the body behind
    `body_reader` has its connection closed."""
    from types import SimpleNamespace

    from gunicorn.http.body import Body

    from service.worker import closing_after_unread_body

    request = SimpleNamespace(body=Body(body_reader), must_close=False)
    environ = {"gunicorn.socket": SimpleNamespace(request=request)}

    def not_found(environ_, start_response):
        start_response("404 NOT FOUND", [])
        return [b"{}"]

    closing_after_unread_body(not_found)(environ, lambda *args: None)
    return request.must_close


@pytest.mark.parametrize("length, closes", [
    (0, False), (2, False), (64 * 1024 - 1, False), (64 * 1024, True),
    (1024 * 1024, True),
], ids=["no body", "small", "just under the drain limit", "at it", "a megabyte"])
def test_an_answer_leaving_more_body_than_gunicorn_skips_closes(length, closes):
    # gunicorn gives up skipping an unread body after 64 KiB and closes the
    # connection, after an answer that had announced keep-alive: the request the
    # client sent behind the body went unanswered.
    from gunicorn.http.body import LengthReader

    assert refused_unread(LengthReader(None, length)) is closes


def test_an_answer_leaving_a_chunked_body_unread_closes():
    from gunicorn.http.body import ChunkedReader
    from gunicorn.http.unreader import IterUnreader

    chunked = ChunkedReader(None, IterUnreader([b"5\r\nhello\r\n0\r\n\r\n"]))
    assert refused_unread(chunked) is True


@pytest.mark.integration
def test_a_request_behind_a_long_unread_body_is_answered_or_told_to_go_elsewhere(
        live_server, trained_store):
    server = live_server(trained_store, SALES_FORECAST_WORKERS=1)
    body = b"x" * 300_000  # under the 2 MiB limit, over what gunicorn skips
    healthz = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
        client.sendall(b"POST /nothing-here HTTP/1.1\r\nHost: test\r\n"
                       b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
                       + body + healthz)
        stream = client.makefile("rb")
        status = stream.readline()
        head = b""
        while (line := stream.readline()) not in (b"\r\n", b""):
            head += line.lower()

    assert status.startswith(b"HTTP/1.1 404")
    assert b"connection: close" in head, head
