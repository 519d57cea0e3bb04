"""Which model version this worker serves, and the switch to a newer one.

Each gunicorn worker owns one `ModelStore`. A background thread re-reads the model
directory's CURRENT pointer every few seconds; when it names a new version, that
version is verified (SHA-256 against its metadata), loaded, and answers every month
it will ever be asked about (the predictor's self-check) before one reference
assignment makes it the served model. A candidate that fails any step is logged
(once, however many checks see it), counted, and not tried again until its files
change; the previous model keeps serving: readiness never drops because of a bad
candidate or a bad pointer. A worker that starts after CURRENT went bad (a crashed
one replaced) serves the version published last before it that loads (the store's
PUBLISHED record), as its siblings most likely do; only a store with no such version
leaves it unready.
"""

import functools
import logging
import threading
import time
from pathlib import Path

from service.errors import NotReady
from service.predictor import Predictor
from training import artifact
from training.versions import versions_in

log = logging.getLogger("service")

# Earlier versions tried, newest first, when a worker with no model yet finds the one
# CURRENT names refused (ModelStore._fall_back).
FALLBACK_TRIES = 5
# Seconds before a version whose load failed for a passing reason (an I/O error, no
# memory) is tried again.
TRANSIENT_RETRY = 5.0


class ModelStore:
    def __init__(self, model_dir: Path, on_load=None):
        self.model_dir = Path(model_dir)
        self.predictor: Predictor | None = None
        self.problem = "no model loaded yet"
        # Called with (outcome, version, error) after every load attempt, for metrics.
        # A bad CURRENT pointer is reported as version "pointer", once per problem.
        self._on_load = on_load or (lambda outcome, version, error: None)
        # Refused version -> the state of its files when it was refused. It is tried
        # again only when those files change (a copy that was still arriving, a file
        # restored), not on every check, and not never.
        self._refused: dict[str, tuple] = {}
        # Version -> when a load that failed for a passing reason (is_transient) may
        # be tried again: not on every request that asks out of turn (catch_up).
        self._retry_after: dict[str, float] = {}
        # The problem logged last: one that persists is logged once, not per check.
        self._reported = ""
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self.predictor is not None

    def refresh(self) -> None:
        """Serve the version CURRENT names, if it is new and sound."""
        with self._lock:
            try:
                version = artifact.read_current(self.model_dir)
            except artifact.ArtifactError as e:
                self._bad_pointer(str(e))
                if self.predictor is None:
                    self._fall_back(None)
                return
            if version is None:
                self._no_pointer()
                return
            if self.predictor is not None and version == self.predictor.version:
                self._reported = ""
                return
            files = version_files(self.model_dir, version)
            if self._refused.get(version) == files or \
                    time.monotonic() < self._retry_after.get(version, 0.0):
                return
            self._load(version, files)

    def catch_up(self, served: str | None) -> bool:
        """Check CURRENT now, out of turn; True if this worker now serves another
        version than `served`.

        For a request the served model refused (a series or version it does not
        know). Workers switch on their own schedule, so just after a version is
        published one worker may know a new series while another has not reached
        its next check. A load in progress in the watcher holds the lock, so this
        waits for it rather than loading twice; a refused candidate is not retried.
        """
        self.refresh()
        current = self.predictor
        return current is not None and current.version != served

    def _load(self, version: str, files: tuple) -> None:
        try:
            model, metadata = artifact.load_version(self.model_dir, version)
            predictor = Predictor(model, metadata)
        except Exception as e:  # any failure of a candidate leaves the old one serving
            if is_transient(e):
                self._retry_after[version] = time.monotonic() + TRANSIENT_RETRY
            else:
                self._refused[version] = files
            self._on_load("failure", version, str(e))
            self._report(version, str(e))
            if self.predictor is None:
                self._fall_back(version)
            return

        previous = self.predictor.version if self.predictor else None
        self.predictor = predictor
        self.problem = ""
        self._reported = ""
        self._refused.pop(version, None)
        self._retry_after.pop(version, None)
        self._on_load("success", version, None)
        log.info("serving model version %s (previous: %s)", version, previous,
                 extra={"model_version": version})

    def _fall_back(self, refused: str | None) -> None:
        """Serve what this worker's siblings most likely still serve, since they kept
        their model when CURRENT went bad: the version published last before
        `refused` (before CURRENT became unreadable: None) that loads. Without it a
        worker started after that (a crashed one replaced, a reload) would answer
        nothing at all."""
        tried = 0
        for candidate, how in self._fallbacks(refused):
            if candidate == refused or candidate in self._refused:
                continue
            if tried == FALLBACK_TRIES:
                break
            tried += 1
            try:
                model, metadata = artifact.load_version(self.model_dir, candidate)
                predictor = Predictor(model, metadata)
            except Exception:  # any failure: the next one may load
                self._refused[candidate] = version_files(self.model_dir, candidate)
                continue
            self.predictor, self.problem = predictor, ""
            self._on_load("success", candidate, None)
            log.error("%s %s; serving %s, %s, until %s changes", artifact.CURRENT,
                      f"names {refused}, which was refused" if refused
                      else "is unreadable", candidate, how, artifact.CURRENT,
                      extra={"model_version": candidate})
            return

    def _fallbacks(self, refused: str | None):
        """Versions to fall back on, best first, each with how it was chosen: the
        store's publication record followed back from `refused` or its last entry
        (`artifact.publication_chain`: never to a version rolled back from); then,
        for a store written before PUBLISHED existed, the versions training
        promoted that the record does not name, newest first (only those older than
        `refused`)."""
        published = artifact.read_published(self.model_dir)
        for version in artifact.publication_chain(published, refused):
            yield version, "the version published last that loads"
        try:
            present = versions_in(self.model_dir)
        except PermissionError:  # a store this user cannot list: nothing to try
            return
        for version in reversed(present):
            if version in published or (refused is not None and version >= refused):
                continue
            try:
                promotion = artifact.read_metadata(self.model_dir, version) \
                    .get("promotion") or {}
            except artifact.ArtifactError:
                continue
            if promotion.get("promoted") is not False:  # False: kept unpublished
                yield version, "the newest earlier promoted version"

    def serving(self) -> Predictor:
        """The model to answer with, or NotReady saying why there is none."""
        current = self.predictor
        if current is None:
            problem = self.problem.rstrip(".")
            raise NotReady(f"The service has no model to answer with: {problem}.")
        return current

    def _bad_pointer(self, reason: str) -> None:
        if self._reported != reason:
            self._on_load("failure", "pointer", reason)
        self._report("pointer", reason)

    def _no_pointer(self) -> None:
        if self.predictor is None:
            # Not fallen back from: with PUBLISHED written and CURRENT not (a first
            # publication cut short), the version there was never published.
            if artifact.read_published(self.model_dir):
                self.problem = (
                    f"{artifact.CURRENT} is missing from {self.model_dir}, though "
                    f"{artifact.PUBLISHED} lists versions published before; publish "
                    "one (python -m training.versions publish) or train again")
            else:
                self.problem = (f"no model published in {self.model_dir} yet "
                                "(waiting for the training job)")
            return
        message = f"{artifact.CURRENT} is missing from {self.model_dir}"
        if self._reported != message:
            self._reported = message
            log.warning("%s; still serving model %s", message, self.predictor.version)

    def _report(self, version: str, reason: str) -> None:
        if self.predictor is None:
            self.problem = f"model version {version} was refused: {reason}"
        if self._reported == reason:
            return
        self._reported = reason
        if self.predictor is None:
            log.error("cannot load model %s: %s", version, reason)
        else:
            log.error("kept model %s; refused candidate %s: %s",
                      self.predictor.version, version, reason)

    def watch(self, interval: float) -> None:
        """Re-check the pointer every `interval` seconds in a daemon thread."""
        if interval <= 0:
            return

        def loop():
            while True:
                time.sleep(interval)
                try:
                    self.refresh()
                except Exception:  # the watcher must outlive any single bad check
                    log.exception("model store check failed")

        threading.Thread(target=loop, name="model-watch", daemon=True).start()


