"""The HTTP API: thin views that parse, ask the predictor, and shape the answer."""

import logging
import os
import time

import orjson
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map

from service import logs, page, report, v2
from service.config import Settings, draining_marker
from service.errors import (BadRequest, HistoryMissing, ModelNotFound, NotReady,
                            ServiceError, UnknownSeries)
from service.http import (BODY_ERRORS, MAX_BODY_BYTES, MAX_ROWS, UnchangingJSON,
                          check_fields, json_response, read_json,
                          series_argument)
from service.metrics import Metrics
from service.model_store import ModelStore, retry_on_newer_model
from service.openapi import document as api_document
from service.predictor import MAX_MONTHS_AHEAD

log = logging.getLogger("service")

FORECAST_FIELDS = {"horizon", "series"}
# Views whose refusal (a series or model version this worker does not serve) may only
# mean that this worker has not switched to a just-published version yet. So may a
# report or history missing from the store: pruning spares a version CURRENT left
# only for ten minutes (training.artifact.RECENT_SECONDS), and a worker checking
# less often than that (a long SALES_FORECAST_RELOAD_INTERVAL, or 0) may still
# serve one whose files are gone.
RETRY_ON_NEWER_MODEL = ("forecast", "predict", "infer", "model", "model_metadata",
                        "model_ready", "report_html", "report_png",
                        "page.history")
NOT_SERVED_HERE = (UnknownSeries, ModelNotFound, report.NoReport, HistoryMissing)
# Kept out of request logs and latency metrics: they would drown the real traffic.
QUIET_PATHS = {"/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready"}


def parse_horizon(value) -> int:
    if value is None:
        return 12
    shown = orjson.dumps(value).decode()[:40]
    # JSON has one number type: 12.0 is the same whole number as 12.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"horizon must be a whole number of months, got {shown}.")
    if not 1 <= value <= MAX_MONTHS_AHEAD:
        raise BadRequest(f"horizon must be between 1 and {MAX_MONTHS_AHEAD} months, "
                         f"got {shown}.")
    return value


