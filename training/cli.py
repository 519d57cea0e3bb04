"""`python -m training`: load a sales history, fit, evaluate and publish a model.

Exit codes: 0 published (CURRENT now names the new version); 2 refused input, a
--model-dir that cannot be published into (checked before training), or a model
refused by the strict quality gate (nothing written); 3 trained and written,
but not promoted because it is worse on the backtest than the version being served,
or lacks a series that version answers (the version stays in versions/,
unpublished; `--force` promotes anyway); 4 the model store could not be written
(a full disk, an I/O error: nothing published, nothing half-written left; a file
system with no room left at all is found before training); 5 a --data address could
not be downloaded for a reason that may pass (no answer, a timeout, a server error,
a cut connection): nothing trained, and the same command may succeed later.
"""

import argparse
from collections import Counter
import errno
import hashlib
import http.client
import json
import logging
import os
import re
import ssl
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from training import artifact, backtest, intervals, report
from training.backtest import DEFAULT_HORIZON
from training.data import (Columns, DataError, LoadedSales, check_encoding,
                           load_sales)
from training.features import TYPICAL_MONTH
from training.models import MODEL_KINDS
from training.procedure import (backtest_rows_for_page, compare_with_served,
                                fit_and_check, month_label)
from training.selection import (AUTO, BLEND, GATE_SCOPES, MIN_MONTHS,
                                GateRefused, refusals)
from training.versions import (VersionRefused, current_or_none,
                               in_column, keep_output_printable,
                               prune_versions)

EXIT_OK, EXIT_BAD_INPUT, EXIT_NOT_PROMOTED, EXIT_STORE_FAILED = 0, 2, 3, 4
EXIT_SOURCE_UNREACHABLE = 5
# HTTP answers that say the address itself is wrong: asking again gets the same one.
# 408 (request timeout), 425 (too early) and 429 (too many requests) say "later".
LASTING_HTTP_ERRORS = frozenset(range(400, 500)) - {408, 425, 429}
MODEL_CHOICES = (AUTO, BLEND, *sorted(MODEL_KINDS))
# A sales history is kilobytes to a few megabytes; anything far larger is a wrong
# address (or /dev/zero), for a download and a local file alike.
MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024
# A download may wait this long for any one read, and take this long in all: a server
# trickling a byte at a time must not hold a training Job for hours.
DOWNLOAD_TIMEOUT_SECONDS = 60
DOWNLOAD_DEADLINE_SECONDS = 300
# Series the human summary lists one by one (rejected, scores, notes): a file of
# thousands would bury the overall figures under pages of rows. The report has every
# series, the metadata every rejected one.
SUMMARY_SERIES = 50


