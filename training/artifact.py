"""The model store: versioned artifacts in a directory, published atomically.

Layout of a model directory::

    CURRENT                      the version being served (one line of text)
    PUBLISHED                    every version CURRENT has named, oldest first,
                                 each with the time it was named (Unix seconds)
    versions/<version>/model.joblib
    versions/<version>/metadata.json   includes the SHA-256 of model.joblib
    versions/<version>/history.json    the months trained on, for the browser page
    versions/<version>/report.html     the training report, served at /report
    versions/<version>/report.png      its overview image, served at /report.png

A version is written under a hidden temporary name and renamed into place only when
complete, and CURRENT is replaced with `os.replace`, so a reader sees either the old
version or the new one, never half of either. Training and the service share this
module so both sides agree on the layout.
"""

import errno
import fcntl
import hashlib
import io
import json
import logging
import math
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import joblib

from training.unpickle import load_model

log = logging.getLogger("training")

CURRENT = "CURRENT"
# The versions CURRENT has named, one per line, oldest first: a worker that finds
# CURRENT's version refused goes back along it (`publication_chain`,
# service.model_store), and pruning keeps the version it would go back to. Past
# PUBLISHED_KEPT entries it is rewritten shorter with the same way back for every
# version still in the store (`compact_published`).
PUBLISHED = "PUBLISHED"
PUBLISHED_KEPT = 100
# Workers notice a new CURRENT only at their next reload, so a version CURRENT named
# this recently may still be served; pruning spares it (training.versions), and a
# shorter record keeps these entries and their times as they are. Ten minutes
# covers any sensible reload interval (5 s by default) and, for the price of a
# version kept a little longer, clocks a few minutes apart on the machines that
# publish and prune; a time this far ahead of the reader's clock counts as recent
# too, one further ahead (a clock set wrong) as old.
RECENT_SECONDS = 600
# A compacted record holds two entries per version in the store at most; a store of
# over a thousand versions, never pruned, loses the oldest beyond this many, which
# keeps the file within what `read_published` reads.
PUBLISHED_MAX = 2000
# Room for PUBLISHED_MAX entries with their times (42 bytes each).
PUBLISHED_READ_LIMIT = 128 * 1024
VERSIONS = "versions"
MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
# The training months (JSON), for the browser page's history chart.
HISTORY_FILE = "history.json"
# Version ids are generated here (new_version_id); anything else found in CURRENT is
# refused, so the pointer can never lead outside versions/.
VERSION_PATTERN = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$")

# Hidden names of a version being written and of CURRENT or PUBLISHED being replaced;
# a publisher killed mid-write leaves them behind, and the next publisher removes them.
STAGING_PREFIX = ".incoming-"
POINTER_TEMP_PREFIXES = (".CURRENT-", ".PUBLISHED-")
# A version being removed is first renamed to this hidden prefix: a remover killed
# halfway leaves a folder the next publisher removes, never a version that is
# listed, kept and published as whole with some of its files already gone.
REMOVING_PREFIX = ".removing-"
# Modes of the folders and files training creates, whatever its umask: the service
# may run as another user, and reads only; no other user may change what it loads.
FOLDER_MODE = 0o755
FILE_MODE = 0o644


class ArtifactError(Exception):
    """A model version that cannot be trusted: missing, unreadable or tampered with."""


def new_version_id(created: datetime) -> str:
    """The UTC second of `created`, then 8 hex digits: 4 of the fraction of that
    second, so that ids sort in the order versions were made (several a second on a
    fast machine; `prune` keeps the newest by that order), and 4 random ones against
    two runs in the same instant (15 microseconds)."""
    fraction = created.microsecond * 0x10000 // 1_000_000
    return f"{created:%Y%m%dT%H%M%SZ}-{fraction:04x}{secrets.token_hex(2)}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


PUBLISH_LOCK = ".publish.lock"