class _Routes(Map):
    """Paths as sent. werkzeug's default answers a path with doubled slashes
    (`/static//page.js`) with an HTML redirect to an absolute address built from
    the Host header, which any client sets; here such a path is a JSON 404."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, merge_slashes=False, **kwargs)


class _Flask(Flask):
    url_map_class = _Routes


def create_app(settings: Settings | None = None, store: ModelStore | None = None,
               watch: bool = True) -> Flask:
    """Build the application; gunicorn calls this once in every worker."""
    settings = settings or Settings.from_env()
    logs.configure(settings.log_level)
    metrics = Metrics()
    if store is None:
        # The callback reads `store` only after a load attempt, when it is bound.
        store = ModelStore(settings.model_dir, on_load=lambda outcome, version, error:
                           metrics.model_load(outcome, store.predictor))
        store.refresh()
        if watch:
            store.watch(settings.reload_interval)

    app = _Flask(__name__)
    # Never debug mode, whatever FLASK_DEBUG says in the environment.
    app.debug = False
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["model_store"] = store
    app.extensions["settings"] = settings
    metrics.init_app(app)
    metrics.model_served(store.predictor)

    register_request_log(app, store, metrics)
    register_errors(app)

    @app.get("/healthz")
    def healthz():
        return json_response({"status": "alive"})

    def ready_model():
        """The served model, or a 503 while the service drains before it stops: what
        every readiness answer (this one's and the V2 ones) must say."""
        if os.path.exists(draining_marker(os.getppid())):
            raise NotReady("The service is shutting down.")
        return store.serving()

    @app.get("/readyz")
    def readyz():
        current = ready_model()
        return json_response({"status": "ready", "model_version": current.version})

    metadata_answers = UnchangingJSON()

    @app.get("/model")
    def model():
        current = store.serving()
        series = series_argument()
        if series is None:
            return metadata_answers.respond((current.version, None),
                                            lambda: current.metadata)
        return metadata_answers.respond((current.version, series),
                                        lambda: current.metadata_of(series))

    @app.get("/openapi.json")
    def openapi():
        return json_response(api_document(app, settings.model_name))

    @app.post("/forecast")
    def forecast():
        body = read_json()
        check_fields(body, FORECAST_FIELDS)
        horizon = parse_horizon(body.get("horizon"))
        if isinstance(body.get("series"), list):
            raise BadRequest(f"series must be one series name: /forecast answers one "
                             f"series per request. For many, send one request each, "
                             f"or ask POST /predict for the months wanted (up to "
                             f"{MAX_ROWS} rows of any series per request).")
        current = store.serving()
        started = time.perf_counter()
        table, rows = current.forecast(body.get("series"), horizon)
        metrics.observe_prediction("forecast", started, len(rows))
        return json_response({"series": table.name, "model_version": current.version,
                              "history_ends": table.history_ends,
                              "intervals_calibrated": table.calibrated,
                              "forecast": rows})

    @app.post("/predict")
    def predict():
        body = read_json()
        check_fields(body, {"instances"})
        instances = body.get("instances")
        if not isinstance(instances, list) or not instances:
            raise BadRequest("instances must be a non-empty list of objects like "
                             '{"date": "1995-01", "series": "..."}.')
        if len(instances) > MAX_ROWS:
            raise BadRequest(f"At most {MAX_ROWS} instances per request, got "
                             f"{len(instances)}; split the batch.")
        current = store.serving()
        started = time.perf_counter()
        predictions = current.predict(instances)
        metrics.observe_prediction("predict", started, len(predictions))
        return json_response({"predictions": predictions,
                              "model_version": current.version})

    v2.register(app, settings.model_name, store.serving, ready_model)
    report.register(app, store.serving, store.model_dir)
    app.register_blueprint(page.blueprint)
    retry_on_newer_model(app, store, RETRY_ON_NEWER_MODEL, NOT_SERVED_HERE)
    return app


def register_request_log(app: Flask, store: ModelStore, metrics: Metrics) -> None:
    @app.before_request
    def start_timer():
        context = g._get_current_object()  # one proxy look-up instead of three
        context.started = time.perf_counter()
        incoming = request.headers.get("X-Request-ID", "")
        # A caller's id is echoed only when it is short, printable and ASCII (other
        # bytes reach here as Latin-1 characters: logged, they would read as another
        # id than the caller's). Otherwise 32 random hex digits, as uuid4().hex
        # gives, in a fifth of its time.
        context.request_id = incoming \
            if 0 < len(incoming) <= 128 and incoming.isascii() \
            and incoming.isprintable() else os.urandom(16).hex()

    @app.after_request
    def finish(response: Response):
        context = g._get_current_object()
        current_request = request._get_current_object()
        response.headers["X-Request-ID"] = context.get("request_id", "")
        # Errors quote the request (a path, a series name): a browser must take
        # them for the JSON they are, never sniff them into a page to render.
        response.headers["X-Content-Type-Options"] = "nosniff"
        path = current_request.path
        if path in QUIET_PATHS:
            return response

        # One clock reading feeds both, so a logged duration is the observed one.
        seconds = time.perf_counter() - context.started
        method, status = current_request.method, response.status_code
        metrics.observe_request(method, current_request.url_rule, status, seconds)
        current = store.predictor
        logs.write_request({
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "request_id": context.request_id,
            "model_version": current.version if current else None,
        })
        return response


def register_errors(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def service_error(e: ServiceError):
        g.error_code = e.code  # the label of the prediction error counter
        if e.status == 500:
            # A fault of the server (a damaged model store), not of the request:
            # whoever the 5xx alert pages reads why here, not only the client.
            log.error("%s on %s %s: %s", e.code, request.method, request.path[:200],
                      e.message, extra={"request_id": g.get("request_id")})
        response = json_response(e.body(), e.status)
        response.headers.update(e.headers)
        return response

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        message = {
            404: f"No such endpoint: {request.method} {request.path[:200]}.",
            405: f"{request.method} is not allowed on {request.path[:200]}.",
            413: f"The request body is larger than {MAX_BODY_BYTES} bytes.",
        }.get(e.code, e.description)
        slug = (e.name or "error").lower().replace(" ", "_")
        g.error_code = slug
        response = json_response({"error": message, "code": slug}, e.code or 500)
        # A 405 must name the methods the path does allow (RFC 9110).
        response.headers.update((k, v) for k, v in e.get_headers() if k == "Allow")
        return response

    def malformed_body(e: Exception):
        # The label of the prediction error counter, as in the body.
        g.error_code = BadRequest.code
        return json_response({"error": f"The request body is malformed or was cut "
                                       f"off: {str(e)[:200] or type(e).__name__}.",
                              "code": BadRequest.code}, BadRequest.status)

    for error in BODY_ERRORS:
        app.register_error_handler(error, malformed_body)

    @app.errorhandler(Exception)
    def unexpected(e: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        g.error_code = "internal"
        return json_response({"error": "Internal error; the server log has details.",
                              "code": "internal"}, 500)

