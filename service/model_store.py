"""Which model version this worker serves, and the switch to a newer one.

Each gunicorn worker owns one `ModelStore`. A background thread re-reads the model
directory's CURRENT pointer every few seconds; when it names a new version, that
version is verified (SHA-256 against its metadata), loaded, and answers every month
it will ever be asked about (the predictor's self-check) before one reference
assignment makes it the served model. A candidate that fails any step is logged,
counted and forgotten, and the previous model keeps serving: readiness never drops
because of a bad candidate, only while no good model has ever been loaded.
"""

import logging
import threading
from pathlib import Path

from service.predictor import Predictor
from training import artifact

log = logging.getLogger("service")


class ModelStore:
    def __init__(self, model_dir: Path, on_load=None):
        self.model_dir = Path(model_dir)
        self.predictor: Predictor | None = None
        self.problem = "no model loaded yet"
        # Called with (outcome, version, error) after every load attempt, for metrics.
        self._on_load = on_load or (lambda outcome, version, error: None)
        self._rejected: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()

    @property
    def ready(self) -> bool:
        return self.predictor is not None

    def refresh(self) -> None:
        """Serve the version CURRENT names, if it is new and sound."""
        with self._lock:
            try:
                version = artifact.read_current(self.model_dir)
            except artifact.ArtifactError as e:
                self._reject("pointer", str(e))
                return
            if version is None:
                if self.predictor is None:
                    self.problem = (f"no model published in {self.model_dir} yet "
                                    "(waiting for the training job)")
                return
            if self.predictor is not None and version == self.predictor.version:
                return
            if version in self._rejected:
                return
            self._load(version)

    def _load(self, version: str) -> None:
        try:
            model, metadata = artifact.load_version(self.model_dir, version)
            predictor = Predictor(model, metadata)
        except Exception as e:  # any failure of a candidate leaves the old model serving
            self._rejected.add(version)
            self._reject(version, str(e))
            return

        previous = self.predictor.version if self.predictor else None
        self.predictor = predictor
        self.problem = ""
        self._on_load("success", version, None)
        log.info("serving model version %s (previous: %s)", version, previous,
                 extra={"model_version": version})

    def _reject(self, version: str, reason: str) -> None:
        self._on_load("failure", version, reason)
        if self.predictor is None:
            self.problem = f"model version {version} was refused: {reason}"
            log.error("cannot load model %s: %s", version, reason)
        else:
            log.error("kept model %s; refused candidate %s: %s",
                      self.predictor.version, version, reason)

    def watch(self, interval: float) -> None:
        """Re-check the pointer every `interval` seconds in a daemon thread."""
        if interval <= 0:
            return

        def loop():
            while not self._stop.wait(interval):
                try:
                    self.refresh()
                except Exception:  # the watcher must outlive any single bad check
                    log.exception("model store check failed")

        threading.Thread(target=loop, name="model-watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
