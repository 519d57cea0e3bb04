"""gunicorn's `gthread` worker, with a bound on how long a slow client holds a thread.

What stock `gthread` (gunicorn 27) does with a slow client: a new connection gets a
pool thread at once, which waits up to 5 s for its first byte before handing it back
to the event loop, and once a byte is there the thread reads the request with a
blocking socket and no timeout. A client that sends half a request and stops, or
sends it a byte at a time, holds that thread for as long as it likes; `threads` x
`workers` such clients (6 with the defaults) and every other client waits forever.
gunicorn's `timeout` does not help: it watches the worker's main loop, which keeps
running.

Here a new connection waits in the event loop until its first byte arrives
(`ThreadWorker._take`; closed after `keepalive` seconds if none does), and the
event loop then reads the request itself until it is complete (`ThreadWorker._gather`,
`request_complete`): its head, and its body when a Content-Length announces one that
fits in `GATHER_LIMIT`. Only then does a pool thread take it, and gunicorn's parser
reads the gathered bytes first. So a silent, stalled or trickling client holds no
thread. Each request has a receive deadline in the manner of Apache's
mod_reqtimeout: `RECEIVE_GRACE` seconds from its first byte, extended by one second
for every `MIN_RECEIVE_RATE` bytes received, never beyond `RECEIVE_LIMIT` seconds. A
client that misses it loses its connection (mid-headers: closed; mid-body: the
application answers 400 and the connection closes); a client sending at a normal
pace never meets it. Writing the answer has its own deadline, `RECEIVE_LIMIT`
seconds, so a client that never reads cannot hold a thread either.

It also answers requests that gunicorn itself refuses (a malformed request line,
headers over the limits, a bad chunk size) with the service's one error shape,
`{"error", "code"}` as JSON, instead of gunicorn's HTML page.

What the event loop does not gather (a body longer than `GATHER_LIMIT` past its first
bytes, a chunked body, a client waiting for "100 Continue") is read by the thread,
bounded by the deadline: many slow clients of that kind still make other requests
wait. So does a body the application answered without reading (a 404, a 405) when
the rest of it has not arrived: the thread waits up to 5 s to skip it before the
connection's next request (gunicorn's drain), where closing the connection at once
would free it. A buffering reverse proxy in front (an ingress controller) removes
these too.

A connection whose answer closes it waits for the client's end in the event loop
(`Connection`, `ThreadWorker._linger`), not in a blocking read there as in gthread.

A pool thread that has served a kept-alive request keeps the connection for its
next request for up to `KEEPALIVE_LINGER_MS`, while the worker has no more
connections than threads (`ThreadWorker._next_request_soon`): handing it back to
the event loop and on to a thread again is much of a small request's cost. It
serves that request only if it arrived whole; the start of one (sent behind the
last request, or within that wait) goes back to the event loop to be gathered.

Last, the workers share new connections out evenly (`ConnectionShares`). All of them
accept from one listening socket, and whichever wakes first takes what is queued: a
client opening 32 keep-alive connections at once could find all 32 on one worker,
whose threads then share one core (one GIL) while the other worker idles. Measured
with wrk on the hello-world route at 32 connections: 1,200-2,000 requests per second
with a 32/0 split, 4,300 with 16/16.
"""

import errno
import json
import mmap
import select
import selectors
import socket
import time
from functools import partial

from gunicorn import util
from gunicorn.http.body import ChunkedReader, LengthReader
from gunicorn.http.parser import _DRAIN_MAX_BYTES as DRAIN_LIMIT
from gunicorn.workers import gthread

from service.config import env_float
from service.http import MAX_BODY_BYTES

RECEIVE_GRACE = env_float("RECEIVE_GRACE", 5.0, 0.1)
MIN_RECEIVE_RATE = env_float("MIN_RECEIVE_RATE", 16 * 1024, 1.0, 1e12)
RECEIVE_LIMIT = env_float("RECEIVE_LIMIT", 60.0, 0.1)
# Bytes of a request the event loop reads before a thread takes it; a request longer
# than this (an upload) gets its thread once this much is in.
GATHER_LIMIT = 64 * 1024
# Bytes of a file (DeadlineSocket.sendfile) read and written in one piece.
SEND_BLOCK = 256 * 1024


