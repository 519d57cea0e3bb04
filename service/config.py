"""Service settings, read once from the environment."""

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

ENV_PREFIX = "SALES_FORECAST_"
# TCP ports a server can bind; 0 (any free port) is refused: a service must be
# found where it was told to listen.
PORTS = range(1, 65536)
# Worker processes per master. The bound catches a typo rather than limiting a real
# deployment: a master asked for thousands of workers forks them all before it reads
# any signal, so even SIGTERM waits while memory runs out. 64 is also the number of
# workers the connection share-out (service/worker.py) keeps a slot for.
WORKERS = range(1, 65)


def draining_marker(master_pid: int) -> str:
    """A file whose presence tells the workers of one gunicorn master to fail
    readiness: the master is shutting down.

    It lives in the metrics directory, which a master under gunicorn always has
    and holds for itself (service/metrics.py): in a /tmp shared with other users,
    anyone could create a master's marker ahead of it, turning its readiness off
    and, owned by another user there, making it one the master cannot remove."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.gettempdir()
    return os.path.join(folder, f"sales-forecast-{master_pid}.draining")


def _env(name: str, default: str) -> str:
    return os.environ.get(ENV_PREFIX + name, default)


def env_text(name: str, default: str, meaning: str) -> str:
    """A setting without the spaces around it (a quoted YAML value, a pasted line).
    Empty is refused rather than read: an empty host binds every interface, an
    empty model directory is the working directory. `meaning` completes "set it
    to ..." in the message."""
    raw = _env(name, default)
    value = raw.strip()
    if not value:
        raise SystemExit(f"{ENV_PREFIX}{name} is empty, got {raw!r}; set it to "
                         f"{meaning}, or unset it for {default!r}.")
    return value


def bind_host() -> str:
    return env_text("HOST", "127.0.0.1", "the address to listen on (0.0.0.0 for "
                    "every interface)")


def store_folder() -> Path:
    """The model store SALES_FORECAST_MODEL_DIR names. Spaces around it are dropped,
    as for any setting, unless a folder of that exact name exists: the training
    job takes such a name whole (`make run MODEL_DIR="my models "`), and the
    service must read the folder it wrote."""
    exact = _env("MODEL_DIR", "models")
    stripped = env_text("MODEL_DIR", "models", "the model store folder the training "
                        "job publishes into")
    return Path(exact if exact != stripped and Path(exact).is_dir() else stripped)


def env_int(name: str, default: int, minimum: int = 0,
            maximum: int | None = None) -> int:
    raw = _env(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{ENV_PREFIX}{name} must be an integer, got {raw!r}.") \
            from None
    if value < minimum:
        raise SystemExit(f"{ENV_PREFIX}{name} must be at least {minimum}, got {value}.")
    if maximum is not None and value > maximum:
        raise SystemExit(f"{ENV_PREFIX}{name} must be at most {maximum}, got {value}.")
    return value


def env_float(name: str, default: float, minimum: float = 0.0,
              maximum: float = 86_400.0) -> float:
    """A number of seconds (or a rate) from the environment. The default maximum, a
    day, keeps sleeps and timers within what the clock calls accept: `inf` or 1e10
    seconds would end the thread that waits on them."""
    raw = _env(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{ENV_PREFIX}{name} must be a number, got {raw!r}.") from None
    if not value >= minimum:
        raise SystemExit(f"{ENV_PREFIX}{name} must be at least {minimum}, got {raw}.")
    if not value <= maximum:
        raise SystemExit(f"{ENV_PREFIX}{name} must be at most {maximum:g}, got {raw}.")
    return value


def parse_flag(raw: str) -> bool | None:
    """True or False for the usual spellings of a switch (any case; empty is off,
    as an unticked checkbox sends), None for anything else."""
    word = raw.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off", ""):
        return False
    return None


def env_flag(name: str, default: bool) -> bool:
    raw = _env(name, "1" if default else "0")
    value = parse_flag(raw)
    if value is None:
        raise SystemExit(f"{ENV_PREFIX}{name} must be true or false, got "
                         f"{raw.strip().lower()!r}.")
    return value


# What a V2 model name may hold: it is one segment of the /v2/models/{name} paths.
MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def model_name(raw: str) -> str:
    name = raw.strip()
    if not MODEL_NAME_PATTERN.fullmatch(name):
        raise SystemExit(f"{ENV_PREFIX}MODEL_NAME must be 1 to 63 letters, digits, "
                         f"'.', '_' or '-', starting with a letter or digit (it is a "
                         f"segment of the /v2/models/NAME paths), got {raw[:80]!r}.")
    return name


@dataclass(frozen=True)
class Settings:
    model_dir: Path = Path("models")
    model_name: str = "sales-forecast"
    # Seconds between checks of the model store's CURRENT pointer; 0 turns it off.
    reload_interval: float = 5.0
    log_level: str = "info"
    # The browser page may upload a CSV and train into the model store.
    uploads: bool = False
    # Host names (besides localhost and IP addresses) an upload may be addressed to.
    upload_hosts: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            model_dir=store_folder(),
            model_name=model_name(_env("MODEL_NAME", "sales-forecast")),
            reload_interval=env_float("RELOAD_INTERVAL", 5.0),
            log_level=_env("LOG_LEVEL", "info").lower(),
            uploads=env_flag("UPLOADS", False),
            upload_hosts=tuple(h.strip().lower().rstrip(".")
                               for h in _env("UPLOAD_HOSTS", "").split(",")
                               if h.strip()),
        )
