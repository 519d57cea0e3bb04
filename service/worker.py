"""gunicorn's `gthread` worker, with a bound on how long a slow client holds a thread.

What stock `gthread` (gunicorn 27) does with a slow client: a new connection gets a
thread only once its first byte arrives (a silent connection waits in the worker's
event loop and is closed after `keepalive` seconds), but from then on the thread
reads the request with a blocking socket and no timeout. A client that sends half a
request and stops, or sends it a byte at a time, holds that thread for as long as it
likes; `threads` x `workers` such clients (8 with the defaults) and every other
client waits forever. gunicorn's `timeout` does not help: it watches the worker's
main loop, which keeps running.

This worker gives each request a receive deadline in the manner of Apache's
mod_reqtimeout: `RECEIVE_GRACE` seconds, extended by one second for every
`MIN_RECEIVE_RATE` bytes received, never beyond `RECEIVE_LIMIT` seconds. A client
that stalls or trickles loses its connection at the deadline (mid-headers: closed;
mid-body: the body ends early and the application answers 400); a client sending
at a normal pace never meets it. Writing the answer has its own deadline,
`RECEIVE_LIMIT` seconds, so a client that never reads cannot hold a thread either.

It also answers requests that gunicorn itself refuses (a malformed request line,
headers over the limits, a bad chunk size) with the service's one error shape,
`{"error", "code"}` as JSON, instead of gunicorn's HTML page.

This bounds each slow client; it does not make many of them free. While more slow
clients than threads are connected, other requests queue for up to the grace period.
A buffering reverse proxy in front (an ingress controller) removes that too.
"""

import json
import socket
import time

from gunicorn import util
from gunicorn.workers import gthread

from service.config import env_float

RECEIVE_GRACE = env_float("RECEIVE_GRACE", 5.0, 0.1)
MIN_RECEIVE_RATE = env_float("MIN_RECEIVE_RATE", 16 * 1024, 1.0)
RECEIVE_LIMIT = env_float("RECEIVE_LIMIT", 60.0, 0.1)


class DeadlineSocket:
    """A client socket whose reads and writes give up at the request's deadline.

    gunicorn's parser, body readers and response writer only call `recv` and
    `sendall` on it; everything else (fileno for the event loop, close, shutdown)
    goes to the real socket. Between requests (`stop`) it is a plain socket again.
    """

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._blocking = True
        self._armed = False
        self._started = None
        self._received = 0

    def start(self) -> None:
        """Bound the next request; its clock starts at its first byte."""
        self._armed = True
        self._started = None
        self._received = 0

    def stop(self) -> None:
        self._armed = False

    def _receive_deadline(self) -> float:
        allowance = RECEIVE_GRACE + self._received / MIN_RECEIVE_RATE
        return self._started + min(allowance, RECEIVE_LIMIT)

    def recv(self, size: int, *flags) -> bytes:
        if not self._armed:
            return self._sock.recv(size, *flags)
        if self._started is None:
            self._started = time.monotonic()
        remaining = self._receive_deadline() - time.monotonic()
        if remaining > 0 and not flags:
            # Bytes already waiting (nearly always: the worker reads a request once
            # the poller saw it arrive) are taken without switching the socket to
            # timeout mode and back, which costs two ioctl calls and a poll per read
            # and releases the GIL each time; only a read that would block waits.
            try:
                data = self._sock.recv(size, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                pass
            else:
                self._received += len(data)
                return data
        try:
            if remaining <= 0:
                raise TimeoutError
            self._sock.settimeout(remaining)
            data = self._sock.recv(size, *flags)
        except TimeoutError:
            # End of stream for the reader: the parser drops a half-read request,
            # a half-read body makes the application answer 400.
            try:
                self._sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass
            return b""
        finally:
            self._sock.setblocking(self._blocking)
        self._received += len(data)
        return data

    def sendall(self, data, *flags) -> None:
        if not self._armed:
            return self._sock.sendall(data, *flags)
        if not flags:
            # An answer that fits in the socket's send buffer (nearly every one)
            # goes out in one non-blocking call, for the same reason as in recv;
            # whatever does not fit is sent below, bounded by the limit.
            try:
                sent = self._sock.send(data, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                sent = 0
            if sent == len(data):
                return None
            data = memoryview(data)[sent:]
        try:
            self._sock.settimeout(RECEIVE_LIMIT)
            return self._sock.sendall(data, *flags)
        except TimeoutError:
            # gunicorn treats a broken pipe as a client gone: closed quietly.
            raise BrokenPipeError("the client did not read the answer in time") \
                from None
        finally:
            self._sock.setblocking(self._blocking)

    def setblocking(self, flag: bool) -> None:
        self._blocking = flag
        self._sock.setblocking(flag)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def write_json_error(sock, status: int, reason: str, message: str) -> None:
    """gunicorn's own error answer (`util.write_error`), in the service's JSON shape."""
    body = json.dumps({
        "error": message or ("Internal error; the server log has details."
                             if status >= 500 else reason),
        "code": "internal" if status >= 500 and not message
        else reason.lower().replace(" ", "_"),
    }).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


class ThreadWorker(gthread.ThreadWorker):
    def init_process(self):
        # gunicorn writes these answers from its base worker through this one
        # module function; replacing it in this worker process is the only hook.
        util.write_error = write_json_error
        super().init_process()

    def handle(self, conn):
        if not isinstance(conn.sock, DeadlineSocket):
            conn.sock = DeadlineSocket(conn.sock)
        conn.sock.start()
        try:
            return super().handle(conn)
        finally:
            conn.sock.stop()