def request_complete(data: bytes) -> bool:
    """Whether `data` holds the whole first request, as far as a thread needs to know
    before it takes the connection: its head, and its body when the head gives a
    Content-Length and the request fits in GATHER_LIMIT. Anything this does not
    follow (a longer body, which the thread reads or refuses by its length; a
    chunked body; a client waiting for "100 Continue"; a malformed head) counts as
    complete: gunicorn's parser, in the thread, reads and judges the rest."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        # Bare LF line ends are for the parser to refuse, not to wait on.
        return b"\n\n" in data
    length = None
    for line in bytes(data[:end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name in (b"transfer-encoding", b"expect"):
            return True
        if name == b"content-length":
            value = value.strip()
            if not value.isdigit() or (length is not None and int(value) != length):
                return True
            length = int(value)
    head = end + 4
    return length is None or len(data) - head >= length or head + length > GATHER_LIMIT


def receive_deadline(started: float, received: int) -> float:
    """When a request whose first byte came at `started`, with `received` bytes in so
    far, must be complete."""
    allowance = RECEIVE_GRACE + received / MIN_RECEIVE_RATE
    return started + min(allowance, RECEIVE_LIMIT)


class DeadlineSocket:
    """A client socket whose reads and writes give up at the request's deadline.

    gunicorn's parser, body readers and response writer only call `recv` and
    `sendall` on it; everything else (fileno for the event loop, close, shutdown)
    goes to the real socket. Between requests (`stop`) it is a plain socket again.

    The mode gunicorn asks for (`setblocking`, `settimeout`) is applied to the real
    socket only when a call needs it. gunicorn switches it four times per keep-alive
    request (non-blocking for its poller, blocking for the thread, a timeout around
    the check for unread body bytes and back) and each switch is a system call that
    releases the GIL; the poller does not care about the mode, and the reads and
    writes here mostly do not either (`MSG_DONTWAIT`), so most switches cancel out.
    """

    def __init__(self, sock: socket.socket):
        self._sock = sock
        # What gunicorn last asked for, and what the real socket has; None is
        # blocking, 0.0 non-blocking, else a timeout in seconds.
        self._wanted = self._applied = sock.gettimeout()
        self._armed = False
        self._started = None
        self._received = 0
        # The gunicorn request being read (ThreadWorker.handle_request sets it), and
        # whether the deadline cut its body off; the application answers such a
        # request 400 (service.http.refuse_cut_off_body), and the connection is
        # closed, so bytes the client sends late are never read as a request of
        # their own.
        self.request = None
        self.cut_off = False
        # Bytes of the next request the event loop read before a thread took the
        # connection (ThreadWorker._gather), and when the first of them arrived.
        self.gathered = bytearray()
        self._gather_started = None

    def gather(self) -> bool:
        """Read what the client has sent so far without waiting (the event loop's
        part); False once it has closed its side or reset the connection."""
        while len(self.gathered) < GATHER_LIMIT:
            try:
                data = self._dontwait().recv(GATHER_LIMIT, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                return False
            if not data:
                return False
            if self._gather_started is None:
                self._gather_started = time.monotonic()
            self.gathered += data
            if len(data) < GATHER_LIMIT:
                # All there was: asking again would nearly always find nothing,
                # one more system call per request. Bytes arriving meanwhile
                # leave the socket readable for the next look.
                return True
        return True

    def keep_ahead(self, data: bytes) -> None:
        """Put back bytes of the next request that a reader took from the socket
        with the last one, to be read before anything the socket holds; the
        receive clock of that request starts now if it has not yet."""
        if data:
            self.gathered[:0] = data
            if self._gather_started is None:
                self._gather_started = time.monotonic()

    def gather_deadline(self) -> float:
        """When the request being gathered must be complete."""
        return receive_deadline(self._gather_started or time.monotonic(),
                                len(self.gathered))

    def start(self) -> None:
        """Bound the next request; its clock starts at its first byte (which the
        event loop may have read already)."""
        self._armed = True
        self._started = self._gather_started
        self._received = len(self.gathered)
        self._gather_started = None
        self.cut_off = False

    def stop(self) -> None:
        self._armed = False

    def setblocking(self, flag: bool) -> None:
        self._wanted = None if flag else 0.0

    def settimeout(self, value) -> None:
        if value is not None and not value >= 0:
            raise ValueError(f"timeout must be None or at least 0, got {value!r}")
        self._wanted = value

    def gettimeout(self):
        return self._wanted

    def _apply(self) -> None:
        if self._applied != self._wanted:
            self._sock.settimeout(self._wanted)
            self._applied = self._wanted

    def _set_real(self, value) -> None:
        self._sock.settimeout(value)
        self._applied = value

    def _dontwait(self) -> socket.socket:
        """The real socket, ready for a call with MSG_DONTWAIT. Python waits up to
        a socket's timeout for it to become ready before any call, whatever the
        flags: a read meant not to wait would wait. A timeout is left on it when
        gunicorn asked for one around a blocking read (draining an unread body
        before the next request); in `gather` that wait would stop the event loop,
        and every connection of the worker, for up to that long."""
        if self._applied:  # a timeout; None (blocking) and 0.0 never wait here
            self._set_real(None)
        return self._sock

    def _receive_deadline(self) -> float:
        return receive_deadline(self._started, self._received)

    def recv(self, size: int, *flags) -> bytes:
        if not self._armed:
            self._apply()
            return self._sock.recv(size, *flags)
        if self.gathered and not flags:
            data = bytes(self.gathered[:size])
            del self.gathered[:size]
            return data
        if self._started is None:
            self._started = time.monotonic()
        remaining = self._receive_deadline() - time.monotonic()
        if remaining > 0 and not flags:
            # Bytes already waiting (nearly always: the worker reads a request once
            # the poller saw it arrive) are taken without switching the socket to
            # timeout mode and back, which costs two ioctl calls and a poll per read
            # and releases the GIL each time; only a read that would block waits.
            try:
                data = self._dontwait().recv(size, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                pass
            else:
                self._received += len(data)
                return data
        try:
            if remaining <= 0:
                raise TimeoutError
            self._set_real(remaining)
            data = self._sock.recv(size, *flags)
        except TimeoutError:
            # End of stream for the reader: the parser drops a half-read request;
            # a half-read body is marked, and its request must close the connection.
            self.cut_off = True
            if self.request is not None:
                self.request.must_close = True
            try:
                self._sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass
            return b""
        finally:
            self._apply()
        self._received += len(data)
        return data

    def sendall(self, data, *flags) -> None:
        if not self._armed:
            self._apply()
            return self._sock.sendall(data, *flags)
        if not flags:
            # An answer that fits in the socket's send buffer (nearly every one)
            # goes out in one non-blocking call, for the same reason as in recv;
            # whatever does not fit is sent below, bounded by the limit.
            try:
                sent = self._dontwait().send(data, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                sent = 0
            if sent == len(data):
                return None
            data = memoryview(data)[sent:]
        try:
            self._set_real(RECEIVE_LIMIT)
            return self._sock.sendall(data, *flags)
        except TimeoutError:
            # gunicorn treats a broken pipe as a client gone, closed quietly, when
            # it carries its errno; without one it logs an error and a traceback.
            raise BrokenPipeError(errno.EPIPE, "the client did not read the answer "
                                  "in time") from None
        finally:
            self._apply()

    def sendfile(self, file, offset: int = 0, count: int | None = None) -> int:
        """A file's bytes (gunicorn sends static files this way) by `sendall`, in
        blocks, each under the write deadline. The system call gunicorn would make
        on the real socket waits for as long as the client does not read: one
        client asking for a file and never reading it held a thread for ever."""
        file.seek(offset)
        sent = 0
        while count is None or sent < count:
            size = SEND_BLOCK if count is None else min(SEND_BLOCK, count - sent)
            block = file.read(size)
            if not block:
                break
            self.sendall(block)
            sent += len(block)
        return sent

    @property
    def raw(self) -> socket.socket:
        """The real socket, for the event loop to close."""
        return self._sock

    def __getattr__(self, name):
        # During a request, whatever else is called on the real socket (the
        # descriptor handed to a system call) must find it in the mode asked for;
        # the poller, between requests, does not care.
        if self._armed:
            self._apply()
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
            f"Content-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


def unread_body_left_unskipped(request) -> bool:
    """Whether gunicorn would give up skipping what the application left unread of
    `request`'s body: 64 KiB or more of a declared length (DRAIN_LIMIT), or a
    chunked body not read to its end, whose length nothing tells."""
    body = getattr(request, "body", None)
    reader = getattr(body, "reader", None)
    if isinstance(reader, LengthReader):
        return reader.length + body.buf.tell() >= DRAIN_LIMIT
    if isinstance(reader, ChunkedReader):
        return reader.parser is not None
    return False


def closing_after_unread_body(app):
    """`app`, but an answer that leaves a body gunicorn would not skip (a 413 among
    them) closes its connection.

    gunicorn skips the unread body of a kept-alive request before reading the next
    one, gives up after DRAIN_LIMIT bytes and closes the connection: a request the
    client sent behind the body went unanswered, after an answer that had promised
    keep-alive (a 404 or 405 to a 100 KiB upload, a chunked body refused at its size
    limit). Said at once, the client knows to send it on a new connection. A chunked
    body left unread closes whatever its length, which nothing tells in advance. (A
    declared length over the limit is closed on sight, in
    `ThreadWorker.handle_request`.)
    """
    def wrapped(environ, start_response):
        def start(status, headers, exc_info=None):
            request = getattr(environ.get("gunicorn.socket"), "request", None)
            if request is not None and (status.startswith("413")
                                        or unread_body_left_unskipped(request)):
                request.must_close = True
            return start_response(status, headers, exc_info)
        return app(environ, start)
    return wrapped


class ConnectionShares:
    """How many connections each live worker holds, and when it last went round its
    event loop, in memory the master and all its workers share, so a worker can
    leave a new connection to a sibling holding fewer, and tell a busy sibling from
    a stopped one.

    One slot per worker. `counts`: 0 while free, -1 while its worker boots, else 1 +
    the worker's open connections. `passes`: the `time.monotonic()` (one clock for
    every process of the host) of its loop's last pass. The master claims a slot for
    each worker before forking it (the worker object is built in the master) and
    frees it when the worker exits, dead or alive (`release`, from the `child_exit`
    hook); the worker writes its figures once it serves. A booting worker accepts
    nothing, so it is no sibling to leave connections to. Reads may be a moment
    stale: the choice is a hint, never a lock.
    """

    SLOTS = 64

    def __init__(self):
        # Anonymous and MAP_SHARED: inherited by every worker forked afterwards.
        self._memory = mmap.mmap(-1, 16 * self.SLOTS)
        view = memoryview(self._memory)
        self.counts = view[:8 * self.SLOTS].cast("q")
        self.passes = view[8 * self.SLOTS:].cast("d")

    def claim(self) -> int | None:
        """A free slot for a worker about to be forked; None when all are taken
        (more than SLOTS workers: that worker accepts without looking)."""
        for slot, value in enumerate(self.counts):
            if value == 0:
                self.counts[slot] = -1
                return slot
        return None

    def release(self, slot: int | None) -> None:
        if slot is not None:
            self.counts[slot] = 0

    def publish(self, slot: int, connections: int, now: float) -> None:
        self.passes[slot] = now
        self.counts[slot] = connections + 1

    def least_loaded_elsewhere(self, slot: int) -> tuple[int, int] | None:
        """(connections, slot) of the other live worker holding the fewest; None if
        there is none."""
        others = [(value - 1, index) for index, value in enumerate(self.counts)
                  if value > 0 and index != slot]
        return min(others) if others else None


# Created in the master, when it builds its first worker object, before any fork.
_shares: ConnectionShares | None = None

# How long a worker holding more connections than a sibling leaves the listening
# socket to it. A connection is never refused: if it is still waiting afterwards
# (the sibling is busy, stuck or full), this worker takes it.
ACCEPT_PAUSE = 0.002
# A worker pauses only when it holds more than SHARE_MARGIN connections above a
# sibling. The counts lag (a closed connection counts until its worker's loop has
# seen it close), so with no margin two workers each read the other's count as
# lower and both paused: a client opening a connection per request then waited out
# a pause on most of them (16 such clients: 950 requests per second with no margin,
# 2,900 with 1, 3,300-3,600 with 2; stock gthread, no share-out, 3,850-3,970).
SHARE_MARGIN = 2

# When a connection waited out a whole pause and the sibling it was left to has not
# been round its loop for SIBLING_STUCK seconds, this worker stops pausing for
# SIBLING_BACKOFF seconds. A sibling that is stopped or stuck in a long call never
# takes anything but still looks least loaded; without this every new connection
# would wait out a pause (measured: a third of one lone worker's intake while the
# other was stopped, until gunicorn's timeout replaces it). A sibling that is only
# busy (its loop handing a burst of closing connections to its threads, say) still
# goes round its loop every few milliseconds: backing off from it handed this worker
# whole bursts of new connections (30 of 32 while the sibling was seen missing three
# 2 ms pauses in a row), the very imbalance the pause is there to prevent.
SIBLING_STUCK = 0.1
SIBLING_BACKOFF = 0.05
# How long a pool thread waits for the next request on the connection it just
# served, while the worker has no more connections than threads (handle). Clients
# that send their next request at once (a batch job, a load generator, a proxy's
# pooled connection) meet it; others wait in the event loop as usual.
KEEPALIVE_LINGER_MS = 2

# A connection whose answer closes it is shut for writing, then kept open for up to
# LINGER_SECONDS, reading and dropping up to LINGER_BYTES the client still sends,
# until the client closes its side: closed with unread bytes, the kernel would reset
# it and could destroy the end of the answer before the client read it.
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024

# At most this often (or a quarter of gunicorn's `timeout`, if that is shorter) the
# worker tells the master it is alive and checks that the master still is, instead
# of on every pass of its loop.
NOTIFY_EVERY = 1.0


class Connection(gthread.TConn):
    """gthread's connection, whose graceful close waits in the worker's event loop
    (`ThreadWorker._linger`) instead of stopping it.

    gthread closes a connection whose answer said "close" (HTTP/1.0, "Connection:
    close", a 413, a body it gave up skipping) from its event loop, and that close
    waits up to 2 s in a blocking read for the client to close its side. A client
    that keeps the connection open after such an answer stopped the loop, and every
    connection of the worker, for 2 s each time.
    """

    def __init__(self, linger, *args):
        super().__init__(*args)
        self._linger = linger

    def close(self, graceful=False):
        if graceful:
            self._linger(self.sock.raw)
        else:
            super().close(graceful)


class ThreadWorker(gthread.ThreadWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        global _shares
        if _shares is None:
            _shares = ConnectionShares()
        self.shares = _shares
        self.share_slot = _shares.claim()
        self._accept_paused_until = 0.0
        self._accept_anyway = False
        self._no_pause_until = 0.0
        self._sibling = None  # the slot of the sibling the last pause deferred to
        self._notified = self._parent_checked = 0.0
        self._quitting = False
        # Connections whose request is arriving, read by the event loop until it is
        # complete (_gather), with the deadline by which it must be.
        self._gathering: dict = {}
        # Sockets closing (_linger), with when they close whatever the client does
        # and how many bytes of theirs have been dropped.
        self._lingering: dict = {}
        # gunicorn hands its worker half the configured timeout.
        self._notify_every = min(NOTIFY_EVERY, self.timeout / 2)

    def notify(self):
        # gunicorn calls this on every pass of the worker's loop, which under load
        # is about once per request, and each call rewrites the times of a file
        # (a system call and an inode update). The master only asks whether it
        # happened within the last `timeout` seconds (30 by default).
        now = time.monotonic()
        if now - self._notified >= self._notify_every:
            self._notified = now
            super().notify()

    def is_parent_alive(self):
        # Also asked on every pass (a getppid call); once a second is as good.
        now = time.monotonic()
        if now - self._parent_checked < self._notify_every:
            return True
        self._parent_checked = now
        return super().is_parent_alive()

    def handle_quit(self, sig, frame):
        # Ctrl-C in a terminal reaches the workers and the master, which then sends
        # them SIGQUIT as well. gthread's handler shuts the thread pool down (under
        # a lock that is not re-entrant) and sleeps 0.1 s; a second signal in that
        # window ran the handler again inside the first and could hang the worker
        # until the master killed it after the graceful timeout. One is enough.
        if self._quitting:
            return
        self._quitting = True
        super().handle_quit(sig, frame)

    def release_share(self) -> None:
        """Free this worker's slot; the master calls it when the worker exits."""
        self.shares.release(self.share_slot)
        self.share_slot = None

    def init_process(self):
        # gunicorn writes these answers from its base worker through this one
        # module function; replacing it in this worker process is the only hook.
        util.write_error = write_json_error
        super().init_process()

    def load_wsgi(self):
        super().load_wsgi()
        self.wsgi = closing_after_unread_body(self.wsgi)

    def run(self):
        # The application is loaded: from now on this worker takes connections.
        self._publish_share()
        super().run()

    def accept(self, listener):
        now = time.monotonic()
        if self._accept_anyway:
            # The connection waited out a whole pause: the sibling is busy or stuck.
            if self._sibling is not None and \
                    now - self.shares.passes[self._sibling] > SIBLING_STUCK:
                self._no_pause_until = now + SIBLING_BACKOFF
        elif now >= self._no_pause_until and self._holds_more_than_a_sibling():
            # Level-triggered: the listener would wake this loop again at once, so
            # it leaves the poller for the pause (set_accept_enabled honours it).
            self._accept_paused_until = now + ACCEPT_PAUSE
            super().set_accept_enabled(False)
            return
        self._accept_anyway = False
        self._take(listener)
        self._publish_share()

    def _take(self, listener) -> None:
        """gthread's accept, except that the connection gets no thread yet: it waits
        in the event loop for its first byte (closed after `keepalive` seconds if none
        comes), as gthread's own deferred connections do, and then for its whole
        request (_gather). Stock gthread gives every new connection a pool thread at
        once, which waits up to 5 s for that byte, so a few silent connections per
        thread, reopened as they are closed, kept every other request waiting."""
        try:
            client, address = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = Connection(self._linger, self.cfg, client, address,
                          listener.getsockname())
        conn.sock = DeadlineSocket(client)
        self._gather(conn, new=True)

    def _gather(self, conn, new: bool = False) -> None:
        """Read the connection's request in the event loop, and give it a thread only
        once it is complete (request_complete) or GATHER_LIMIT bytes long, or the
        client closed its side. Until then it holds no thread: a client that sends
        half a request and stalls, or trickles it, waits here, and at its deadline
        gets a thread only to be cut off at once (murder_pending). The connection
        is in no poller registration and no list when this is called."""
        sock = conn.sock
        still_open = sock.gather()
        if not sock.gathered:
            if not still_open:
                self.nr_conns -= 1
                conn.close()
                return
            if new:
                self._wait_for_first_byte(conn)
                return
        if still_open and len(sock.gathered) < GATHER_LIMIT and \
                not request_complete(sock.gathered):
            self._gathering[conn] = sock.gather_deadline()
            self.poller.register(sock, selectors.EVENT_READ,
                                 partial(self._on_gathering_readable, conn))
            return
        conn.data_ready = True
        self.enqueue_req(conn)

    def finish_request(self, conn, fs):
        # A kept-alive connection whose thread left part of the next request
        # gathered (_next_request_soon) goes on gathering here, under that
        # request's deadline; gthread would hand it to a thread again at once.
        sock = conn.sock
        if sock.gathered and fs.done() \
                and not fs.cancelled() and fs.exception() is None \
                and fs.result() is True:
            self._gather(conn)
            return
        super().finish_request(conn, fs)

    def _wait_for_first_byte(self, conn) -> None:
        """Nothing sent yet: wait in the event loop, up to `keepalive` seconds."""
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ,
                             partial(self.on_pending_socket_readable, conn))

    def on_pending_socket_readable(self, conn, client):
        self.poller.unregister(client)
        self.pending_conns.remove(conn)
        self._gather(conn)

    def on_client_socket_readable(self, conn, client):
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._gather(conn)

    def _on_gathering_readable(self, conn, client):
        self.poller.unregister(client)
        del self._gathering[conn]
        self._gather(conn)

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        late = [conn for conn, deadline in self._gathering.items() if deadline <= now]
        for conn in late:
            # Its thread finds the deadline passed and cuts the request off at once:
            # mid-head the connection closes, mid-body the application answers 400.
            del self._gathering[conn]
            self.poller.unregister(conn.sock)
            conn.data_ready = True
            self.enqueue_req(conn)
        for sock in [sock for sock, (deadline, _) in self._lingering.items()
                     if deadline <= now]:
            self._end_linger(sock)

    def _linger(self, sock: socket.socket) -> None:
        """Close `sock` the way RFC 9112 (section 9.6) asks, without waiting: shut it
        for writing, so the client sees the end of the answer, then read and drop
        what it still sends, in the event loop, until it closes its side, or for
        LINGER_SECONDS or LINGER_BYTES at most (murder_pending)."""
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
        except OSError:
            sock.close()  # reset or gone already: nothing left to protect
            return
        self._lingering[sock] = [time.monotonic() + LINGER_SECONDS, 0]
        self.poller.register(sock, selectors.EVENT_READ, self._on_lingering_readable)

    def _on_lingering_readable(self, sock) -> None:
        entry = self._lingering[sock]
        while entry[1] < LINGER_BYTES:
            try:
                data = sock.recv(LINGER_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                break
            if not data:
                break
            entry[1] += len(data)
        self._end_linger(sock)

    def _end_linger(self, sock) -> None:
        del self._lingering[sock]
        self.poller.unregister(sock)
        sock.close()

    def _holds_more_than_a_sibling(self) -> bool:
        if self.share_slot is None:
            return False
        least = self.shares.least_loaded_elsewhere(self.share_slot)
        if least is None or self.nr_conns <= least[0] + SHARE_MARGIN:
            return False
        self._sibling = least[1]
        return True

    def _publish_share(self) -> None:
        if self.share_slot is not None:
            self.shares.publish(self.share_slot, self.nr_conns, time.monotonic())

    def set_accept_enabled(self, enabled):
        if enabled and self._accept_paused_until:
            return  # resumed by wait_for_and_dispatch_events when the pause ends
        super().set_accept_enabled(enabled)

    def wait_for_and_dispatch_events(self, timeout):
        # An idle worker still goes round its loop a few times per SIBLING_STUCK,
        # so its siblings never take it for a stopped one.
        timeout = min(timeout, SIBLING_STUCK / 2)
        if self._accept_paused_until:
            remaining = self._accept_paused_until - time.monotonic()
            if remaining > 0 and self.alive:
                timeout = min(timeout, remaining)
            else:
                self._accept_paused_until = 0.0
                if self.alive and self.nr_conns < self.worker_connections:
                    super().set_accept_enabled(True)
                    # A connection still queued has waited out the pause: this one
                    # look at the poller takes it whatever the counts say.
                    self._accept_anyway = True
                    timeout = 0
        super().wait_for_and_dispatch_events(timeout)
        # Still set: nothing was left to accept, a sibling took it in the pause.
        self._accept_anyway = False
        # Connections also end in callbacks of the loop (closed, expired).
        self._publish_share()

    def handle(self, conn):
        while True:
            conn.sock.start()
            try:
                keep = super().handle(conn)
            finally:
                conn.sock.stop()
            if keep is not True or not self._next_request_soon(conn):
                return keep

    def handle_request(self, req, conn):
        conn.sock.request = req
        declared = getattr(getattr(req.body, "reader", None), "length", None)
        if declared is not None and declared > MAX_BODY_BYTES:
            # gunicorn would answer "Expect: 100-continue" by inviting a body the
            # application then refuses unread; uninvited, the client keeps it and
            # gets the 413 at once. No answer reads such a body (a 404 or 405 comes
            # before any read), so every answer closes the connection: keep-alive
            # would promise to read a body the client holds back, or that gunicorn
            # gives up skipping, and the client's next request would go unanswered.
            req._expected_100_continue = False
            req.must_close = True
        try:
            return super().handle_request(req, conn)
        finally:
            conn.sock.request = None

    def _next_request_soon(self, conn) -> bool:
        """Whether this thread should serve the connection's next request itself.

        Returning a kept-alive connection to the event loop costs a wake-up of the
        loop's thread, two epoll changes and a hand-over back to a pool thread per
        request, about a third of a small request's cost at one connection. While
        the worker has no more connections than threads, none of them needs this
        thread, so it waits up to `KEEPALIVE_LINGER_MS` milliseconds for the next
        request on this connection, then leaves it to the loop. A connection beyond
        that waits at most that long for a thread. Either way it serves the next
        request only once it has arrived whole; part of one goes to the loop.
        """
        sock = conn.sock
        # Bytes of the next request read with the last one (by the parser, or by
        # the event loop) go back to the socket's gathered bytes, where the event
        # loop goes on reading them if they are not a whole request yet.
        sock.keep_ahead(conn.parser.unreader.take_buffered())
        if not sock.gathered:
            if not self.alive or self.nr_conns > self.cfg.threads:
                return False
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN)
            try:
                if not poller.poll(KEEPALIVE_LINGER_MS):
                    return False
            except OSError:
                return False
        # A thread reads the next request only once it is whole, as for a new
        # connection (_gather): a client that sends its answer's successor a byte
        # at a time, or a byte of it and then nothing, would hold it until the
        # receive deadline.
        still_open = sock.gather()
        return not still_open or len(sock.gathered) >= GATHER_LIMIT \
            or request_complete(sock.gathered)