@contextmanager
def held_lock(path: Path, blocking: bool = True):
    """An exclusive flock on `path`, created if missing. The file is never followed
    through a symbolic link and never truncated: its content means nothing, but a
    link planted there could lead to a file whose content does. With `blocking`
    false, BlockingIOError says another process holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                     FILE_MODE)
    except OSError as e:  # a symbolic link (ELOOP), a folder (EISDIR), ...
        if e.errno == errno.EROFS:
            raise ArtifactError(f"{path.parent} is on a read-only file system; it "
                                "cannot be changed from here.") from e
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ArtifactError(f"{path} cannot be created: the file system holding "
                                f"{path.parent} is full ({e.strerror}). Free some "
                                "space and try again.") from e
        raise ArtifactError(f"{path} cannot serve as a lock file ({e.strerror}); it "
                            "must be a regular file or absent. Move it out of the "
                            "way.") from e
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ArtifactError(f"{path} cannot serve as a lock file: it is not a "
                                "regular file. Move it out of the way.")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not blocking:
                raise
            # Another run holds it, perhaps for long (a large store being pruned, a
            # stopped process): say why nothing happens rather than wait silently.
            log.warning("waiting for %s: another run is publishing or pruning in "
                        "%s, and changes the store only when it is done", path,
                        path.parent)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def make_folders(path: Path) -> None:
    """Create the folder `path` and its missing parents, each with FOLDER_MODE;
    folders that exist keep their mode."""
    path = Path(path)
    if path.is_dir():
        return
    make_folders(path.parent)
    try:
        path.mkdir()
    except FileExistsError:
        if not path.is_dir():
            raise
        return  # made meanwhile by another publisher
    os.chmod(path, FOLDER_MODE)


@contextmanager
def publish_lock(model_dir: Path):
    """Serialise publishers (two training runs finishing together) on one directory."""
    make_folders(model_dir)
    with held_lock(model_dir / PUBLISH_LOCK):
        yield


def write_version(model_dir: Path, version: str, model, metadata: dict,
                  extra_files: dict[str, bytes] | None = None) -> Path:
    """Write a complete version directory; it appears under its final name at once."""
    if not VERSION_PATTERN.match(version):
        raise ValueError(f"Malformed version id {version!r}.")
    versions = Path(model_dir) / VERSIONS
    make_folders(versions)
    final = versions / version
    if final.exists():
        raise FileExistsError(f"Model version {version} already exists in {versions}.")

    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{version}-", dir=versions))
    renamed = False
    try:
        joblib.dump(model, staging / MODEL_FILE)
        # The service loads with the allow-list unpickler; a model it would refuse
        # fails here, before it is published.
        load_model(staging / MODEL_FILE)
        metadata = {**metadata, "version": version,
                    "sha256": sha256_of(staging / MODEL_FILE)}
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        for name, content in (extra_files or {}).items():
            (staging / name).write_bytes(content)
        for child in staging.iterdir():
            with open(child, "rb") as f:
                os.fchmod(f.fileno(), FILE_MODE)
                os.fsync(f.fileno())
        os.chmod(staging, FOLDER_MODE)
        os.rename(staging, final)
        renamed = True
        _fsync_dir(versions)
    except BaseException:
        # Renamed but not made durable (the folder's fsync failed: an I/O error,
        # a file system that refuses it): the caller reports a failure, so the
        # version must not stay behind looking complete.
        if renamed:
            remove_version(model_dir, version, ignore_errors=True)
        else:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def remove_version(model_dir: Path, version: str, ignore_errors: bool = False) -> None:
    """Delete a version's folder so that it leaves the store at once: renamed to a
    hidden name first (REMOVING_PREFIX), then emptied. Call it only under
    `publish_lock`."""
    versions = Path(model_dir) / VERSIONS
    doomed = versions / f"{REMOVING_PREFIX}{version}-{secrets.token_hex(4)}"
    try:
        os.rename(versions / version, doomed)
    except OSError:
        if ignore_errors:
            return
        raise
    shutil.rmtree(doomed, ignore_errors=ignore_errors)


def current_changed(model_dir: Path) -> float | None:
    """When CURRENT was last written (Unix seconds), or None if it cannot be told:
    the time of a publication the record does not date."""
    try:
        return (Path(model_dir) / CURRENT).stat().st_mtime
    except OSError:
        return None


def set_current(model_dir: Path, version: str) -> None:
    """Point CURRENT at an existing version, atomically, and add it to PUBLISHED.
    Call it only under `publish_lock`."""
    model_dir = Path(model_dir)
    if not (model_dir / VERSIONS / version / METADATA_FILE).is_file():
        raise ArtifactError(f"Cannot publish {version}: it is not a complete version.")
    for name in (PUBLISHED, CURRENT):
        # Renaming a file over a folder fails naming the hidden temporary file,
        # and after the record was written; say first which file is in the way.
        if (model_dir / name).is_dir() and not (model_dir / name).is_symlink():
            raise ArtifactError(f"{model_dir / name} is a directory, so it cannot "
                                "be replaced; the store keeps it as a file. Move "
                                "it out of the way.")
    entries = read_publications(model_dir)
    try:
        named = read_current(model_dir)
    except ArtifactError:
        named = None
    if not entries:
        # A store written before PUBLISHED existed: what CURRENT named comes first.
        entries = [(named, None)] if named else []
    elif named and entries[-1][0] != named:
        # The record ends with a version CURRENT does not name: a publisher killed
        # between writing the two, or CURRENT edited by hand. Readers count
        # CURRENT as one more publication (`publication_chain`); so must the
        # record, or the way back from the new version would lead to a version
        # that was never served.
        entries.append((named, current_changed(model_dir)))
    now = time.time()
    entries.append((version, now))
    if len(entries) > PUBLISHED_KEPT:
        present = {path.name for path in (model_dir / VERSIONS).iterdir()}
        entries = shortened(entries, present, now)
    # The record first: if it cannot be written, CURRENT is left as it was and
    # nothing is published. If CURRENT then fails, the record holds one version
    # CURRENT never named; the way back from a later one passes over it (the
    # caller removes its files) to where it went.
    _replace_file(model_dir, PUBLISHED, "".join(
        f"{v} {t:.3f}\n" if t is not None else f"{v}\n" for v, t in entries))
    _replace_file(model_dir, CURRENT, version + "\n")


def shortened(entries: list, present: set[str], now: float) -> list:
    """The record `compact_published` makes of the older entries, followed by those
    of the last `RECENT_SECONDS` (at most PUBLISHED_KEPT of them) unchanged, with
    their times: what was served moments ago stays known (`recently_left`). The way
    back is the same, since the compacted part ends with the entry the recent ones
    follow."""
    start = len(entries) - 1
    while start > len(entries) - PUBLISHED_KEPT and entries[start - 1][1] is not None \
            and abs(now - entries[start - 1][1]) < RECENT_SECONDS:
        start -= 1
    older = [v for v, _ in entries[:start]]
    record = [(v, None) for v in (compact_published(older, present) if older else [])]
    return (record + entries[start:])[-PUBLISHED_MAX:]


def _replace_file(model_dir: Path, name: str, text: str) -> None:
    """Write `text` to a hidden temporary file and rename it to `name`: a reader sees
    the old content or the new, never part of it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", dir=model_dir)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, model_dir / name)
        _fsync_dir(model_dir)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_publications(model_dir: Path) -> list[tuple[str, float | None]]:
    """PUBLISHED's entries, oldest first: each version CURRENT has named and the time
    it was named (None where the record has none: written before times were kept, or
    compacted). Empty for a store written before PUBLISHED existed. Lines that do not
    start with a version id (a hand edit) are skipped."""
    try:
        # The newest entries matter most: a record made longer by hand loses its
        # oldest ones, as a compacted record past PUBLISHED_MAX does.
        raw = read_regular(Path(model_dir) / PUBLISHED, PUBLISHED_READ_LIMIT + 1,
                           tail=True)
    except (OSError, ArtifactError):
        return []
    if len(raw) > PUBLISHED_READ_LIMIT:
        # Cut: everything up to the first line end is part of a line (or, when the
        # one byte read before the limit is that line end, nothing of one).
        raw = raw[raw.find(b"\n") + 1:]
    entries = []
    for line in raw.decode("ascii", "replace").splitlines():
        words = line.split()
        if not words or not VERSION_PATTERN.match(words[0]):
            continue
        try:
            when = float(words[1]) if len(words) > 1 else None
        except ValueError:
            when = None
        entries.append((words[0], when if when is not None and math.isfinite(when)
                        else None))
    return entries


