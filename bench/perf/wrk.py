"""One bounded wrk run: a fixed request, a number of keep-alive connections, a time.

wrk sends the same request over and over on every connection, as fast as answers
come back. A small Lua script sets the method, body and content type and, when the
run ends, prints one line of JSON with the counts and the latency percentiles that
wrk measured itself (its `done` hook), so nothing is parsed out of its human output.
"""

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

RESULT_MARK = "WRK_RESULT "
LUA = """\
local body = io.open("{body}", "rb")
wrk.method = "{method}"
wrk.body = body:read("*a")
body:close()
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{mark}{{"requests":%d,"duration_us":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"bad_status":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


class WrkMissing(SystemExit):
    """wrk is not on PATH; the message says how to install it."""


@dataclass
class Run:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def find_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissing("wrk is not installed; run hack/install-bench-tools.sh (as "
                         "root) or apt-get install wrk.")
    return path


def run(url: str, body: bytes, connections: int, seconds: float,
        method: str = "POST", timeout: float = 5.0) -> Run:
    """Drive `url` with `connections` keep-alive connections for `seconds`."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        body_path = Path(tmp) / "body.json"
        body_path.write_bytes(body)
        script = Path(tmp) / "request.lua"
        script.write_text(LUA.format(body=body_path, method=method, mark=RESULT_MARK))
        # One wrk thread: it handles every connection through epoll, and a second
        # thread would only take CPU from the server on a 2-core machine.
        # nice 0: the figures must not depend on the priority the caller runs at.
        command = ["nice", "-n", "0", find_wrk(), "-t", "1", "-c", str(connections),
                   "-d", f"{seconds:g}s", "--timeout", f"{timeout:g}s",
                   "-s", str(script), url]
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=seconds + timeout + 30)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed on {url} (exit {done.returncode}):\n"
                           f"{done.stdout}{done.stderr}")

    result = json.loads(lines[-1][len(RESULT_MARK):])
    errors = sum(result[k] for k in ("connect_errors", "read_errors", "write_errors",
                                     "bad_status", "timeouts"))
    return Run(requests=result["requests"], seconds=result["duration_us"] / 1e6,
               errors=errors, p50_ms=result["p50_us"] / 1000,
               p90_ms=result["p90_us"] / 1000, p99_ms=result["p99_us"] / 1000)
