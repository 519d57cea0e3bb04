"""Starting each server under test on 127.0.0.1, and what is measured without load.

Every server runs as a child process on a free loopback port with its output in a
log file (a pipe nobody reads would eventually block it). Cold start is the time
from spawning the process to the first 200 from its readiness URL; idle memory is
the PSS of the process and all its descendants (gunicorn's master and workers,
MLServer's inference pool), read from /proc/<pid>/smaps_rollup. PSS counts a page
shared by n processes as 1/n in each, so the sum is what the server costs the
machine.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MLSERVER_VENV = ROOT / ".cache" / "mlserver-venv"
MODEL_NAME = "sales-forecast"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(port: int, path: str, timeout: float = 1.0) -> int | None:
    """Status of a GET on 127.0.0.1:port, None when nothing answers (yet)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Connection: close\r\n\r\n".encode())
            head = s.recv(64)
    except OSError:
        return None
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields follow the last ')'.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue.extend(children.get(current, []))
    return found


def pss_mib(pid: int) -> float:
    """PSS of `pid` and its descendants, in MiB."""
    total_kib = 0
    for each in descendants(pid):
        try:
            text = Path(f"/proc/{each}/smaps_rollup").read_text()
        except OSError:
            continue  # exited between the listing and the read
        for line in text.splitlines():
            if line.startswith("Pss:"):
                total_kib += int(line.split()[1])
    return total_kib / 1024


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time used so far by `pid` and its live descendants.

    Per request, it is a steadier figure than throughput on a busy machine: other
    people's load slows a server down but does not make it do more work.
    """
    ticks = 0
    for each in descendants(pid):
        try:
            stat = Path(f"/proc/{each}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """A server process: how to start it, where it answers, and how it went."""
    name: str
    command: list[str]
    ready_path: str
    port: int
    log_path: Path
    env: dict = field(default_factory=dict)
    process: subprocess.Popen | None = None
    cold_start: float = float("nan")
    idle_pss: float = float("nan")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> "Server":
        log = open(self.log_path, "ab")
        started = time.perf_counter()
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **self.env}, start_new_session=True)
        log.close()
        deadline = started + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode} "
                                   f"before it was ready; its log:\n{self.log_tail()}")
            if http_status(self.port, self.ready_path) == 200:
                self.cold_start = time.perf_counter() - started
                break
            time.sleep(0.01)
        else:
            self.stop()
            raise RuntimeError(f"{self.name} was not ready after {timeout}s; its log:"
                               f"\n{self.log_tail()}")
        # Settle: late imports, the first collection, the model watcher's first pass.
        time.sleep(2)
        self.idle_pss = pss_mib(self.process.pid)
        return self

    def pss(self) -> float:
        return pss_mib(self.process.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # The server's own session: SIGTERM reaches the master, which stops its
        # workers; MLServer's pool processes are in the same group.
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def gunicorn_env(work: Path, port: int) -> dict:
    metrics = work / f"metrics-{port}"
    metrics.mkdir(exist_ok=True)
    return {"PROMETHEUS_MULTIPROC_DIR": str(metrics),
            "SALES_FORECAST_PORT": str(port), "SALES_FORECAST_HOST": "127.0.0.1"}


def service(work: Path, model_dir: Path) -> Server:
    """The service as shipped: `python -m service`, default settings, logs on."""
    port = free_port()
    return Server("service", [sys.executable, "-m", "service", "--model-dir",
                              str(model_dir), "--port", str(port)],
                  "/readyz", port, work / "service.log", gunicorn_env(work, port))


def ceiling(work: Path) -> Server:
    """A hello-world Flask route under the service's gunicorn configuration."""
    port = free_port()
    return Server("ceiling", [sys.executable, "-m", "gunicorn", "--config",
                              "python:service.gunicorn_conf",
                              "bench.perf.hello_app:app"],
                  "/", port, work / "ceiling.log", gunicorn_env(work, port))


def baseline(work: Path, model_path: Path, last_month: str) -> Server:
    """The plain baseline: two sync workers, a DataFrame per request."""
    port = free_port()
    return Server("baseline", [sys.executable, "-m", "gunicorn", "--workers", "2",
                               "--worker-class", "sync", "--bind",
                               f"127.0.0.1:{port}", "bench.perf.baseline_app:app"],
                  "/healthz", port, work / "baseline.log",
                  {"BENCH_BASELINE_MODEL": str(model_path),
                   "BENCH_BASELINE_LAST": last_month})


def mlserver(work: Path, model_path: Path) -> Server:
    """Seldon MLServer with its scikit-learn runtime, default settings but ports."""
    executable = MLSERVER_VENV / "bin" / "mlserver"
    if not executable.exists():
        raise SystemExit(f"MLServer is not installed at {MLSERVER_VENV}; run "
                         "hack/install-bench-tools.sh.")
    port = free_port()
    folder = work / "mlserver"
    folder.mkdir(exist_ok=True)
    (folder / "settings.json").write_text(json.dumps({
        "http_port": port, "grpc_port": free_port(), "metrics_port": free_port(),
        "host": "127.0.0.1"}))
    (folder / "model-settings.json").write_text(json.dumps({
        "name": MODEL_NAME, "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(model_path), "version": "v1"}}))
    # The pickled pipeline names bench.perf.reference_model's function.
    return Server("mlserver", [str(executable), "start", str(folder)],
                  f"/v2/models/{MODEL_NAME}/ready", port, work / "mlserver.log",
                  {"PYTHONPATH": str(ROOT)})
