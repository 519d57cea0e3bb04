"""Hostile and broken requests: each gets a 4xx in the one error shape, and the
service keeps serving everyone else.

Bodies (oversized, deeply nested, NaN, huge numbers, control characters, lone
surrogates, too many rows) go through the Flask app; malformed HTTP and slow clients
go to real gunicorn over raw sockets, since only the server sees those.
"""

import gzip
import json
import socket
import threading
import time

import pytest

from bench.traffic import Traffic, summarize
from service.http import MAX_BODY_BYTES, MAX_ROWS
from training import artifact
from training.unpickle import load_model

V2_INFER = "/v2/models/sales-forecast/infer"


def error_of(response) -> dict:
    body = json.loads(response.data if hasattr(response, "data") else response)
    assert set(body) == {"error", "code"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert len(body["error"]) < 1000, "an error must not echo a huge input back"
    return body


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


HOSTILE_BODIES = {
    "nan": ("/forecast", '{"horizon": NaN}'),
    "infinity": ("/forecast", '{"horizon": Infinity}'),
    "minus-infinity": ("/forecast", '{"horizon": -Infinity}'),
    "overflowing-float": ("/forecast", '{"horizon": 1e999}'),
    "integer-past-64-bits": ("/forecast", '{"horizon": 1' + "0" * 400 + "}"),
    "huge-horizon": ("/forecast", '{"horizon": 100000000000}'),
    "negative-horizon": ("/forecast", '{"horizon": -1}'),
    "fractional-horizon": ("/forecast", '{"horizon": 12.5}'),
    "boolean-horizon": ("/forecast", '{"horizon": true}'),
    "string-horizon": ("/forecast", '{"horizon": "12"}'),
    "nested-100k-deep": ("/forecast", nested(100_000)),
    "nested-in-a-field": ("/forecast", '{"horizon": ' + nested(5_000) + "}"),
    "not-an-object": ("/forecast", "[1, 2, 3]"),
    "empty-body": ("/forecast", ""),
    "invalid-utf8": ("/forecast", b'{"series": "\xff\xfe"}'),
    "lone-surrogate": ("/forecast", '{"series": "\\ud800"}'),
    "nul-in-series": ("/forecast", '{"series": "\\u0000"}'),
    "escape-codes-in-series": ("/forecast", '{"series": "\\u001b[2J\\u001b[31mred"}'),
    "newline-in-series": ("/forecast", '{"series": "a\\nlevel=error fake log"}'),
    "megabyte-series-name": ("/forecast", json.dumps({"series": "x" * 1_000_000})),
    "unknown-field": ("/forecast", '{"horizon": 3, "horizn": 3}'),
    "too-many-rows": ("/predict", json.dumps(
        {"instances": [{"date": "1990-01"}] * (MAX_ROWS + 1)})),
    "row-not-an-object": ("/predict", '{"instances": [1]}'),
    "nan-date": ("/predict", '{"instances": [{"date": NaN}]}'),
    "month-13": ("/predict", '{"instances": [{"date": "1990-13"}]}'),
    "arabic-digits": ("/predict", '{"instances": [{"date": "١٩٩٠-01"}]}'),
    "far-future": ("/predict", '{"instances": [{"date": "9999-12"}]}'),
    "v2-too-many-values": (V2_INFER, json.dumps({"inputs": [{
        "name": "date", "shape": [MAX_ROWS + 1], "datatype": "BYTES",
        "data": ["1990-01"] * (MAX_ROWS + 1)}]})),
    "v2-shape-lies": (V2_INFER, json.dumps({"inputs": [{
        "name": "date", "shape": [1000000], "datatype": "BYTES",
        "data": ["1990-01"]}]})),
    "v2-unhashable-name": (V2_INFER, json.dumps({"inputs": [{
        "name": {}, "shape": [1], "datatype": "BYTES", "data": ["1990-01"]}]})),
}


@pytest.mark.parametrize("path,body", HOSTILE_BODIES.values(),
                         ids=HOSTILE_BODIES.keys())
def test_a_hostile_body_gets_a_4xx_in_the_one_error_shape(client, path, body):
    response = client.post(path, data=body, content_type="application/json")

    assert response.status_code in (400, 404), response.data[:300]
    error_of(response)


def test_a_v2_shape_of_many_dimensions_is_refused_at_once(client):
    # Multiplying 200,000 dimensions together took about 10 s of CPU, and the
    # message quoted all of them back.
    body = json.dumps({"inputs": [{"name": "date", "shape": [99_999_999] * 200_000,
                                   "datatype": "BYTES", "data": ["1990-01"]}]})

    started = time.monotonic()
    response = client.post(V2_INFER, data=body, content_type="application/json")

    assert time.monotonic() - started < 2
    assert response.status_code == 400
    assert "does not match its 1 values" in error_of(response)["error"]


def test_a_body_over_the_limit_is_refused_with_413(client):
    response = client.post("/forecast", data=b" " * (MAX_BODY_BYTES + 1),
                           content_type="application/json")

    assert response.status_code == 413
    assert error_of(response)["code"] == "request_entity_too_large"


def test_the_largest_allowed_batch_is_answered(client):
    rows = [{"date": f"{1980 + i % 14}-{i % 12 + 1:02d}"} for i in range(MAX_ROWS)]

    response = client.post("/predict", json={"instances": rows})

    assert response.status_code == 200
    assert len(response.get_json()["predictions"]) == MAX_ROWS


def test_a_request_id_with_control_characters_is_not_echoed(client):
    response = client.get("/healthz", headers={"X-Request-ID": "abc\x1b[31m"})

    assert response.headers["X-Request-ID"].isalnum()


def test_debug_mode_stays_off_and_errors_carry_no_detail(trained_store, monkeypatch):
    from service.app import create_app
    from service.config import Settings

    monkeypatch.setenv("FLASK_DEBUG", "1")
    app = create_app(Settings(model_dir=trained_store), watch=False)

    @app.get("/fail")
    def fail():
        raise RuntimeError("internal detail")

    response = app.test_client().get("/fail")
    assert app.debug is False
    assert response.status_code == 500
    assert "internal detail" not in error_of(response)["error"]


def test_every_model_kind_loads_through_the_allow_list(tmp_path):
    from tests.conftest import WINEIND, train
    from training.models import MODEL_KINDS

    for kind in MODEL_KINDS:
        store = tmp_path / kind
        assert train(WINEIND, store, "--model", kind) == 0, kind
        version = artifact.read_current(store)
        load_model(store / artifact.VERSIONS / version / artifact.MODEL_FILE)


# Real gunicorn ----------------------------------------------------------------------

def read_answer(sock: socket.socket) -> bytes:
    """One HTTP answer: up to its Content-Length, or until the server closes."""
    answer = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
            if b"\r\n\r\n" in answer:
                head, _, rest = answer.partition(b"\r\n\r\n")
                length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")]
                if length and len(rest) >= length[0]:
                    break
    except ConnectionResetError:
        pass
    return answer


def raw_exchange(port: int, payload: bytes, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        return read_answer(sock)


def status_and_body(answer: bytes) -> tuple[int, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


GET = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
MALFORMED = {
    "garbage-request-line": b"GARBAGE\r\n\r\n",
    "unknown-http-version": b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
    "request-line-too-long": b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "header-too-long": GET + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n",
    "too-many-headers": GET + b"".join(b"X-%d: 1\r\n" % i for i in range(60)) + b"\r\n",
    "space-in-header-name": GET + b"Bad Header: 1\r\n\r\n",
    "nul-in-header": GET + b"X-A: a\x00b\r\n\r\n",
    "negative-content-length": b"POST /forecast HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Length: -1\r\n\r\n",
    "non-numeric-content-length": b"POST /forecast HTTP/1.1\r\nHost: x\r\n"
                                  b"Content-Length: ten\r\n\r\n",
    "length-and-chunked": b"POST /forecast HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bad-chunk-size": b"POST /forecast HTTP/1.1\r\nHost: x\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    # Trailers are read with the body, by the application's read, not the parser.
    **{f"bad-trailer-{name}": b"POST /forecast HTTP/1.1\r\nHost: x\r\n"
       b"Transfer-Encoding: chunked\r\n\r\nd\r\n{\"horizon\":1}\r\n0\r\n"
       + trailer + b"\r\n\r\n"
       for name, trailer in {"no-colon": b"Trailer x", "space-in-name": b"X Y: 1",
                             "nul": b"X-A: a\x00b",
                             "huge": b"X-A: " + b"a" * 20000}.items()},
}
# Bytes with no line end never make a request line: there is nothing to answer, and
# the connection must simply be closed at the receive deadline.
TLS_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40


@pytest.mark.integration
def test_malformed_http_gets_a_4xx_json_error_and_nothing_breaks(live_server,
                                                                trained_store):
    server = live_server(trained_store)
    # Ready means one worker is; the other may not have logged its start yet, and
    # counted later it would look like a worker replaced after a crash.
    deadline = time.monotonic() + 30
    while server.log().count("Booting worker") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers_before = server.log().count("Booting worker")

    statuses = {}
    for name, payload in MALFORMED.items():
        status, body = status_and_body(raw_exchange(server.port, payload))
        statuses[name] = status
        assert 400 <= status < 500 or status == 501, (name, status, body[:200])
        error_of(body)
    print("\n" + ", ".join(f"{k}: {v}" for k, v in statuses.items()))
    started = time.monotonic()
    assert raw_exchange(server.port, TLS_HELLO, timeout=30) == b""
    assert time.monotonic() - started < 15

    assert raw_exchange(server.port, GET + b"\r\n").startswith(b"HTTP/1.1 200")
    assert server.process.poll() is None
    # Neither credentials, query strings nor bodies reach the log.
    secret = b'{"horizon": 3, "series": "SECRET-IN-BODY"}'
    raw_exchange(server.port, b"POST /forecast?token=SECRET-IN-QUERY HTTP/1.1\r\n"
                 b"Host: x\r\nAuthorization: Bearer SECRET-IN-HEADER\r\n"
                 b"Content-Type: application/json\r\nContent-Length: "
                 + str(len(secret)).encode() + b"\r\n\r\n" + secret)
    assert "SECRET-IN" not in server.log()
    assert server.log().count("Booting worker") == workers_before
    assert "Traceback" not in server.log()


@pytest.mark.integration
def test_an_oversized_body_is_refused_before_it_is_sent(live_server, trained_store):
    server = live_server(trained_store)

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /forecast HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\n"
                     + f"Content-Length: {50 * MAX_BODY_BYTES}\r\n\r\n".encode())
        answer = read_answer(sock)
        waited = time.monotonic() - started

    status, body = status_and_body(answer)
    assert status == 413 and waited < 5
    error_of(body)
    # The unread body is never skipped as if it were the next request: the answer
    # says the connection ends (it used to say keep-alive and then close anyway).
    assert b"\r\nConnection: close\r\n" in answer.split(b"\r\n\r\n")[0] + b"\r\n"


@pytest.mark.integration
def test_an_oversized_body_is_not_invited_by_100_continue(live_server, trained_store):
    server = live_server(trained_store)

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /forecast HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                     + f"Content-Length: {50 * MAX_BODY_BYTES}\r\n\r\n".encode())
        answer = read_answer(sock)

    # The refusal comes first: a client waiting for "100 Continue" never sends the
    # 100 MB (it used to be invited, then refused unread).
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in answer

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        body = b'{"horizon": 2}'
        sock.sendall(b"POST /forecast HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode())
        invited = sock.recv(100)
        sock.sendall(body)
        answer = read_answer(sock)

    # A body within the limit is still invited, then answered.
    assert invited == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert status_and_body(answer)[0] == 200


@pytest.mark.integration
@pytest.mark.parametrize("path", ["/no/such/page", "/healthz"],
                         ids=["not-found", "method-not-allowed"])
def test_any_answer_to_an_uninvited_oversized_body_closes_the_connection(
        live_server, trained_store, path):
    server = live_server(trained_store)

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     f"Content-Length: {2 * MAX_BODY_BYTES}\r\n\r\n".encode())
        answer = read_answer(sock)

    # Answered before the body was read or invited: a keep-alive here promised to
    # read a body the client still held, and the client's next request on the
    # connection went unanswered until the receive deadline closed it.
    assert status_and_body(answer)[0] in (404, 405)
    assert b"\r\nConnection: close\r\n" in answer.split(b"\r\n\r\n")[0] + b"\r\n"


@pytest.mark.integration
def test_an_oversized_chunked_body_is_cut_off_at_the_limit(live_server, trained_store):
    server = live_server(trained_store)
    chunk = b"x" * 65536
    chunks = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * (MAX_BODY_BYTES // 65536 + 2)
    payload = (b"POST /forecast HTTP/1.1\r\nHost: x\r\n"
               b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
               + chunks + b"0\r\n\r\n")

    answer = raw_exchange(server.port, payload)
    status, body = status_and_body(answer)

    assert status == 413
    error_of(body)
    assert b"\r\nConnection: close\r\n" in answer.split(b"\r\n\r\n")[0] + b"\r\n"


@pytest.mark.integration
def test_a_body_cut_off_by_the_deadline_is_refused_and_its_connection_closed(
        live_server, trained_store):
    """The client announces 40 bytes, sends 13 that parse as JSON on their own, and
    stalls past the receive deadline; what it sends afterwards must never be read as
    a request of its own (one connection shared through a proxy)."""
    grace = 1.0
    server = live_server(trained_store, SALES_FORECAST_RECEIVE_GRACE=str(grace))
    body = b'{"horizon":1}'

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /forecast HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 40\r\n\r\n"
                     + body)
        time.sleep(grace + 1.0)
        try:
            sock.sendall(b"GET /model HTTP/1.1\r\nHost: x\r\n\r\n")
        except OSError:
            pass  # already closed: nothing of it can be served
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass

    status, rest = status_and_body(answer)
    assert status == 400
    assert "cut off" in error_of(rest[:rest.index(b"}") + 1])["error"]
    assert b"connection: close" in answer.lower()
    assert answer.count(b"HTTP/1.1 ") == 1  # the late GET was not answered


@pytest.mark.integration
def test_silent_connections_hold_no_thread(live_server, trained_store):
    """Four silent connections per pool thread, opened before any request: a probe
    must still be answered at once, not after the 5 s a thread would wait for each
    one's first byte."""
    server = live_server(trained_store)
    silent = [socket.create_connection(("127.0.0.1", server.port), timeout=10)
              for _ in range(32)]
    try:
        time.sleep(0.5)
        started = time.monotonic()
        answer = raw_exchange(server.port, GET + b"\r\n")
        waited = time.monotonic() - started
    finally:
        for sock in silent:
            sock.close()

    assert answer.startswith(b"HTTP/1.1 200")
    assert waited < 2.0, f"the probe waited {waited:.1f} s behind silent connections"


def trickle(port: int, stop: threading.Event, cut_after: list, stage: str) -> None:
    """One slowloris: send a request a byte every 0.3 s; when the server closes the
    connection, note how long it lasted and start again, until `stop`."""
    request = (b"POST /forecast HTTP/1.1\r\nHost: x\r\n"
               b"Content-Type: application/json\r\nContent-Length: 2000\r\n\r\n"
               + b" " * 2000)
    start_at = request.index(b"\r\n\r\n") + 4 if stage == "body" else 0
    while not stop.is_set():
        sock = socket.create_connection(("127.0.0.1", port), timeout=1)
        opened = time.monotonic()
        sock.sendall(request[:start_at])
        try:
            for i in range(start_at, len(request)):
                if stop.is_set():
                    break
                sock.sendall(request[i:i + 1])
                try:
                    if sock.recv(4096, socket.MSG_PEEK) == b"":
                        break
                except socket.timeout:
                    pass
                except OSError:
                    break
                stop.wait(0.3)
            else:
                continue
        except OSError:
            pass
        finally:
            sock.close()
        if not stop.is_set():
            cut_after.append(time.monotonic() - opened)


@pytest.mark.integration
def test_slow_clients_are_cut_off_and_others_are_still_served(live_server,
                                                             trained_store):
    """12 slow clients (more than the 2 x 3 threads) trickle headers or bodies a byte
    every 0.3 s and reconnect when cut; a normal client must still get every answer
    without waiting for them: their requests are read in the event loop, and take a
    thread only when complete or cut off."""
    grace = 2.0
    server = live_server(trained_store, SALES_FORECAST_RECEIVE_GRACE=str(grace))
    stop, cut_after = threading.Event(), []
    slow = [threading.Thread(target=trickle, daemon=True,
                             args=(server.port, stop, cut_after,
                                   "headers" if i % 2 else "body"))
            for i in range(12)]
    for thread in slow:
        thread.start()
    time.sleep(1.0)

    normal = Traffic(server.url, clients=1, rate=5, timeout=30, max_seconds=60)
    with normal:
        time.sleep(12)
    stop.set()
    for thread in slow:
        thread.join(5)

    results = normal.results
    latencies = sorted(r.finished - r.started for r in results)
    print(f"\nslow clients cut after {min(cut_after):.1f}-{max(cut_after):.1f} s "
          f"({len(cut_after)} cuts); normal client: {summarize(results)}, latency "
          f"median {latencies[len(latencies) // 2]:.2f} s, max {latencies[-1]:.2f} s")
    assert summarize(results)["failed"] == 0 and len(results) >= 20
    assert len(cut_after) >= 12 and max(cut_after) < grace + 2
    # Before, each normal request could wait a receive deadline or more for a thread.
    assert latencies[-1] < grace, f"a normal request waited {latencies[-1]:.1f} s"


@pytest.mark.integration
@pytest.mark.parametrize("sent", ["half the head", "the head and half the body"])
def test_stalled_requests_hold_no_thread(live_server, trained_store, sent):
    """Four stalled requests per pool thread: probes are still answered at once, and
    each stalled one is cut off at its deadline (mid-body with a 400)."""
    server = live_server(trained_store, SALES_FORECAST_RECEIVE_GRACE="3")
    request = (b"POST /forecast HTTP/1.1\r\nHost: x\r\n"
               b"Content-Type: application/json\r\nContent-Length: 40\r\n\r\n"
               b'{"horizon": 12')
    part = request[:30] if sent == "half the head" else request
    stalled = []
    for _ in range(24):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(part)
        stalled.append(sock)
    try:
        time.sleep(0.5)
        waits = []
        for _ in range(3):
            started = time.monotonic()
            answer = raw_exchange(server.port, GET + b"\r\n")
            waits.append(time.monotonic() - started)
            assert answer.startswith(b"HTTP/1.1 200")
        cut = read_answer(stalled[0])
    finally:
        for sock in stalled:
            sock.close()

    print(f"\nprobes behind 24 stalled requests ({sent}): "
          + ", ".join(f"{w * 1000:.1f} ms" for w in waits))
    assert max(waits) < 1.0, f"probes waited {max(waits):.1f} s behind stalled requests"
    if sent == "half the head":
        assert cut == b""  # closed: there is no request to answer
    else:
        status, rest = status_and_body(cut)
        assert status == 400 and b"cut off" in rest


@pytest.mark.parametrize("body", [b'{"series": "\xff\xfe"}', gzip.compress(b"{}")],
                         ids=["invalid-utf8", "gzip"])
def test_a_body_that_is_not_utf8_is_told_so_and_where(client, body):
    error = error_of(client.post("/forecast", data=body,
                                 content_type="application/json"))["error"]

    assert "not UTF-8 text" in error and "offset" in error
    assert "surrogates" not in error