def encoding(name: str) -> str:
    try:
        return check_encoding(name)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def model_dir_argument(text: str) -> Path:
    # Path("") is the current directory: an unset variable in a script would
    # otherwise publish a model store into wherever the command runs.
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; pass the model store's directory")
    return Path(text)


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors (exit 2) are also printed on stdout as
    {"error", "exit_code"} when the command line asks for --json, as every other
    refusal is: a script reading stdout (the chart's training Job) is not left with
    nothing."""

    def __init__(self, *args, json_errors: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.json_errors = json_errors

    def error(self, message):
        if self.json_errors:
            print(json.dumps({"error": message, "exit_code": EXIT_BAD_INPUT},
                             indent=2))
        super().error(message)


def asks_for_json(argv) -> bool:
    """Whether --json (or a prefix argparse would take for it) is on the line."""
    return any(len(arg) > 2 and "--json".startswith(arg) for arg in argv)


def parse_args(argv):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = Parser(
        json_errors=asks_for_json(argv),
        prog="python -m training",
        description="Train a monthly sales model and publish it into a model "
                    "directory.",
    )
    parser.add_argument("--data", required=True,
                        help="CSV file, or an http(s) URL to download it from")
    parser.add_argument("--model-dir", required=True, type=model_dir_argument,
                        help="model store to publish the new version into")
    parser.add_argument("--date-col", default="date",
                        help="date column (default: date)")
    parser.add_argument("--sales-col", default="sales",
                        help="sales column (default: sales)")
    parser.add_argument("--series-col", default="series",
                        help="series column, optional in the file (default: series)")
    parser.add_argument("--series-name", default=None,
                        help="name of the series when the file has no series column "
                             "(default: the file name without extension)")
    parser.add_argument("--model", default=AUTO, choices=MODEL_CHOICES,
                        help="model to serve if it beats seasonal naive on the "
                             "backtest (default: auto, the blend of candidates)")
    parser.add_argument("--holdout", type=int, default=DEFAULT_HORIZON,
                        help="months forecast from each backtest cut-off "
                             f"(default: {DEFAULT_HORIZON})")
    parser.add_argument("--gate-scope", default="group", choices=GATE_SCOPES,
                        help="judge the model against seasonal naive over all series "
                             "of the file (group, default) or series by series")
    parser.add_argument("--force", action="store_true",
                        help="publish even when the new version scores worse on the "
                             "backtest than the version being served, or lacks some "
                             "of its series")
    parser.add_argument("--fill-gaps", choices=["interpolate"], default=None,
                        help="fill missing months instead of refusing the file")
    parser.add_argument("--encoding", default="utf-8", type=encoding,
                        help="file encoding (utf-8)")
    parser.add_argument("--strict", action="store_true",
                        help="refuse the whole file when any series is bad, and refuse "
                             "to train when the model does not beat seasonal naive")
    parser.add_argument("--json", action="store_true",
                        help="print the summary as JSON on stdout")
    parser.add_argument("--keep", type=int, default=None, metavar="N",
                        help="after writing the new version, remove all but the N "
                             "newest versions, never the served one or the one "
                             "published before it, nor the one it wrote "
                             "(default: remove none; as "
                             "python -m training.versions prune --keep N)")
    args = parser.parse_args(argv)
    if not 1 <= args.holdout <= 60:
        parser.error(f"--holdout must be between 1 and 60 months, got {args.holdout}")
    if args.keep is not None and args.keep < 1:
        parser.error(f"--keep must be at least 1, got {args.keep}")
    return args


class ModelDirRefused(Exception):
    """A --model-dir a new version could not be published into."""


class SourceUnreachable(DataError):
    """A --data address that could not be downloaded for a reason that may pass: the
    file was not judged, so a later attempt may train (exit 5, not 2)."""


class ModelDirFull(Exception):
    """The file system of --model-dir has no room left: nothing is wrong with the
    command, and the same run succeeds once space is freed (exit 4, not 2)."""


def check_model_dir(model_dir: Path) -> None:
    """Refuse, before any training, a model directory that publishing would fail on.
    This cannot promise that publishing will succeed (the directory may change while
    training runs, the disk may fill up), only that nothing already rules it out."""
    fix = "Pass a directory to --model-dir, or a path where one can be created."
    if model_dir.is_symlink() and not model_dir.exists():
        target = os.readlink(model_dir)
        raise ModelDirRefused(f"--model-dir {model_dir} is a symbolic link to "
                              f"{target!r}, which does not exist. {fix}")
    if model_dir.exists() and not model_dir.is_dir():
        raise ModelDirRefused(f"--model-dir {model_dir} exists and is not a "
                              f"directory. {fix}")

    # The nearest part of the path that exists is where publishing first writes.
    existing = model_dir
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise ModelDirRefused(f"--model-dir {model_dir} cannot be created: {existing} "
                              f"exists and is not a directory. {fix}")
    versions, current = model_dir / artifact.VERSIONS, model_dir / artifact.CURRENT
    published = model_dir / artifact.PUBLISHED
    lock = model_dir / artifact.PUBLISH_LOCK
    if lock.is_symlink() or (lock.exists() and not lock.is_file()):
        raise ModelDirRefused(
            f"{lock} is {'a symbolic link' if lock.is_symlink() else 'not a file'}, "
            "so --model-dir is not a model store training can publish into (the lock "
            "is never followed through a link). Move it out of the way.")
    for path, directory in ((versions, True), (current, False),
                            (published, False)):
        if path.exists() and path.is_dir() != directory:
            raise ModelDirRefused(
                f"{path} is {'not ' if directory else ''}a directory, so --model-dir "
                f"{model_dir} is not a model store training can publish into. Move "
                f"{path.name} out of the way, or pass another --model-dir.")
    for path in (existing, versions):
        if path.is_dir() and os.statvfs(path).f_flag & os.ST_RDONLY:
            raise ModelDirRefused(
                f"--model-dir {model_dir} cannot be written: {path} is on a read-only "
                "file system. Pass a --model-dir on a writable one, or mount it "
                "read-write.")
        if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
            raise ModelDirRefused(
                f"--model-dir {model_dir} cannot be written: {path} is not writable "
                f"by this user (uid {os.getuid()}). Pass a --model-dir it may write, "
                "or change that directory's owner or mode.")
    # Permission bits do not tell everything (root may "write" /proc, where nothing
    # can be created): make a folder there and remove it at once.
    probed = versions if versions.is_dir() else existing
    check_room(model_dir, probed)
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".probe-", dir=probed))
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ModelDirFull(full_message(model_dir, probed, e.strerror)) from None
        raise ModelDirRefused(f"--model-dir {model_dir} cannot be written: creating a "
                              f"folder in {probed} failed ({e.strerror}). Pass a "
                              "--model-dir on a writable file system.") from None


def make_room(args) -> None:
    """check_model_dir; with --keep, a store found full first loses the versions
    pruning after writing would remove anyway, and is checked again: a job retrained
    on a schedule would otherwise find it full at every run."""
    try:
        check_model_dir(args.model_dir)
    except ModelDirFull:
        if args.keep is None or not prune(args, None):
            raise
        check_model_dir(args.model_dir)


def check_room(model_dir: Path, probed: Path) -> None:
    """Refuse, before training spends its minutes, a file system with no block or
    no file left: a version could not be written there. Some room is no promise
    that the version fits; the write itself says so then. What a killed run left
    half-written is removed first, as publishing would: it may be what filled the
    disk."""
    problem = room_problem(probed)
    if problem and (model_dir / artifact.VERSIONS).is_dir():
        try:
            with artifact.held_lock(model_dir / artifact.PUBLISH_LOCK,
                                    blocking=False):
                if artifact.remove_stale_staging(model_dir):
                    problem = room_problem(probed)
        except (BlockingIOError, artifact.ArtifactError):
            pass  # another run is publishing, or no lock can be made: it stays
    if problem:
        raise ModelDirFull(full_message(model_dir, probed, problem))


def room_problem(path: Path) -> str | None:
    """What the file system holding `path` has run out of, or None. A path not made
    yet (the store of a first upload) is judged by the folder it would be made in."""
    path = Path(path)
    while not path.exists() and path.parent != path:
        path = path.parent
    st = os.statvfs(path)
    # Root may use the blocks reserved for it; anyone else only the available ones.
    blocks = st.f_bfree if os.geteuid() == 0 else st.f_bavail
    # A total of 0 means the file system does not count blocks or files (/proc;
    # btrfs and some network file systems for files), not that none is left.
    if st.f_blocks and blocks == 0:
        return "no space left"
    if st.f_files and st.f_favail == 0:
        return "no file (inode) left"
    return None


def full_message(model_dir: Path, probed: Path, what: str) -> str:
    return (f"the model store {model_dir} cannot take a new version: the file "
            f"system holding {probed} is full ({what}). Nothing was trained or "
            "published; CURRENT is unchanged. Free some space (`python -m "
            f"training.versions prune --model-dir {model_dir} --keep N` removes old "
            "versions) and run again.")


class HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http:// and https:// only (urllib's default would also
    follow one to ftp://)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise DataError(f"{shown_address(req.full_url)} redirects to "
                            f"{shown_address(newurl)[:200]}; only http:// "
                            "and https:// addresses are downloaded.")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def download(url: str) -> bytes:
    """The whole body of `url`; DataError when it is too large, too slow, or shorter
    than its Content-Length (a connection cut mid-file must not train on part of
    the history)."""
    opener = urllib.request.build_opener(HttpOnlyRedirects)
    deadline = time.monotonic() + DOWNLOAD_DEADLINE_SECONDS
    with opener.open(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
        declared = response.headers.get("Content-Length")
        chunks, size = [], 0
        while chunk := response.read1(1 << 16):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_DOWNLOAD_BYTES:
                raise DataError(f"{shown_address(url)} is larger than "
                                f"{MAX_DOWNLOAD_BYTES} bytes; "
                                "that is not a monthly sales history.")
            if time.monotonic() > deadline:
                raise SourceUnreachable(
                    f"{shown_address(url)} was still downloading after "
                    f"{DOWNLOAD_DEADLINE_SECONDS} s "
                    f"({size} bytes so far); the server is too slow. Download the "
                    "file and pass its path to --data.")
    if declared is not None and declared.isdigit() and size != int(declared):
        raise SourceUnreachable(
            f"{shown_address(url)}: the download stopped after {size} of the "
            f"{int(declared)} bytes "
            "the server announced, so the file is incomplete. Try again; nothing was "
            "trained.")
    return b"".join(chunks)


def shown_address(url: str) -> str:
    """A URL as messages and the metadata show it: without the user info, the path
    parameters (`;jsessionid=...`), the query or the fragment, where basic
    authentication, sessions and signed URLs carry their secrets."""
    address = urllib.parse.urlsplit(url)
    host = address.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    try:
        port = address.port
    except ValueError:
        port = None
    path = re.sub(r";[^/]*", "", address.path)
    hidden = "?..." if address.query or address.fragment else ""
    return f"{address.scheme}://{host}{f':{port}' if port else ''}{path}{hidden}"


def download_within_deadline(url: str) -> bytes:
    """`download` on a thread of its own, given up after the deadline: the socket
    timeout bounds each read, and the body loop checks the clock, but a server may
    trickle its status line and headers slower than either notices."""
    outcome: dict = {}

    def run():
        try:
            outcome["content"] = download(url)
        except BaseException as e:  # handed over to the caller's thread
            outcome["error"] = e

    worker = threading.Thread(target=run, name="download", daemon=True)
    worker.start()
    worker.join(DOWNLOAD_DEADLINE_SECONDS + 1)
    if worker.is_alive():
        raise SourceUnreachable(
            f"{shown_address(url)} was still downloading after "
            f"{DOWNLOAD_DEADLINE_SECONDS} s; the "
            "server is too slow. Download the file and pass its path to --data.")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["content"]


def readable_name(name: str) -> str:
    """A file name as text that JSON, the report and a series name can hold: bytes
    the file system's encoding could not decode (a Latin-1 name on a UTF-8 system,
    kept by Python as lone surrogates) become U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def lasting_download_error(error: Exception) -> bool:
    """Whether asking `--data`'s address again would fail the same way: a malformed
    address, an HTTP answer saying the address is wrong, or a certificate this
    machine does not trust. Anything else (no answer, a timeout, a reset, a server
    error) may pass."""
    if isinstance(error, urllib.error.HTTPError):
        return error.code in LASTING_HTTP_ERRORS
    reason = getattr(error, "reason", None)
    return (isinstance(error, ValueError)
            or isinstance(error, ssl.SSLCertVerificationError)
            or isinstance(reason, ssl.SSLCertVerificationError))