def read_published(model_dir: Path) -> list[str]:
    """The versions CURRENT has named, oldest first (`read_publications` without the
    times)."""
    return [version for version, _ in read_publications(model_dir)]


def recently_left(model_dir: Path, current: str,
                  now: float | None = None) -> set[str]:
    """The versions CURRENT named at some moment of the last `RECENT_SECONDS`, other
    than the one it names now (each was named until the next entry's time): workers
    that have not reloaded since may still serve them. CURRENT edited by hand counts
    as named when its file last changed.

    So does a last entry without a time that names what CURRENT names: releases
    before PUBLISHED kept times wrote their entries without one, then CURRENT, so a
    store last published by such a release (an older training job or command still
    running beside this one) says through CURRENT's file when that was. Only that
    last publication can be dated; a version such a release replaced earlier within
    the ten minutes is not known to have been served moments ago."""
    entries = read_publications(model_dir)
    now = time.time() if now is None else now
    if entries[-1:] and (entries[-1][0] != current or entries[-1][1] is None):
        changed = current_changed(model_dir)
        if entries[-1][0] == current:
            entries[-1] = (current, changed)
        else:
            entries.append((current, changed))
    left = set()
    for (version, _), (_, replaced) in zip(entries, entries[1:]):
        if replaced is not None and abs(now - replaced) < RECENT_SECONDS:
            left.add(version)
    return left - {current}


