"""Structured logging: one JSON object per line, level from the environment.

Only the "service" logger is configured; gunicorn keeps its own plain-text error
log on stderr beside these lines, with its own format and level.
"""

import io
import json
import logging
import os
import select
import sys
import time

import orjson

# Longest write a pipe keeps whole between writers (POSIX: at least 512; 4096 on
# Linux). A request line longer than this has its path shortened, marked so.
PIPE_BUF = getattr(select, "PIPE_BUF", 512)
TRUNCATED = "...(truncated)"
# The one logger configured here, looked up once: `getLogger` takes logging's module
# lock, which the request path need not.
SERVICE_LOG = logging.getLogger("service")

# Attributes every LogRecord has; anything else was passed with `extra=` and is
# written out as a field of its own.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON.

    The service logs one line per request, so this is on the request path: orjson
    instead of the json module and one strftime per second instead of one per
    line take the formatting from about 10 us to about 3 us.
    """

    def __init__(self):
        super().__init__()
        self._second = (-1, "")

    def timestamp(self, created: float) -> str:
        second = int(created)
        cached = self._second
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._second = cached
        return f"{cached[1]}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(entry, default=str).decode()
        except TypeError:  # what orjson refuses (integers past 64 bits) json can write
            return json.dumps(entry, default=str)


class JsonLineHandler(logging.StreamHandler):
    """Writes JSON lines to a stream; `write_request` is the request path's way in.

    A record through `logging` costs about 30 us: the LogRecord (which looks up the
    thread, process and multiprocessing names), the handler lock, the text layer
    and its flush. The request line needs none of that: `write_request` builds the
    same JSON object (same keys, same order as `JsonFormatter` gives a record with
    those `extra` fields) and hands the bytes to the stream's file descriptor in
    one `os.write`, which the kernel keeps whole between threads. A stream without
    a descriptor (a test's StringIO) is written through its own methods instead.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self.formatter = JsonFormatter()
        self._fd = _descriptor(stream)

    def setStream(self, stream):
        previous = super().setStream(stream)
        self._fd = _descriptor(self.stream)
        return previous

    def write_request(self, fields: dict) -> None:
        entry = {"time": self.formatter.timestamp(time.time()), "level": "info",
                 "logger": "service", "message": "request"}
        entry.update(fields)
        line = _encode(entry)
        if len(line) > PIPE_BUF and isinstance(entry.get("path"), str):
            # The kernel keeps a write to a pipe (a container's stderr) whole only
            # up to PIPE_BUF bytes; a longer one can be split by another worker's
            # line. Only the path, which the client chooses (up to ~4 KB, and a
            # control character takes 6 bytes escaped), can make the line that
            # long. The longest prefix that fits is found by halving (a dozen
            # encodings of a 4 KB line, on a path no browser sends).
            path, shortest, longest = entry["path"], 0, len(entry["path"])
            while shortest < longest:
                keep = (shortest + longest + 1) // 2
                entry["path"] = path[:keep] + TRUNCATED
                if len(_encode(entry)) <= PIPE_BUF:
                    shortest = keep
                else:
                    longest = keep - 1
            entry["path"] = path[:shortest] + TRUNCATED
            line = _encode(entry)

        fd = self._fd
        if fd is None:
            with self.lock:
                self.stream.write(line.decode())
                self.flush()
            return
        try:
            # One call in practice; a short write (a signal, a full pipe) goes on.
            while line:
                line = line[os.write(fd, line):]
        except OSError:
            # What logging does with a failed write (report, go on) minus the
            # report, which would go to the same broken stream: the answer to
            # the client must not fail because its log line could not be written.
            pass


def _encode(entry: dict) -> bytes:
    try:
        return orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # the same fallback as JsonFormatter.format
        return (json.dumps(entry, default=str) + "\n").encode()


def write_request(fields: dict) -> None:
    """Log one request line at level info with `fields` as its extra fields."""
    logger = SERVICE_LOG
    if not logger.isEnabledFor(logging.INFO):
        return
    handlers = logger.handlers
    if len(handlers) == 1 and type(handlers[0]) is JsonLineHandler \
            and handlers[0].level <= logging.INFO and not handlers[0].filters:
        handlers[0].write_request(fields)
    else:  # configured otherwise (a test, an embedding application): the slow way
        logger.info("request", extra=fields)


def _descriptor(stream) -> int | None:
    """The stream's file descriptor once its buffered text is flushed, or None."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    stream.flush()
    return fd


LEVELS = ("debug", "info", "warning", "error", "critical")


def check_level(level: str) -> str:
    """The level name in lower case; SystemExit naming the choices otherwise."""
    name = level.strip().lower()
    if name not in LEVELS:
        raise SystemExit(f"SALES_FORECAST_LOG_LEVEL must be one of "
                         f"{', '.join(LEVELS)}; got {level!r}.")
    return name


def configure(level: str) -> None:
    """Send the service's logs to stderr as JSON lines; called once per process."""
    numeric = logging.getLevelName(check_level(level).upper())
    handler = JsonLineHandler(sys.stderr)
    logger = SERVICE_LOG
    logger.handlers[:] = [handler]
    logger.setLevel(numeric)
    logger.propagate = False