def read_source(source: str) -> tuple[bytes, str]:
    """The raw bytes of a local file or URL, and the name to use for it in messages."""
    if source.startswith(("http://", "https://")):
        try:
            content = download_within_deadline(source)
        except DataError:
            raise
        except (urllib.error.URLError, http.client.HTTPException, OSError,
                ValueError) as e:
            message = (f"Cannot download {shown_address(source)}: {e!s:.300}. Check "
                       "the URL and that this machine can reach it.")
            if lasting_download_error(e):
                raise DataError(message) from None
            raise SourceUnreachable(message) from None
        # The name is stored in the version's metadata, which GET /model and the
        # report serve to anyone: the last segment of the path only.
        address = urllib.parse.urlsplit(shown_address(source))
        return content, (address.path.rstrip("/").rsplit("/", 1)[-1]
                         or address.hostname or "download")

    path = Path(source)
    try:
        with path.open("rb") as file:
            content = file.read(MAX_DOWNLOAD_BYTES + 1)
        if len(content) > MAX_DOWNLOAD_BYTES:
            raise DataError(f"{source} is larger than {MAX_DOWNLOAD_BYTES} bytes; that "
                            "is not a monthly sales history.")
        return content, readable_name(path.name)
    except FileNotFoundError:
        scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", source)
        if scheme:
            raise DataError(f"{source}: only http:// and https:// addresses can be "
                            f"downloaded, not {scheme.group(1)}://. Download the file "
                            "and pass its path to --data.") from None
        raise DataError(f"{source}: no such file. Pass the CSV's path to --data.") \
            from None
    except IsADirectoryError:
        raise DataError(f"{source} is a directory; pass a CSV file to --data.") \
            from None
    except OSError as e:
        raise DataError(f"Cannot read {source}: {e.strerror}.") from None


def fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of the parsed rows, so the same history gives the same fingerprint
    however the file was formatted."""
    canonical = frame.to_csv(index=False, date_format="%Y-%m", float_format="%.10g")
    return hashlib.sha256(canonical.encode()).hexdigest()


def library_versions() -> dict:
    import joblib
    import sklearn

    return {"python": sys.version.split()[0], "scikit-learn": sklearn.__version__,
            "pandas": pd.__version__, "numpy": np.__version__,
            "joblib": joblib.__version__}


def load(content: bytes, name: str, args) -> LoadedSales:
    """Parse a history exactly as training does, with the options in `args`; the
    upload page calls this alone to show what training would see."""
    columns = Columns(date=args.date_col, sales=args.sales_col, series=args.series_col)
    return load_sales(content, columns=columns, strict=args.strict,
                      fill_gaps=args.fill_gaps, encoding=args.encoding,
                      series_name=args.series_name,
                      source_name=name, min_months=MIN_MONTHS)


def history_file(frame: pd.DataFrame) -> bytes:
    """The training months as JSON, stored beside the model so the browser page can
    draw what the model learned from. Months are contiguous within a series, so the
    first month and the list of values say everything."""
    history = {
        str(series): {"first": rows["date"].iloc[0].strftime("%Y-%m"),
                      "sales": rows["sales"].tolist()}
        for series, rows in frame.groupby("series", sort=True)
    }
    return json.dumps({"series": history}, separators=(",", ":")).encode()


def train(args, loaded: LoadedSales | None = None) -> dict:
    """Everything but publishing: returns the fitted model and its metadata.
    `loaded` is a history already parsed with `load` (an upload); without it the
    file or URL in `args.data` is read."""
    if loaded is None:
        content, name = read_source(args.data)
        loaded = load(content, name, args)
    name, frame = loaded.source, loaded.frame
    started = time.perf_counter()
    outcome = fit_and_check(frame, args.model, args.gate_scope, horizon=args.holdout)
    replaced = refusals(outcome.choices, args.model)
    if args.strict and replaced:
        why = gate_reason({n: outcome.choices[n].reason for n in replaced})
        raise GateRefused(
            f"--strict: the requested model {args.model!r} does not beat seasonal "
            f"naive on the backtest for {len(replaced)} of {len(outcome.choices)} "
            f"series ({some_names(replaced)}): {why}. "
            "Nothing was written. Train without --strict to serve the best candidate "
            "instead, or choose another --model.")

    digest = fingerprint(frame)
    now = datetime.now(timezone.utc)
    cleaned = outcome.model.cleaned_
    series_info = [
        {"name": s, "first": r["date"].iloc[0].strftime("%Y-%m"),
         "last": r["date"].iloc[-1].strftime("%Y-%m"), "months": len(r),
         **outcome.choices[s].as_dict(),
         # Gross errors every model was fitted without (training/cleaning.py);
         # the backtest does not score them either.
         "cleaned": [{"month": month_label(m), "recorded": recorded, "used": used}
                     for m, recorded, used in cleaned.get(s, [])],
         # What the models saw: the sales times this power of ten
         # (training/features.py, log_unit); forecasts are divided by it again.
         "unit_factor": outcome.model.units_[s]}
        for s, r in frame.groupby("series", sort=True)
    ]
    metadata = {
        "created_at": now.isoformat(timespec="seconds"),
        "model_kind": args.model,
        "data": {"source": name, "fingerprint": digest, "rows": len(frame),
                 "series_count": len(series_info),
                 "first": frame["date"].min().strftime("%Y-%m"),
                 "last": frame["date"].max().strftime("%Y-%m"),
                 "notes": loaded.notes, "rejected": loaded.rejected,
                 "min_months": MIN_MONTHS},
        "series": series_info,
        "feature_contract": {
            "inputs": {"date": "month, as YYYY-MM or YYYY-MM-DD",
                       "series": "one of the trained series names"},
            "output": "sales, in the unit of the training data",
            "frequency": "monthly",
        },
        "gate": {"requested": args.model, "scope": args.gate_scope,
                 "strict": args.strict, "replaced": replaced},
        "evaluation": outcome.evaluation,
        "backtest": {**outcome.protocol,
                     "series": backtest_rows_for_page(outcome.table, outcome.choices)},
        "intervals": outcome.intervals,
        "metrics": outcome.metrics,
        "libraries": library_versions(),
    }
    version = artifact.new_version_id(now)
    metadata["metrics"]["training_seconds"] = round(time.perf_counter() - started, 3)
    if metadata["metrics"]["training_seconds"] > backtest.PROGRESS_AFTER:
        logging.getLogger("training").info(
            "report: drawing it (%d series in the table, at most %d plotted)",
            len(series_info), report.MAX_PLOTS)
    html, png = report.build(frame, outcome, {**metadata, "version": version})
    metadata["metrics"]["seconds_with_report"] = round(time.perf_counter() - started, 3)
    return {"version": version, "model": outcome.model, "metadata": metadata,
            "outcome": outcome, "frame": frame,
            "files": {artifact.HISTORY_FILE: history_file(frame),
                      report.HTML_FILE: html, report.PNG_FILE: png}}


class PromotionRefused(Exception):
    """The new version was kept unpublished: it is worse on the backtest than the one
    being served, or lacks a series that one answers."""

    def __init__(self, message: str, path: Path):
        super().__init__(message)
        self.path = path


def served_blends(model, metadata: dict) -> dict:
    """{series: {kind: weight}} of a served version, from its fitted forecaster or,
    for versions written before blends, from the kind its metadata names."""
    blends = getattr(model, "blends_", None)
    if blends is not None:
        return {s: {k: w for k, w in b.items() if isinstance(k, str)}
                for s, b in blends.items()}
    return {s["name"]: {s.get("model", metadata.get("model_kind")): 1.0}
            for s in metadata.get("series", [])}


def promotion_check(model_dir: Path, trained: dict) -> dict | None:
    """How the new version compares with the served one; None when none is served.

    A CURRENT that holds no version id (edited by hand, a symbolic link, unreadable)
    is one the service refuses to follow, so it names nothing to compare with, and
    publishing replaces it: refusing here would leave retraining, the natural repair,
    unable to repair the store. "bad_pointer" says what was wrong with it. A service
    already running may still serve a version it loaded before the damage, but the
    store no longer says which."""
    try:
        current = artifact.read_current(model_dir)
    except artifact.ArtifactError as e:
        return {"served_version": None, "comparable": False, "bad_pointer": str(e),
                "reason": f"{artifact.CURRENT} names no version ({e})"}
    if current is None:
        return None
    try:
        model, metadata = artifact.load_version(model_dir, current)
    except artifact.ArtifactError as e:
        return {"served_version": current, "comparable": False,
                "reason": f"the served version does not load ({e})"}
    comparison = compare_with_served(trained["frame"], trained["outcome"],
                                     served_blends(model, metadata))
    served = [s["name"] for s in metadata.get("series", [])]
    trained_series = {s["name"] for s in trained["metadata"]["series"]}
    return {"served_version": current, **comparison,
            "missing_series": sorted(set(served) - trained_series)}


def publish(model_dir: Path, trained: dict, force: bool = False,
            keep_served_series: bool = False) -> Path:
    """Write the version and, unless it is worse than the served one on the same
    backtest (and not `force`), switch CURRENT to it. A refused version is kept,
    unpublished, and PromotionRefused says where.

    With `keep_served_series` (the command line), a version that lacks a series the
    served version answers is refused the same way: publishing it would turn that
    series' requests into 404s. The upload page leaves it off: its "Train and
    publish" serves the uploaded file in place of what was served."""
    with artifact.publish_lock(model_dir):
        # A run killed while writing left a hidden staging directory; under the lock
        # nobody else is writing, so whatever staging is there now is dead.
        artifact.remove_stale_staging(model_dir)
        comparison = promotion_check(model_dir, trained)
        worse = bool(comparison and comparison.get("comparable")
                     and not comparison["not_worse"])
        dropped = (comparison or {}).get("missing_series", [])
        refused = worse or bool(keep_served_series and dropped)
        trained["metadata"]["promotion"] = {
            "compared_with": comparison, "forced": force and refused,
            "promoted": force or not refused}
        path = artifact.write_version(model_dir, trained["version"], trained["model"],
                                      trained["metadata"], trained.get("files"))
        if refused and not force:
            raise PromotionRefused(refusal(trained, comparison, worse, path), path)
        try:
            artifact.set_current(model_dir, trained["version"])
        except BaseException:
            # Its metadata says promoted; a version CURRENT never came to name must
            # not stay behind saying so.
            if current_or_none(model_dir) != trained["version"]:
                artifact.remove_version(model_dir, trained["version"],
                                        ignore_errors=True)
            raise
    return path


