"""`GET /report` and `GET /report.png`: the training report of the served version.

Without `?series=` they return the files the training job wrote into the version
directory (`report.html`, self-contained, and the overview `report.png`). With
`?series=NAME` one series is drawn on request from what the version stores (its
metadata, history.json and the served forecasts with their intervals); the drawing
is cached per version and series, since the answer cannot change.

Drawing one series takes about 0.4 s of CPU, a thousand times a forecast's, and a
file may hold thousands of series, more than the cache keeps. So a worker draws one
series at a time: a request for the series being drawn waits for that drawing (a
page asks for the HTML and the PNG together), and one for another series not in the
cache is answered 429 `report_busy` with Retry-After at once, rather than queueing
on threads that forecasts need. 429, not 503: the service is healthy, and its
server-error alert must not fire because one client asks for many drawings.
"""

import threading
from collections import OrderedDict
from pathlib import Path

from flask import Flask, Response

from service.errors import ServiceError, StoreDamaged
from service.http import series_argument
from training import artifact

# Images and styles are inline in the report; nothing else may load or run.
REPORT_POLICY = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                 "base-uri 'none'; form-action 'none'")
CACHED_PAGES = 64
# Seconds a client is told to wait when another series is being drawn.
BUSY_RETRY_AFTER = 1


class NoReport(ServiceError):
    status = 404
    code = "no_report"


class ReportBusy(ServiceError):
    status = 429
    code = "report_busy"
    headers = {"Retry-After": str(BUSY_RETRY_AFTER)}


class _Drawing:
    """One series being drawn, which requests for the same series wait for."""

    def __init__(self, key):
        self.key = key
        self.done = threading.Event()
        self.page = None
        self.error = None


class ReportPages:
    """Rendered single-series pages, the most recently used kept; one drawn at a
    time (see the module's notes)."""

    def __init__(self):
        self._pages: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._drawing: _Drawing | None = None

    def get(self, key, render):
        with self._lock:
            if key in self._pages:
                self._pages.move_to_end(key)
                return self._pages[key]
            drawing = self._drawing
            if drawing is None:
                drawing = self._drawing = _Drawing(key)
                mine = True
            elif drawing.key == key:
                mine = False
            else:
                raise ReportBusy("Another series of the report is being drawn; "
                                 f"ask again in {BUSY_RETRY_AFTER} s.")
        if not mine:
            drawing.done.wait()
            if drawing.error is not None:
                raise drawing.error
            return drawing.page
        try:
            drawing.page = render()
        except BaseException as e:
            drawing.error = e
            raise
        finally:
            with self._lock:
                if drawing.error is None:
                    self._pages[key] = drawing.page
                    while len(self._pages) > CACHED_PAGES:
                        self._pages.popitem(last=False)
                self._drawing = None
            drawing.done.set()
        return drawing.page


def register(app: Flask, predictor, model_dir: Path) -> None:
    pages = ReportPages()

    def version_file(current, name: str) -> bytes:
        path = Path(model_dir) / artifact.VERSIONS / current.version / name
        try:
            return artifact.read_regular(path)
        except FileNotFoundError:
            raise NoReport(artifact.missing_file(model_dir, current.version, name,
                                                 "training reports existed")) from None
        except artifact.ArtifactError as e:
            raise StoreDamaged(f"The {name} of model version {current.version} is "
                               f"not served: {e} Train again to replace it.") from None

    def one_series(current, series: str):
        from training import report

        table = current.table(series, "series")
        if "backtest" not in current.metadata:
            raise NoReport(f"Model version {current.version} records no backtest to "
                           "report on; train again to get one.")

        def render():
            stored = version_file(current, artifact.HISTORY_FILE)
            try:
                history = artifact.parse_history(stored)
            except ValueError as e:
                raise StoreDamaged(f"The {artifact.HISTORY_FILE} of model version "
                                   f"{current.version} is not what training writes "
                                   f"({e}); train again to replace it.") from None
            if table.name not in history:
                raise NoReport(f"The {artifact.HISTORY_FILE} of model version "
                               f"{current.version} has no series {table.name!r}; "
                               "train again to replace it.")
            view = report.served_view(current.metadata, *history[table.name], table,
                                      table.name)
            return report.series_page(current.metadata, view)

        return pages.get((current.version, table.name), render)

    def body(stored: str, part: int) -> bytes:
        """The stored file, or part 0 (HTML) / 1 (PNG) of one series drawn now."""
        current = predictor()
        series = series_argument()
        if series is None:
            return version_file(current, stored)
        rendered = one_series(current, series)[part]
        return rendered.encode("utf-8") if isinstance(rendered, str) else rendered

    @app.get("/report")
    def report_html():
        response = Response(body("report.html", 0), mimetype="text/html")
        response.headers["Content-Security-Policy"] = REPORT_POLICY
        return response

    @app.get("/report.png")
    def report_png():
        return Response(body("report.png", 1), mimetype="image/png")