def version_files(model_dir: Path, version: str) -> tuple:
    """Identity and size of a version's files: equal tuples mean nothing changed."""
    directory = Path(model_dir) / artifact.VERSIONS / version
    state = []
    for path in (directory, directory / artifact.METADATA_FILE,
                 directory / artifact.MODEL_FILE):
        try:
            st = path.stat()
            state.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            state.append(None)
    return tuple(state)


def is_transient(error: BaseException) -> bool:
    """A failure to read (an I/O error, no memory) rather than a bad file: the same
    unchanged version may load on the next check, so it is not remembered as refused."""
    cause = error.__cause__ or error
    return isinstance(cause, (OSError, MemoryError)) and \
        not isinstance(cause, FileNotFoundError)


def retry_on_newer_model(app, store: ModelStore, endpoints, refusals) -> None:
    """Let each view in `endpoints` answer a second time, on a newer model, when it
    refused with one of `refusals` and the store has moved on meanwhile.

    Only the refusal path pays (one read of CURRENT); a request the served model
    answers runs exactly as before.
    """
    for endpoint in endpoints:
        app.view_functions[endpoint] = _retrying(app.view_functions[endpoint], store,
                                                 tuple(refusals))


def _retrying(view, store: ModelStore, refusals: tuple):
    @functools.wraps(view)
    def answer(*args, **kwargs):
        current = store.predictor
        served = current.version if current else None
        try:
            return view(*args, **kwargs)
        except refusals:
            if not store.catch_up(served):
                raise
        return view(*args, **kwargs)

    return answer