def refusal(trained: dict, comparison: dict, worse: bool, path: Path) -> str:
    """Why a version was kept unpublished, and how to publish it or do better."""
    served, dropped = comparison["served_version"], comparison.get("missing_series")
    why, how = [], ""
    apart = comparison.get("unscaled") or {}
    if worse and not comparison.get("scaled_not_worse", False):
        shared = comparison.get("scored_series", len(comparison["series"]))
        why.append(f"scores {comparison['metric'].upper()} {comparison['new']:.4f} on "
                   f"the backtest of the {shared} series it shares "
                   f"with the served version {served}, which scores "
                   f"{comparison['served']:.4f} on the same months")
    if worse and apart and not apart["not_worse"]:
        why.append(f"scores MAE {apart['new']:.4f} on the backtest of "
                   f"{len(apart['series'])} series with no MASE scale (each month "
                   f"the one a year before: {some_names(apart['series'])}), which "
                   f"the served version {served} scores {apart['served']:.4f}")
    if dropped:
        why.append(f"does not have {len(dropped)} series that the served version "
                   f"{served} answers ({some_names(dropped)}), so requests for them "
                   "would be refused")
        how = " To keep serving them, train on a file that has them too" + (
            "." if len(trained["metadata"]["series"]) > 1 else
            ": a file without a series column names its one series after the file "
            "unless --series-name names it.")
        if len(dropped) == 1 and len(trained["metadata"]["series"]) == 1:
            # One series for another: a renamed copy of the served file, or
            # another product's file. Only the first may take the served name;
            # without the served history to compare with, neither is said.
            same = same_sales(path.parent.parent, served, dropped[0], trained["frame"])
            if same:
                how = (" The file's sales are those of the served series "
                       f"{dropped[0]!r} on (nearly) all the months both have: "
                       f"train with --series-name {dropped[0]} to keep it served.")
            elif same is False:
                how = (" The file's sales are not those of the served series "
                       f"{dropped[0]!r} (they differ, or share fewer than "
                       f"{SAME_SALES_MONTHS} months), so it is another series; "
                       "naming it that would serve these sales under the served "
                       "series' name. To serve both, train on a file that has both.")
    return (f"Not promoted: version {trained['version']} {' and '.join(why)}. CURRENT "
            f"still names {served}; the new version was kept unpublished in {path}."
            f"{how} Pass --force to train and publish anyway, or publish this "
            f"version as it is: {this_python()} -m training.versions publish "
            f"--model-dir {path.parent.parent} {trained['version']}")


