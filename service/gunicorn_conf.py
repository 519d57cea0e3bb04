"""Gunicorn settings for the service, all overridable through the environment.

Defaults suit a 2-core container: two worker processes, each with three threads
(`gthread`), so keep-alive connections are served and a slow client ties up one
thread rather than a whole worker. Three rather than four: fewer threads wait on one
GIL, which took the p99 at 32 connections under 20 ms for about 6% of throughput
(docs/performance.md, item 11).
"""

import gc
import importlib
import os
import time

from service import logs, metrics
from service.config import (ENV_PREFIX, PORTS, WORKERS, Settings, bind_host,
                            draining_marker, env_flag, env_int)

_host = bind_host()
# An IPv6 address (::, ::1) is bracketed, or gunicorn reads its last part as the port.
if ":" in _host and not _host.startswith("["):
    _host = f"[{_host}]"
bind = f"{_host}:{env_int('PORT', 8080, PORTS.start, PORTS[-1])}"
wsgi_app = "service.app:create_app()"
# gthread, plus a receive deadline per request so a stalled or trickling client
# cannot hold a thread for ever (service/worker.py explains the numbers).
worker_class = "service.worker.ThreadWorker"
workers = env_int("WORKERS", 2, WORKERS.start, WORKERS[-1])
# Threads per worker; more than 64 only wait on the one GIL (a typo bound).
threads = env_int("THREADS", 3, 1, 64)
# A worker silent for this long is killed and replaced.
timeout = env_int("TIMEOUT", 30, 1, 86_400)
# After SIGTERM, in-flight requests get this long to finish before workers are killed.
graceful_timeout = env_int("GRACEFUL_TIMEOUT", 20, 0, 86_400)
keepalive = 5
# Headers are small here; tight limits stop oversized request lines early.
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
# Request lines are logged by the application as JSON; gunicorn keeps its own log.
accesslog = None
errorlog = "-"
# Checked here so a typo stops the master with one message, not every worker.
loglevel = logs.check_level(os.environ.get(ENV_PREFIX + "LOG_LEVEL", "info"))
# The application's settings too: a worker that failed on a bad value would be
# replaced, fail again, and so on for ever, with the port bound and never answering.
Settings.from_env()
# gunicorn's runtime control socket (resize, reload) is off: signals and the
# orchestrator manage the process, and every instance on a host would otherwise share
# one default socket path under $HOME.
control_socket_disable = True
# gunicorn lets a client on the loopback (a proxy on the same host, a port-forward)
# set SCRIPT_NAME by a header, and then writes that prefix into every link the
# pages make (their scripts included), or answers 500 when the path lacks it. The
# service is always mounted at the root: no client may move it.
forwarder_headers = ""
# Development only: restart workers when a source file changes (skaffold dev sync).
reload = env_flag("RELOAD_CODE", False)

# Imported by the master before it forks a worker (pre_fork): see there.
PRELOADED = ("numpy", "pandas", "joblib", "flask", "orjson", "prometheus_client",
             "prometheus_flask_exporter", "sklearn.base", "sklearn.compose",
             "sklearn.dummy", "sklearn.linear_model", "sklearn.pipeline")

# Seconds between SIGTERM and the start of the graceful stop, during which /readyz
# already answers 503, so a load balancer stops sending before connections close.
SHUTDOWN_DELAY = env_int("SHUTDOWN_DELAY", 0, 0, 3_600)


def on_starting(server):
    # TLS reaches gunicorn only through GUNICORN_CMD_ARGS (--certfile, --keyfile);
    # it is refused here. gunicorn's threads perform the handshake in a blocking
    # read with no deadline, so a client that sends one byte of it and stalls holds
    # a thread for good, and a few such clients stop a worker; the request deadlines
    # of service/worker.py guard plain HTTP only. TLS is terminated in front of the
    # service: an ingress, a mesh sidecar or a load balancer.
    if server.cfg.is_ssl:
        raise SystemExit("TLS options (--certfile, --keyfile) are set, through "
                         "GUNICORN_CMD_ARGS; the service serves plain HTTP only. "
                         "Terminate TLS in front of it (an ingress, a mesh sidecar "
                         "or a load balancer) and remove them.")
    # Before any worker exists: a missing or unwritable directory stops the master
    # here (MultiprocDirError is a SystemExit), and files of an earlier run, whose
    # pids this run's workers may reuse, are removed.
    directory, removed = metrics.prepare_multiproc_dir()
    server.log.info("metrics directory %s ready (%d stale files removed)",
                    directory, removed)
    # A master killed while draining left its marker; this one may have its pid
    # (always 1 in a container whose /tmp outlives restarts), and would read it as
    # its own shutdown and never turn ready.
    remove_draining_marker()

    graceful_stop = server.handle_term

    def drain_then_stop():
        if SHUTDOWN_DELAY:
            open(draining_marker(os.getpid()), "w").close()
            server.log.info("SIGTERM: readiness off, stopping in %ss", SHUTDOWN_DELAY)
            time.sleep(SHUTDOWN_DELAY)
        graceful_stop()

    server.handle_term = drain_then_stop


def pre_fork(server, worker):
    # The heavy libraries are imported once, in the master: a worker then starts
    # with them in memory instead of spending a second of CPU importing them
    # again, and their pages stay shared by the master and every worker instead of
    # being copied into each (gc.freeze keeps the workers' collector from writing
    # to them). Third-party packages only: the project's own modules are imported
    # by each worker, so a worker restarted by `reload` runs the changed code.
    for name in PRELOADED:
        importlib.import_module(name)
    gc.freeze()


def child_exit(server, worker):
    # A replaced or crashed worker must not keep reporting its gauges (model
    # loaded, version served); its counters stay in the totals.
    metrics.mark_worker_dead(worker.pid)
    # Its slot in the connection shares (service/worker.py) is free for the next;
    # a worker class chosen on the command line may not have one.
    release_share = getattr(worker, "release_share", None)
    if release_share is not None:
        release_share()


def on_exit(server):
    remove_draining_marker()


def remove_draining_marker() -> None:
    try:
        os.unlink(draining_marker(os.getpid()))
    except FileNotFoundError:
        pass
