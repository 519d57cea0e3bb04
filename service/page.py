"""The browser side of the service: the forecast page, the API reference page, the
history behind the page's chart, and the CSV upload that trains a new version.

Everything here is a route of its own; nothing runs on the API's requests. The page
itself is static HTML, CSS and JavaScript from `service/static/` that reads the JSON
API, so it shows exactly what an API client would get.

Uploads are off unless `SALES_FORECAST_UPLOADS` is true: they write into the model
store. `POST /upload/check` parses a CSV exactly as `python -m training` would and
writes nothing; `POST /upload/train` parses it again, trains with the same code,
publishes a version and switches this worker to it at once (the other workers follow
within `SALES_FORECAST_RELOAD_INTERVAL` seconds).
"""

import ipaddress
import logging
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path, PurePath
from urllib.parse import urlsplit

from flask import Blueprint, current_app, make_response, render_template, request

from service.errors import (BadRequest, CrossOrigin, HistoryMissing, InvalidData,
                            NotPromoted, StoreDamaged, StoreUnwritable, TrainingBusy,
                            UploadsDisabled)
from service.config import parse_flag
from service.http import json_response, refuse_cut_off_body, series_argument
from service.predictor import month_label, parse_month
from training import artifact

log = logging.getLogger("service")

blueprint = Blueprint("page", __name__)

# Form fields of an upload besides the file, each named as the CLI option it sets
# (--date-col is date_col); any other field is refused.
UPLOAD_OPTIONS = ("date_col", "sales_col", "series_col", "series_name", "fill_gaps",
                  "encoding", "strict", "force")
FLAGS = {"strict", "force"}
UPLOAD_FIELDS = {"file", *UPLOAD_OPTIONS}
MAX_OPTION_CHARS = 100
# Training time grows with the number of series (backtest, model choice, intervals
# and the report: about half a second of CPU per series of 15 years), so this bounds
# how long a training request holds a worker thread: about 25 s on an idle core.
MAX_UPLOAD_SERIES = 50
# Versions whose history is kept in memory; the served one and the one before it.
HISTORY_CACHE_SIZE = 2


# Pages ------------------------------------------------------------------------------