# Months two histories must share, nearly all with the same sales, to count as one
# series: a figure revised since (a late return booked) leaves it the same series.
SAME_SALES_MONTHS = 12
SAME_SALES_SHARE = 0.9


def same_sales(model_dir: Path, version: str, name: str,
               frame: pd.DataFrame) -> bool | None:
    """Whether `frame` (one series) has the sales of series `name` as stored in
    `version`'s history on at least SAME_SALES_MONTHS months both have, and on
    SAME_SALES_SHARE of them: the same series under another name, perhaps with
    months added or a few revised. None when that history is missing or
    unreadable, so nothing can be said either way."""
    try:
        first, sales = artifact.read_history(model_dir, version)[name]
        stored = pd.Series(sales, index=pd.period_range(first, periods=len(sales),
                                                         freq="M"))
    except (OSError, ValueError, KeyError, TypeError, artifact.ArtifactError):
        return None  # no history to compare with: neither vouch nor deny
    new = pd.Series(frame["sales"].to_numpy(dtype=float),
                    index=pd.PeriodIndex(frame["date"], freq="M"))
    common = stored.index.intersection(new.index)
    equal = np.isclose(stored[common], new[common], rtol=1e-9, atol=0)
    return len(common) >= SAME_SALES_MONTHS and bool(
        equal.mean() >= SAME_SALES_SHARE)


def this_python() -> str:
    """The interpreter running this, as a command to copy: relative when it lives
    under the working directory (.venv/bin/python), else absolute."""
    try:
        return str(Path(sys.executable).relative_to(Path.cwd()))
    except ValueError:
        return sys.executable


def some_names(names: list[str], shown: int = 5) -> str:
    """The first few names of a list, and how many more there are."""
    more = f", ... and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def gate_reason(reasons: dict[str, str], others: str = "") -> str:
    """Why the gate replaced the requested model, for a line about all the replaced
    series (name -> reason): their shared reason, or, when they differ (each series
    judged alone, one too short for the replacement, one judged apart), the reason
    most of them share, said to be theirs only, and `others` says where the rest
    are."""
    counts = Counter(reasons.values())
    common, count = counts.most_common(1)[0]
    if count == len(reasons):
        return common
    first = next(name for name, reason in reasons.items() if reason == common)
    which = f"'{first}'" if count == 1 else f"'{first}' and {count - 1} more"
    rest = len(reasons) - count
    rest = "series" if rest == 1 else f"{rest} series"
    return f"on {which}: {common}; the other {rest} for reasons of their own{others}"