def publication_chain(published: list[str], current: str | None = None) -> list[str]:
    """The versions the store stood at, from the last publication back: each step
    goes to the version that publication replaced. A version published again (a
    rollback) returns the store to where its earlier publication stood, so the
    versions published in between, those rolled back from, are not on the way back.
    `published` is `read_published`'s list; the result starts with its last entry,
    or with `current` (what CURRENT names) when that is another version: CURRENT
    edited by hand counts as one more publication.

    [A, B, C] gives [C, B, A]; after a rollback from B to A, [A, B, A] gives [A];
    and [A, B, C, B] gives [B, A]."""
    if current is not None and published[-1:] != [current]:
        published = [*published, current]
    parent = first_parents(published)
    chain = []
    version = published[-1] if published else None
    while version is not None:
        chain.append(version)
        version = parent[version]
    return chain


def first_parents(published: list[str]) -> dict[str, str | None]:
    """Each version of the record -> the version published just before its first
    publication (None for the first): where every publication of it goes back to.
    A version first published after its parent cannot lead back to itself."""
    parent = {}
    for index, version in enumerate(published):
        parent.setdefault(version, published[index - 1] if index else None)
    return parent


def compact_published(published: list[str], present: set[str]) -> list[str]:
    """A shorter record with the same way back (`publication_chain`) from its last
    entry and from every version in `present`, the versions still in the store.

    Every publication of a version goes back where its first one did, to the entry
    before it. Cutting the oldest entries would lose that: a version published again
    after its first publication was cut would go back to the entry before the new
    one, a version rolled back from. So the record keeps, in the order of their first
    publication, the versions in `present`, its last entry and its first (where
    every way back ends), each first written after the nearest of them it goes back
    to; the versions left out are those no longer in the store, which no worker can
    load and nobody can publish again."""
    parent = first_parents(published)
    order = list(parent)  # in the order of first publication
    kept = (set(present) & set(order)) | {published[0], published[-1]}

    record = []
    for version in (v for v in order if v in kept):
        back = parent[version]
        while back is not None and back not in kept:
            back = parent[back]
        if back is not None and record[-1] != back:
            record.append(back)  # published again: it keeps its own way back
        record.append(version)
    if record[-1] != published[-1]:
        record.append(published[-1])
    return record