# The pages load their scripts, styles and data from this server only and may not be
# framed: with uploads on, the page can train and publish a model, and a page of
# another site must not overlay it to steer a click.
PAGE_POLICY = ("default-src 'self'; img-src 'self' data:; object-src 'none'; "
               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def page(html: str):
    response = make_response(html)
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    return response


@blueprint.get("/")
def index():
    settings = current_app.extensions["settings"]
    return page(render_template("index.html", uploads=settings.uploads))


@blueprint.get("/docs")
def docs():
    return page(render_template("docs.html"))


# History ----------------------------------------------------------------------------

class HistoryCache:
    """history.json of the last few served versions, parsed once each."""

    def __init__(self, size: int = HISTORY_CACHE_SIZE):
        self.size = size
        self._entries: dict[tuple[str, str], dict] = {}
        self._lock = threading.Lock()

    def get(self, model_dir: Path, version: str) -> dict:
        key = (str(model_dir), version)
        with self._lock:
            if key in self._entries:
                return self._entries[key]
        history = read_history(model_dir, version)
        with self._lock:
            self._entries[key] = history
            while len(self._entries) > self.size:
                del self._entries[next(iter(self._entries))]
        return history


def read_history(model_dir: Path, version: str) -> dict:
    try:
        return {name: (parse_month(first), sales) for name, (first, sales)
                in artifact.read_history(model_dir, version).items()}
    except FileNotFoundError:
        raise HistoryMissing(artifact.missing_file(
            model_dir, version, artifact.HISTORY_FILE, "versions kept their history")) \
            from None
    except (OSError, ValueError, artifact.ArtifactError) as e:
        raise StoreDamaged(f"The history of model version {version} is unreadable "
                           f"({e}); train again to replace it.") from None


_histories = HistoryCache()


@blueprint.get("/history")
def history():
    store = current_app.extensions["model_store"]
    current = store.serving()
    table = current.table(series_argument())

    first, values = _histories.get(store.model_dir, current.version).get(
        table.name, (None, None))
    if values is None:
        raise HistoryMissing(f"The history of model version {current.version} has no "
                             f"series {table.name!r}; train again to replace it.")
    rows = [{"date": month_label(first + i), "sales": v} for i, v in enumerate(values)]
    return json_response({"series": table.name, "model_version": current.version,
                          "history": rows})


# Uploads ----------------------------------------------------------------------------

def check_upload_allowed() -> None:
    """Uploads must be switched on, and a browser must be on this very server: a page
    elsewhere could otherwise post a form here and publish a model. Clients that send
    no Origin header (curl, scripts) are not browsers acting for someone else."""
    if not current_app.extensions["settings"].uploads:
        raise UploadsDisabled("Uploads are switched off on this server; set "
                              "SALES_FORECAST_UPLOADS=true to allow training from the "
                              "page, or train with `python -m training`.")
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise CrossOrigin(f"Uploads are accepted only from this server's own page; the "
                          f"request came from {origin[:100]!r}.")
    # DNS rebinding: a page of some name the attacker controls, re-pointed at this
    # server, is then "this server's own page" by Origin alone. A name must be one
    # the operator listed; addresses and localhost cannot be re-pointed.
    host = (urlsplit(f"//{request.host}").hostname or "").rstrip(".")
    if not (host == "localhost" or _is_address(host)
            or host in current_app.extensions["settings"].upload_hosts):
        raise CrossOrigin(f"Uploads addressed to {host[:100]!r} are refused: list "
                          "the name in SALES_FORECAST_UPLOAD_HOSTS to allow them "
                          "(addresses and localhost are always allowed).")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def upload_options(model_dir: Path):
    """The uploaded file and the training options, starting from the CLI's defaults
    so the page trains exactly as `python -m training` would."""
    from training.cli import parse_args
    from training.data import HIDDEN_IN_NAMES, check_encoding

    # str(): a multipart part without a name comes through as the key None.
    unknown = sorted(str(k) for k in (set(request.form) | set(request.files))
                     - UPLOAD_FIELDS)
    # A body cut off at a line boundary would parse as a shorter, valid file.
    refuse_cut_off_body()
    if unknown:
        raise BadRequest(f"Unknown form field {unknown[0][:50]!r}; allowed: "
                         f"{', '.join(sorted(UPLOAD_FIELDS))}.")
    for field in UPLOAD_FIELDS:
        if len(request.files.getlist(field)) + len(request.form.getlist(field)) > 1:
            raise BadRequest(f"The form field {field!r} was sent more than once; send "
                             "each field once.")
    upload = request.files.get("file")
    if upload is None:
        raise BadRequest("No file in the request: send the CSV as the multipart form "
                         "field 'file'.")
    name = PurePath(upload.filename or "upload.csv").name[:MAX_OPTION_CHARS]
    # The name is stored in the version's metadata, printed by the command-line
    # tools to an operator's terminal, and names the series of a file without a
    # series column: the characters a series name may not hold, it may not either.
    hidden = HIDDEN_IN_NAMES.search(name)
    if hidden:
        raise BadRequest(f"The file name {name!r} contains "
                         f"U+{ord(hidden.group()):04X}, a control or invisible "
                         "character; rename the file.")
    # "--data=NAME": a file name starting with "-" must not read as an option.
    args = parse_args([f"--data={name or 'upload.csv'}", f"--model-dir={model_dir}"])

    for field in UPLOAD_OPTIONS:
        value = request.form.get(field, "").strip()
        if len(value) > MAX_OPTION_CHARS:
            raise BadRequest(f"{field} is {len(value)} characters long; at most "
                             f"{MAX_OPTION_CHARS} are allowed.")
        if field in FLAGS:
            flag = parse_flag(value)
            if flag is None:
                raise BadRequest(f"{field} must be true or false (1/0, on/off, yes/no "
                                 f"also do), got {value[:40]!r}.")
            setattr(args, field, flag)
        elif field == "fill_gaps":
            if value not in ("", "interpolate"):
                raise BadRequest(f"fill_gaps must be empty or 'interpolate', got "
                                 f"{value[:40]!r}.")
            args.fill_gaps = value or None
        elif field == "encoding" and value:
            try:
                args.encoding = check_encoding(value)
            except ValueError as e:
                raise BadRequest(f"encoding: {e}") from None
        elif value:
            setattr(args, field, value)
    return upload.read(), args.data, args


def parse_upload(model_dir: Path):
    from training.cli import load
    from training.data import DataError

    content, name, args = upload_options(model_dir)
    if not content:
        raise InvalidData(f"{name} is empty; choose the CSV file with the sales "
                          "history.")
    try:
        loaded = load(content, name, args)
    except DataError as e:
        raise InvalidData(str(e)) from None

    series = loaded.frame["series"].nunique()
    if series > MAX_UPLOAD_SERIES:
        raise InvalidData(f"{name} has {series} series; the page trains at most "
                          f"{MAX_UPLOAD_SERIES} at a time. Train it with "
                          "`python -m training` instead.")
    return loaded, args


def describe(loaded, args) -> dict:
    return {**loaded.summary(),
            "options": {"date_col": args.date_col, "sales_col": args.sales_col,
                        "series_col": args.series_col, "series_name": args.series_name,
                        "fill_gaps": args.fill_gaps, "encoding": args.encoding,
                        "strict": args.strict,
                        "force": args.force, "model": args.model,
                        "holdout_months": args.holdout}}


@contextmanager
def training_slot(model_dir: Path):
    """One upload trains at a time per model store, across all workers; a second one
    is told so at once rather than queued behind a busy thread."""
    artifact.make_folders(model_dir)
    with ExitStack() as held:
        try:
            held.enter_context(artifact.held_lock(model_dir / ".upload.lock",
                                                  blocking=False))
        except BlockingIOError:
            raise TrainingBusy("Another upload is being trained into this model store "
                               "(that takes from a few seconds to about half a "
                               "minute); try again when it has finished.") from None
        yield


@blueprint.post("/upload/check")
def upload_check():
    check_upload_allowed()
    store = current_app.extensions["model_store"]

    loaded, args = parse_upload(store.model_dir)
    return json_response(describe(loaded, args))


@blueprint.post("/upload/train")
def upload_train():
    from training.cli import (ModelDirFull, PromotionRefused, check_room, publish,
                              store_failure, train)
    from training.selection import GateRefused

    check_upload_allowed()
    store = current_app.extensions["model_store"]
    settings = current_app.extensions["settings"]
    loaded, args = parse_upload(store.model_dir)

    # Before the slot: on a disk with no file left, its lock file cannot be made.
    versions = store.model_dir / artifact.VERSIONS
    try:
        check_room(store.model_dir, versions if versions.is_dir() else store.model_dir)
    except ModelDirFull as e:
        raise StoreUnwritable(str(e)) from None
    with training_slot(store.model_dir):
        started = time.perf_counter()
        try:
            trained = train(args, loaded)
        except GateRefused as e:
            raise InvalidData(str(e)) from None
        try:
            publish(store.model_dir, trained, force=args.force)
        except PromotionRefused as e:
            # The page's form names each CLI option it sets, so the message stands.
            raise NotPromoted(str(e)) from None
        except (OSError, artifact.ArtifactError) as e:
            log.error("an upload could not be published: %s", e)
            raise StoreUnwritable(store_failure(store.model_dir, e,
                                                trained["version"])) from None
        seconds = time.perf_counter() - started
    log.info("trained and published an upload", extra={
        "model_version": trained["version"], "source": loaded.source,
        "rows": len(loaded.frame), "duration_ms": round(seconds * 1000, 1)})
    # This worker serves the new version now; the others find it on their next check.
    store.refresh()

    # What the served version answered and this one does not: requests for these
    # series are now refused (the command line would have asked for --force).
    compared = trained["metadata"]["promotion"].get("compared_with") or {}
    return json_response({"version": trained["version"], "seconds": round(seconds, 3),
                          "dropped_series": compared.get("missing_series", []),
                          "reload_interval": settings.reload_interval,
                          "summary": describe(loaded, args),
                          "evaluation": trained["metadata"]["evaluation"]}, 201)