def format_summary(version: str, metadata: dict) -> str:
    data, protocol = metadata["data"], metadata["backtest"]
    promoted = metadata.get("promotion", {}).get("promoted", True)
    lines = [
        f"{'Published' if promoted else 'Wrote (unpublished)'} model {version}",
        f"  data: {data['source']}, {data['rows']} months in {data['series_count']} "
        f"series, {data['first']} to {data['last']}",
    ]
    compared = metadata.get("promotion", {}).get("compared_with") or {}
    if promoted and compared.get("missing_series"):
        dropped = compared["missing_series"]
        lines.append(f"  dropped: {len(dropped)} series that version "
                     f"{compared['served_version']} answered, now refused: "
                     f"{some_names(dropped)}")
    lines += [f"  note: {n}" for n in data["notes"]]
    rejected = list(data["rejected"].items())
    lines += [f"  rejected series {s!r}: {why}" for s, why in rejected[:SUMMARY_SERIES]]
    lines += _more(len(rejected), "rejected series, in the metadata (data.rejected)")
    backtest = report.backtest_sentence(protocol)
    if protocol.get("scored_origins") != []:
        backtest += "; model refit on all months afterwards"
    lines.append(f"  backtest: {backtest}")
    header = (f"  {'series':<24} {'model':<28} {'RMSE':>10} {'MAE':>10} {'MAPE%':>7} "
              f"{'sMAPE%':>7} {'MASE':>6}")
    lines.append(header)
    for info in metadata["series"][:SUMMARY_SERIES]:
        scores = metadata["evaluation"][info["name"]]["scores"]
        for kind in dict.fromkeys([info["model"], "seasonal-naive", "linear"]):
            if scores.get(kind) is None:
                continue
            m = scores[kind]
            label = f"{kind} (served)" if kind == info["model"] else kind
            lines.append(f"  {in_column(info['name'], 24)} {in_column(label, 28)} "
                         f"{_amount(m['rmse'], 10)} "
                         f"{_amount(m['mae'], 10)} {_maybe(m['mape'], 7, 1)} "
                         f"{m['smape']:>7.1f} {_maybe(m['mase'], 6, 2)}")
        if not scores:
            lines.append(f"  {in_column(info['name'], 24)} "
                         f"{in_column(info['model'], 28)} no backtest")
    lines += _more(len(metadata["series"]), "series, scored in the report")
    gate = metadata["gate"]
    if gate["replaced"]:
        why = gate_reason({s["name"]: s["reason"] for s in metadata["series"]
                           if s["name"] in gate["replaced"]},
                          ", in the metadata (series)")
        # Named here: a reason a series carries alone speaks of "this series", and
        # the table above may have stopped before it.
        lines.append(f"  gate: {len(gate['replaced'])} series not served by "
                     f"{gate['requested']} ({some_names(gate['replaced'])}): {why}")
    notes = []
    for info in metadata["series"]:
        if info["tier"] != "regular":
            notes.append(f"  {info['name']}: {info['reason']}")
        if info.get("cleaned"):
            shown = "; ".join(f"{c['month']} recorded {c['recorded']:.6g}, fitted as "
                              f"{c['used']:.6g}" for c in info["cleaned"][:3])
            more = len(info["cleaned"]) - 3
            notes.append(f"  {info['name']}: gross errors kept out of the models' "
                         f"fits: {shown}{f'; {more} more' if more > 0 else ''}")
    lines += notes[:SUMMARY_SERIES]
    lines += _more(len(notes), "notes on single series, in the metadata (series)")
    rescaled = [info["name"] for info in metadata["series"]
                if info.get("unit_factor", 1.0) != 1.0]
    if rescaled:
        lines.append(f"  units: {len(rescaled)} series of amounts with a typical month "
                     f"under {TYPICAL_MONTH:,.0f} fitted in a unit a power of ten "
                     f"smaller (metadata unit_factor): {some_names(rescaled)}")
    m = metadata["metrics"]
    if m.get("served"):
        lines.append(f"  overall: MASE {_maybe(m['served']['mase'], 0, 3)} vs seasonal "
                     f"naive {_maybe(m['seasonal-naive']['mase'], 0, 3)}"
                     f"{report.mase_leaves_out(m, some_names)}; RMSE "
                     f"{_maybe(m['relative_rmse'], 0, 2)} x seasonal naive's")
    coverage = metadata["intervals"]["coverage"]
    if coverage.get("measured"):
        lines.append(f"  intervals: 80% covered {coverage['80']:.0%}, 95% covered "
                     f"{coverage['95']:.0%} of {coverage['months']} later backtest "
                     "months (calibrated on the earlier cut-offs)")
    thin = intervals.thin_levels(metadata["intervals"])
    lines += [f"  intervals: {sentence}" for sentence in thin]
    equal = intervals.equal_bands(metadata["intervals"])
    if equal:
        lines.append("  intervals: "
                     + intervals.equal_bands_sentence(equal, some_names(equal)))
    lines += [f"  warning: {sentence}" for sentence in intervals.short_levels(coverage)]
    lines.append(f"  trained in {m['training_seconds']:.1f} s "
                 f"({m['seconds_with_report']:.1f} s with the report)")
    return "\n".join(lines)