def remove_stale_staging(model_dir: Path) -> list[str]:
    """Delete what killed publishers left behind: `.incoming-*` version directories,
    `.removing-*` ones of versions being removed, and `.CURRENT-*` or
    `.PUBLISHED-*` temporary files. Call it only under
    `publish_lock`, where no other publisher can be writing them. Returns the names
    removed."""
    model_dir = Path(model_dir)
    stale = [path for prefix in POINTER_TEMP_PREFIXES
             for path in model_dir.glob(prefix + "*")]
    stale += [path for prefix in (STAGING_PREFIX, REMOVING_PREFIX)
              for path in (model_dir / VERSIONS).glob(prefix + "*")]
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return [path.name for path in stale]


def read_regular(path: Path, limit: int = -1, tail: bool = False) -> bytes:
    """The bytes of a file the training job wrote (at most `limit`: its first ones,
    or with `tail` its last ones), read only if it is a regular file. Training
    writes nothing else; a symbolic link (which may lead anywhere), a FIFO or a
    device (whose read may block for ever) or a folder was put there by hand, and
    is an ArtifactError. FileNotFoundError and NotADirectoryError
    (a file where a folder of the path should be) pass through."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        raise
    except PermissionError as e:
        # Most often the service runs as another user than the training job, and
        # the job's umask kept its files (or folders) to itself.
        raise ArtifactError(f"{path} cannot be read by user id {os.getuid()} "
                            f"({e.strerror}). Run the service as the user that "
                            "trains, or give its user read access to the model "
                            "store.") from e
    except OSError as e:
        kind = "a symbolic link" if Path(path).is_symlink() else "unreadable"
        raise ArtifactError(f"{path} is {kind} ({e.strerror}); only regular files "
                            "written by the training job are read.") from e
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        os.close(fd)
        raise ArtifactError(f"{path} is not a regular file (a folder, FIFO or device "
                            "put there by hand); only regular files written by the "
                            "training job are read.")
    with os.fdopen(fd, "rb") as f:
        try:
            if tail and 0 <= limit < status.st_size:
                f.seek(status.st_size - limit)
            return f.read(limit)
        except OSError as e:
            raise ArtifactError(f"{path} is unreadable ({e.strerror}).") from e


def read_history(model_dir: Path, version: str) -> dict[str, tuple[str, list[float]]]:
    """A version's training months (HISTORY_FILE): series name -> (first month as
    YYYY-MM, sales month by month). Raises what `read_regular` raises, and
    ValueError for a file that is not such a document."""
    path = Path(model_dir) / VERSIONS / version / HISTORY_FILE
    return parse_history(read_regular(path))


FIRST_MONTH_PATTERN = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")


def parse_history(raw: bytes) -> dict[str, tuple[str, list[float]]]:
    """The content of a HISTORY_FILE as `read_history` returns it; ValueError, saying
    what is wrong, for anything but the document training writes (not JSON, another
    shape, a month that is not YYYY-MM, a sale that is not a number)."""
    document = json.loads(raw.decode("utf-8"))
    series = document.get("series") if isinstance(document, dict) else None
    if not isinstance(series, dict):
        raise ValueError("no \"series\" object")
    history = {}
    for name, entry in series.items():
        first = entry.get("first") if isinstance(entry, dict) else None
        sales = entry.get("sales") if isinstance(entry, dict) else None
        if not isinstance(first, str) or not FIRST_MONTH_PATTERN.match(first) \
                or not isinstance(sales, list):
            raise ValueError(f"series {name[:80]!r} lacks a YYYY-MM \"first\" month "
                             "or a \"sales\" list")
        try:
            history[name] = (first, [float(v) for v in sales])
        except (TypeError, ValueError):
            raise ValueError(f"series {name[:80]!r} has a sale that is not a "
                             "number") from None
    return history


def missing_file(model_dir: Path, version: str, name: str, since: str) -> str:
    """Why a served version's optional file `name` (one written by versions since
    `since`) is missing, for a client's error message."""
    if not (Path(model_dir) / VERSIONS / version).is_dir():
        return (f"Model version {version} is still served but its files were removed "
                "from the model store (pruned or deleted); publish a version that is "
                "there (`python -m training.versions list` shows them).")
    return (f"Model version {version} has no {name}: it was trained before {since}, "
            "or the file was removed. Train again to get one.")


