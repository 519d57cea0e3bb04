"""Steady, bounded HTTP traffic against a server on this machine, every answer recorded.

Used by the lifecycle and shutdown tests and by the soak and lifecycle benchmarks.
Each client is a thread with its own keep-alive `requests.Session` (as a real client
pool would be), sending one request after another, optionally paced to a rate. Every
request becomes a `Result`: when it started and finished, its status (or how the
connection failed) and the model version the answer names. Nothing is retried, so a
failure is never hidden.

Traffic stops at `stop()` or after `max_seconds`, whichever is first: a test that
forgets to stop it cannot send requests forever.
"""

import errno
import http.client
import threading
import time
from dataclasses import dataclass

import requests

# How a request without an HTTP answer failed. `refused` means nothing was listening
# (the server never saw the request); `reset` means a connection existed but was
# closed before an answer came; `timeout` means no answer in time.
REFUSED, RESET, TIMEOUT, OTHER = "refused", "reset", "timeout", "other"


@dataclass
class Result:
    client: int
    started: float
    finished: float
    status: int | None
    version: str | None = None
    failure: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


def classify(error: BaseException) -> str:
    """The socket-level cause of a failed request, found anywhere in the chain of
    wrapped exceptions (requests wraps urllib3, which wraps the socket error)."""
    pending, seen = [error], set()
    while pending:
        e = pending.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ConnectionRefusedError) or \
                getattr(e, "errno", None) == errno.ECONNREFUSED:
            return REFUSED
        if isinstance(e, (ConnectionResetError, BrokenPipeError,
                          http.client.RemoteDisconnected)):
            return RESET
        linked = [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]
        pending += [x for x in linked if isinstance(x, BaseException)]
    if isinstance(error, requests.Timeout):
        return TIMEOUT
    return OTHER


class Traffic:
    """`clients` threads sending `method path` with `body` until stopped.

    `rate` is requests per second per client (None: as fast as answers come back).
    """

    def __init__(self, url: str, path: str = "/forecast", method: str = "POST",
                 body=None, clients: int = 4, rate: float | None = None,
                 timeout: float = 30.0, max_seconds: float = 300.0):
        self.url = url.rstrip("/") + path
        self.method = method
        self.body = {"horizon": 3} if body is None and method == "POST" else body
        self.clients = clients
        self.interval = 1.0 / rate if rate else 0.0
        self.timeout = timeout
        self.max_seconds = max_seconds
        self.results: list[Result] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> "Traffic":
        deadline = time.monotonic() + self.max_seconds
        for client in range(self.clients):
            thread = threading.Thread(target=self._run, args=(client, deadline),
                                      name=f"traffic-{client}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> list[Result]:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)
        return self.snapshot()

    def snapshot(self) -> list[Result]:
        with self._lock:
            return sorted(self.results, key=lambda r: r.started)

    def __enter__(self) -> "Traffic":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self, client: int, deadline: float) -> None:
        session = requests.Session()
        next_at = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < deadline:
            result = self._one(session, client)
            with self._lock:
                self.results.append(result)
            if self.interval:
                next_at += self.interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        session.close()

    def _one(self, session: requests.Session, client: int) -> Result:
        started = time.monotonic()
        try:
            response = session.request(self.method, self.url, json=self.body,
                                       timeout=self.timeout)
        except requests.RequestException as e:
            return Result(client, started, time.monotonic(), None,
                          failure=classify(e), detail=repr(e)[:300])
        finished = time.monotonic()
        version = None
        if response.headers.get("Content-Type", "").startswith("application/json"):
            try:
                version = response.json().get("model_version")
            except (ValueError, AttributeError):
                pass
        return Result(client, started, finished, response.status_code, version,
                      detail="" if response.ok else response.text[:300])


def summarize(results: list[Result]) -> dict:
    """Counts by outcome: sent, ok, failed, and failures by kind and status."""
    failed = [r for r in results if not r.ok]
    kinds: dict[str, int] = {}
    for r in failed:
        key = r.failure or f"http {r.status}"
        kinds[key] = kinds.get(key, 0) + 1
    return {"sent": len(results), "ok": len(results) - len(failed),
            "failed": len(failed), "by_kind": kinds}