def _more(count: int, what: str) -> list[str]:
    """The line closing a list cut at SUMMARY_SERIES entries, if it was cut."""
    if count <= SUMMARY_SERIES:
        return []
    return [f"  ... and {count - SUMMARY_SERIES} more {what}"]


def _amount(value: float, width: int) -> str:
    """An error in the unit of the sales: one decimal, as counts read best, unless
    that leaves fewer than four significant digits (sales in millions, say) or does
    not fit its column (sales in hundreds of billions)."""
    text = f"{value:>{width}.1f}"
    fits = len(text) <= width and (abs(value) >= 100 or value == 0)
    return text if fits else f"{value:>{width}.4g}"


def _maybe(value, width: int, digits: int) -> str:
    return f"{'undef':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


class ProgressLines(logging.Handler):
    """The training logger's messages (progress of a long backtest) as plain lines on
    whatever sys.stderr is when they are written."""

    def emit(self, record: logging.LogRecord) -> None:
        print(record.getMessage(), file=sys.stderr, flush=True)


def show_progress() -> None:
    logger = logging.getLogger("training")
    if not any(isinstance(h, ProgressLines) for h in logger.handlers):
        logger.addHandler(ProgressLines())
        logger.setLevel(logging.INFO)


def refused(args, message: str, code: int) -> int:
    """Say why nothing was published, on stderr; with --json also on stdout, as
    {"error", "exit_code"}, so a script reading stdout is not left with nothing."""
    print(f"error: {message}", file=sys.stderr)
    if args.json:
        print(json.dumps({"error": message, "exit_code": code}, indent=2))
    return code


def main(argv=None) -> int:
    args = parse_args(argv)
    keep_output_printable()
    show_progress()
    try:
        make_room(args)
        trained = train(args)
    except SourceUnreachable as e:
        return refused(args, str(e), EXIT_SOURCE_UNREACHABLE)
    except (ModelDirRefused, DataError, GateRefused) as e:
        return refused(args, str(e), EXIT_BAD_INPUT)
    except ModelDirFull as e:
        return refused(args, str(e), EXIT_STORE_FAILED)

    code = EXIT_OK
    try:
        path = publish(args.model_dir, trained, force=args.force,
                       keep_served_series=True)
    except PromotionRefused as e:
        print(f"error: {e}", file=sys.stderr)
        path, code = e.path, EXIT_NOT_PROMOTED
    except (OSError, artifact.ArtifactError) as e:
        # The disk filled up or failed while writing: nothing was published, and
        # nothing half-written is left (write_version and publish clean up).
        if args.keep is not None:
            prune(args, None)  # the room a full disk lacked, for the next run
        return refused(args, store_failure(args.model_dir, e, trained["version"]),
                       EXIT_STORE_FAILED)
    pruned = prune(args, trained["version"]) if args.keep is not None else None
    bad_pointer = (trained["metadata"]["promotion"]["compared_with"] or {}) \
        .get("bad_pointer")
    if bad_pointer and code == EXIT_OK:
        print(f"warning: {bad_pointer} Publishing replaced it: {artifact.CURRENT} now "
              f"names {trained['version']}, which was not compared with any served "
              "version.", file=sys.stderr)
    if args.json:
        extra = {} if pruned is None else {"pruned": pruned}
        print(json.dumps({"version": trained["version"], "path": str(path),
                          **trained["metadata"], **extra}, indent=2))
    else:
        print(format_summary(trained["version"], trained["metadata"]))
    return code


def store_failure(model_dir: Path, error: Exception, version: str) -> str:
    """Why publishing `version` into `model_dir` failed (OSError or ArtifactError),
    for the command's error line and the upload page alike."""
    reason = error
    if isinstance(error, OSError) and error.strerror:
        reason = error.strerror + (f" ({error.filename})" if error.filename else "")
    if current_or_none(model_dir) == version:
        # CURRENT was replaced and only making that durable failed (the folder's
        # fsync): services follow it, so saying nothing was published would lie.
        return (f"the model store {model_dir} failed after {artifact.CURRENT} was "
                f"switched to {version}: {reason}. The version is published and "
                "services switch to it, but the switch may not survive a crash of "
                "the machine; check the disk.")
    return (f"the model store {model_dir} could not be written: {reason}. Nothing "
            "was published; CURRENT is unchanged.")


def prune(args, written: str | None) -> list[str] | None:
    """--keep: remove old versions once the new one is written (published or kept
    unpublished), or failed to be, so a store retrained on a schedule stays the
    same size, and one that filled its disk has room on the next run. `written`,
    the version this run wrote, is never removed: kept unpublished, it is what the
    run tells to publish, and a run finishing meanwhile may have written a newer
    one. Returns the versions removed; None, with a warning, when pruning was
    refused: the exit code says how the run itself went."""
    try:
        removed = prune_versions(args.model_dir, args.keep, written).removed
    except (VersionRefused, artifact.ArtifactError, OSError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else e
        print(f"warning: --keep {args.keep}: no version was removed from "
              f"{args.model_dir}: {reason}", file=sys.stderr)
        return None
    if removed:
        print(f"--keep {args.keep}: removed {len(removed)} older version(s) from "
              f"{args.model_dir}: {', '.join(removed)}", file=sys.stderr)
    return removed