def read_current(model_dir: Path) -> str | None:
    """The version CURRENT names, None when nothing is published yet."""
    try:
        raw = read_regular(Path(model_dir) / CURRENT, 256)
    except FileNotFoundError:
        return None
    except NotADirectoryError as e:
        raise ArtifactError(f"{model_dir} is a file, not a model store folder; name "
                            "the folder the training job writes its versions "
                            "to.") from e
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError as e:
        raise ArtifactError(f"Unreadable {CURRENT} pointer in {model_dir}: {e}") from e
    if not VERSION_PATTERN.match(text):
        raise ArtifactError(
            f"{CURRENT} in {model_dir} holds {text[:80]!r}, which is not a version id "
            "written by the training job; refusing to follow it."
        )
    return text


def read_metadata(model_dir: Path, version: str) -> dict:
    path = Path(model_dir) / VERSIONS / version / METADATA_FILE
    try:
        return json.loads(read_regular(path).decode("utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"Model version {version} in {model_dir} has no "
                            f"{METADATA_FILE}.") from None
    except (OSError, ValueError) as e:
        raise ArtifactError(f"Unreadable metadata for model version {version} in "
                            f"{model_dir}: {e}") from e


def load_version(model_dir: Path, version: str):
    """Load a version after checking its file against the SHA-256 in its metadata.

    The joblib file is a pickle and runs code when loaded, so it is loaded only from
    inside the model store, only when its hash matches what training recorded, and
    only through the allow-list unpickler (`training.unpickle`). The bytes that are
    hashed are the bytes that are unpickled: a file replaced between the check and the
    load cannot slip through.
    """
    directory = Path(model_dir) / VERSIONS / version
    path = directory / MODEL_FILE
    resolved_store = (Path(model_dir) / VERSIONS).resolve()
    if directory.resolve().parent != resolved_store or \
            resolved_store not in path.resolve().parents:
        raise ArtifactError(f"Model version {version} resolves outside the model store "
                            f"{resolved_store} (a symbolic link); refusing to read it.")
    metadata = read_metadata(model_dir, version)
    if metadata.get("version") != version:
        raise ArtifactError(
            f"The metadata of model version {version} names version "
            f"{str(metadata.get('version'))[:40]!r}; it was copied or edited by hand.")
    try:
        content = read_regular(path)
    except OSError as e:
        raise ArtifactError(f"Cannot read model file of version {version}: {e}") from e
    actual = hashlib.sha256(content).hexdigest()
    if actual != metadata.get("sha256"):
        raise ArtifactError(
            f"Model file of version {version} does not match its metadata (SHA-256 "
            f"{actual[:12]}... vs recorded {str(metadata.get('sha256'))[:12]}...); it "
            "was changed or truncated after training. Retrain to publish a new "
            "version.")
    try:
        model = load_model(io.BytesIO(content), name=str(path))
    except Exception as e:  # a corrupt pickle can raise almost anything
        raise ArtifactError(f"Model file of version {version} does not load: "
                            f"{e!r}") from e
    return model, metadata
