"""The OpenAPI 3.1 description of the HTTP API, served at `GET /openapi.json`.

It is written by hand next to the views rather than generated, so every limit in it
comes from the constant the views enforce (`MAX_MONTHS_AHEAD`, `MAX_ROWS`,
`MAX_BODY_BYTES`). `document(app)` keeps only the operations the application really
routes (the metrics endpoint, for instance, exists only when metrics are set up), and
`tests/test_fuzz.py` checks both directions: every route is described, and the
running server answers what is described (schemathesis fuzzes it and validates every
response against these schemas). A change to a view that this file does not follow
fails there.

The schemas say exactly what the server accepts: a body the schema refuses gets a
4xx, so fuzzing with invalid data checks the validation as well as the documentation.
"""

import copy

from flask import Flask

from service.http import MAX_BODY_BYTES, MAX_ROWS
from service.predictor import MAX_MONTHS_AHEAD

# The version of this description; bump it when a request or response changes shape.
API_VERSION = "1.1.0"
# YYYY-MM or YYYY-MM-DD, the two spellings `service.predictor.parse_month` accepts.
MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?$"
FIRST_OF_MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])-01$"

DESCRIPTION = f"""Monthly sales forecasts from the model version currently published \
in the model store.

Every error, whatever the endpoint, is a JSON object `{{"error": "<what is wrong and \
what is allowed>", "code": "<stable slug>"}}`. Bad input gets a 4xx; 503 means no \
verified model is loaded yet. Request bodies are limited to {MAX_BODY_BYTES} bytes.

Forecasts and predictions cover the months from the start of a series' history to \
{MAX_MONTHS_AHEAD} months after its end. Every successful answer names the \
`model_version` that produced it."""


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, example=None) -> dict:
    media = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"content": {"application/json": media}}


def _ok(description: str, schema: dict, example=None) -> dict:
    return {"description": description, **_json(schema, example)}


def _errors(*statuses: int) -> dict:
    return {str(status): {"$ref": f"#/components/responses/{ERROR_RESPONSES[status]}"}
            for status in statuses}


ERROR_RESPONSES = {
    400: "BadRequest", 403: "Forbidden", 404: "NotFound", 409: "Conflict",
    413: "TooLarge", 422: "InvalidData", 429: "Busy", 500: "StoreDamaged",
    503: "NotReady",
    507: "StoreUnwritable",
}
ERROR_DESCRIPTIONS = {
    "BadRequest": "The request is malformed: not JSON, a wrong type, a value out of "
                  "range, an unknown field, or a query parameter other than one "
                  "series.",
    "Forbidden": "Not allowed on this server (uploads switched off, or a form posted "
                 "from another site).",
    "NotFound": "An unknown series, model name or model version.",
    "Conflict": "Another upload is being trained into the model store.",
    "TooLarge": f"The request body is larger than {MAX_BODY_BYTES} bytes.",
    "InvalidData": "The uploaded CSV cannot be trained on; the message says why.",
    "Busy": "Another series of the report is being drawn by this worker; ask again "
            "after Retry-After seconds.",
    "NotReady": "No verified model is loaded (none published yet, or every published "
                "one was refused), or the server is shutting down.",
    "StoreDamaged": "A file of the served version is in the model store but cannot "
                    "be read (not readable by the service, not a regular file, or "
                    "not what training writes); training again replaces it.",
    "StoreUnwritable": "The upload could not be published: the model store's disk "
                       "is full or cannot be written. Nothing was published.",
}

FLAG = ("true or false, in any case; 1/0, on/off and yes/no also do, empty is false; "
        "anything else is refused")

# The Open Inference Protocol's $parameters: an object of name: value, accepted
# and ignored here.
PARAMETERS = {"type": ["object", "null"], "description": "accepted and ignored"}
SCHEMAS = {
    "Error": {
        "type": "object",
        "description": "The one shape of every 4xx and 5xx answer.",
        "required": ["error", "code"],
        "additionalProperties": False,
        "properties": {
            "error": {"type": "string", "description": "what is wrong, for people"},
            "code": {"type": "string", "description": "stable slug, for programs"},
        },
    },
    "Month": {"type": "string", "pattern": MONTH_PATTERN,
              "description": "a month, as YYYY-MM or YYYY-MM-DD", "example": "1995-01"},
    "SeriesName": {
        "type": ["string", "null"],
        "description": "a series the model was trained on; may be left out (or null) "
                       "when the model has exactly one",
    },
    "ForecastRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "horizon": {"type": ["integer", "null"], "minimum": 1,
                        "maximum": MAX_MONTHS_AHEAD, "default": 12,
                        "description": "months after the end of the history"},
            "series": _ref("SeriesName"),
        },
    },
    "MonthlyValue": {
        "type": "object",
        "required": ["date", "sales"],
        "properties": {
            "date": {"type": "string", "pattern": FIRST_OF_MONTH_PATTERN},
            "sales": {"type": "number"},
        },
    },
    "ForecastValue": {
        "type": "object",
        "required": ["date", "sales", "lower_80", "upper_80", "lower_95", "upper_95"],
        "description": "A forecast month with its 80% and 95% prediction intervals "
                       "(null for versions trained before intervals existed).",
        "properties": {
            "date": {"type": "string", "pattern": FIRST_OF_MONTH_PATTERN},
            "sales": {"type": "number"},
            **{f"{side}_{level}": {"type": ["number", "null"]}
               for level in (80, 95) for side in ("lower", "upper")},
        },
    },
    "ForecastResponse": {
        "type": "object",
        "required": ["series", "model_version", "history_ends", "intervals_calibrated",
                     "forecast"],
        "properties": {
            "series": {"type": "string"},
            "model_version": {"type": "string"},
            "history_ends": {
                "type": "string", "pattern": r"^[0-9]{4}-(0[1-9]|1[0-2])$",
                "description": "the series' last month of history (YYYY-MM); the "
                               "forecast starts the month after, also when the "
                               "series stopped before the others of its file"},
            "intervals_calibrated": {
                "type": ["boolean", "null"],
                "description": "true when the intervals were calibrated on the "
                               "backtest; false for a series too short for one (its "
                               "own year-on-year spread, and with few months the 80% "
                               "and 95% bounds can coincide); null without "
                               "intervals."},
            "forecast": {"type": "array", "items": _ref("ForecastValue"),
                         "maxItems": MAX_MONTHS_AHEAD},
        },
    },
    "PredictInstance": {
        "type": "object",
        "required": ["date"],
        "additionalProperties": False,
        "properties": {"date": _ref("Month"), "series": _ref("SeriesName")},
    },
    "PredictRequest": {
        "type": "object",
        "required": ["instances"],
        "additionalProperties": False,
        "properties": {
            "instances": {"type": "array", "minItems": 1, "maxItems": MAX_ROWS,
                          "items": _ref("PredictInstance")},
        },
    },
    "PredictResponse": {
        "type": "object",
        "required": ["predictions", "model_version"],
        "properties": {
            "predictions": {"type": "array", "items": {"type": "number"}},
            "model_version": {"type": "string"},
        },
    },
    "ModelMetadata": {
        "type": "object",
        "description": "What the training job recorded about the served version: its "
                       "data, series, evaluation and library versions.",
        "required": ["version", "created_at", "sha256", "series"],
        "properties": {
            "version": {"type": "string"},
            "created_at": {"type": "string"},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "series": {"type": "array", "items": {
                "type": "object", "required": ["name", "first", "last"],
                "properties": {"name": {"type": "string"}, "first": {"type": "string"},
                               "last": {"type": "string"}},
            }},
        },
    },
    "HistoryResponse": {
        "type": "object",
        "required": ["series", "model_version", "history"],
        "properties": {
            "series": {"type": "string"},
            "model_version": {"type": "string"},
            "history": {"type": "array", "items": _ref("MonthlyValue")},
        },
    },
    "Tensor": {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "additionalProperties": False,
        "properties": {
            "name": {"enum": ["date", "series"]},
            "shape": {"type": "array", "minItems": 1,
                      "items": {"type": "integer", "minimum": 0}},
            "datatype": {"enum": ["BYTES"]},
            "data": {"type": "array", "minItems": 1, "maxItems": MAX_ROWS,
                     "description": "the values, flat or as [[value], ...]"},
            "parameters": PARAMETERS,
        },
    },
    "InferRequest": {
        "type": "object",
        "required": ["inputs"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "description": "echoed back in the response"},
            "parameters": PARAMETERS,
            "inputs": {"type": "array", "minItems": 1, "maxItems": 2,
                       "items": _ref("Tensor")},
            "outputs": {"type": ["array", "null"], "items": {
                "type": "object", "required": ["name"],
                "properties": {"name": {"const": "sales"}, "parameters": PARAMETERS},
            }},
        },
    },
    "InferResponse": {
        "type": "object",
        "required": ["model_name", "model_version", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": {
                "type": "object", "required": ["name", "datatype", "shape", "data"],
                "properties": {
                    "name": {"const": "sales"}, "datatype": {"const": "FP64"},
                    "shape": {"type": "array", "items": {"type": "integer"}},
                    "data": {"type": "array", "items": {"type": "number"}},
                },
            }},
        },
    },
    "V2ModelMetadata": {
        "type": "object",
        "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array"},
            "outputs": {"type": "array"},
        },
    },
    "Upload": {
        "type": "object",
        "required": ["file"],
        "additionalProperties": False,
        "properties": {
            "file": {"type": "string", "format": "binary",
                     "description": "the CSV sales history"},
            "date_col": {"type": "string", "maxLength": 100},
            "sales_col": {"type": "string", "maxLength": 100},
            "series_col": {"type": "string", "maxLength": 100},
            "series_name": {"type": "string", "maxLength": 100},
            "fill_gaps": {"enum": ["", "interpolate"]},
            "encoding": {"type": "string", "maxLength": 100,
                         "description": "the file's text encoding (default utf-8)"},
            "strict": {"type": "string", "description": FLAG},
            "force": {"type": "string", "description": FLAG},
        },
    },
}

FORECAST_EXAMPLE = {"horizon": 12, "series": "wineind"}
PREDICT_EXAMPLE = {"instances": [{"date": "1995-01", "series": "wineind"}]}
INFER_EXAMPLE = {"inputs": [{"name": "date", "shape": [2], "datatype": "BYTES",
                             "data": ["1995-01", "1995-02"]}]}


def _get(summary: str, tag: str, responses: dict, **extra) -> dict:
    return {"get": {"summary": summary, "tags": [tag], "responses": responses, **extra}}


def _post(summary: str, tag: str, body: dict, responses: dict) -> dict:
    return {"post": {"summary": summary, "tags": [tag],
                     "requestBody": {"required": True, **body}, "responses": responses}}


NAME = {"name": "name", "in": "path", "required": True,
        "description": "the served model's name (SALES_FORECAST_MODEL_NAME)"}
VERSION = {"name": "version", "in": "path", "required": True,
           "schema": {"type": "string"}, "description": "a model version id"}


def _operations(model_name: str) -> dict:
    name = {**NAME, "schema": {"type": "string", "enum": [model_name]}}
    v2_metadata = _get("Model metadata (V2)", "Open Inference Protocol V2",
                       {"200": _ok("The model's inputs and outputs.",
                                   _ref("V2ModelMetadata")), **_errors(404, 503)})
    v2_ready = _get("Model readiness (V2)", "Open Inference Protocol V2",
                    {"200": _ok("The model is loaded.", {
                        "type": "object", "required": ["name", "ready"],
                        "properties": {"name": {"type": "string"},
                                       "ready": {"const": True}}}),
                     **_errors(404, 503)})
    v2_infer = _post("Predict with V2 tensors", "Open Inference Protocol V2",
                     _json(_ref("InferRequest"), INFER_EXAMPLE),
                     {"200": _ok("One FP64 output, `sales`, per input row.",
                                 _ref("InferResponse")),
                      **_errors(400, 404, 413, 503)})
    upload = {"content": {"multipart/form-data": {"schema": _ref("Upload")}}}
    return {
        "/forecast": _post(
            "Forecast the months after the history", "Forecasts",
            _json(_ref("ForecastRequest"), FORECAST_EXAMPLE),
            {"200": _ok("One row per month, in order.", _ref("ForecastResponse")),
             **_errors(400, 404, 413, 503)}),
        "/predict": _post(
            "Predict named months", "Forecasts",
            _json(_ref("PredictRequest"), PREDICT_EXAMPLE),
            {"200": _ok("One prediction per instance, in order.",
                        _ref("PredictResponse")), **_errors(400, 404, 413, 503)}),
        "/model": _get(
            "The served version's metadata", "Model",
            {"200": _ok("metadata.json of the served version, with an ETag (the "
                        "hash of the body).", _ref("ModelMetadata")),
             "304": {"description": "If-None-Match held this answer's ETag: "
                                    "unchanged, no body."},
             **_errors(400, 404, 503)},
            parameters=[{"name": "series", "in": "query", "required": False,
                         "schema": {"type": "string"},
                         "description": "keep only what concerns this series (its "
                                        "entry in series, evaluation, backtest.series "
                                        "and intervals.series); empty: the list of "
                                        "series and the overall figures, without "
                                        "the per-series parts"}]),
        "/history": _get(
            "The months the served model was trained on", "Model",
            {"200": _ok("The training history of one series.",
                        _ref("HistoryResponse")), **_errors(400, 404, 500, 503)},
            parameters=[{"name": "series", "in": "query", "required": False,
                         "schema": {"type": "string"},
                         "description": "may be left out when the model has one"}]),
        "/report": _get(
            "The served version's training report", "Model",
            {"200": {"description": "Self-contained HTML: backtest scores against "
                                    "seasonal naive and plots with intervals.",
                     "content": {"text/html": {"schema": {"type": "string"}}}},
             **_errors(400, 404, 429, 500, 503)},
            parameters=[{"name": "series", "in": "query", "required": False,
                         "schema": {"type": "string"},
                         "description": "one series only, drawn on request"}]),
        "/report.png": _get(
            "The served version's report image", "Model",
            {"200": {"description": "PNG: an overview, or one series' plot.",
                     "content": {"image/png": {"schema": {"type": "string",
                                                          "format": "binary"}}}},
             **_errors(400, 404, 429, 500, 503)},
            parameters=[{"name": "series", "in": "query", "required": False,
                         "schema": {"type": "string"},
                         "description": "one series only, drawn on request"}]),
        "/healthz": _get("Liveness", "Health", {"200": _ok("The process is alive.", {
            "type": "object", "required": ["status"],
            "properties": {"status": {"const": "alive"}}})}),
        "/readyz": _get("Readiness", "Health", {
            "200": _ok("A verified model is loaded.", {
                "type": "object", "required": ["status", "model_version"],
                "properties": {"status": {"const": "ready"},
                               "model_version": {"type": "string"}}}),
            **_errors(503)}),
        "/metrics": _get("Prometheus metrics", "Health", {"200": {
            "description": "The text exposition format, or OpenMetrics when the "
                           "Accept header asks for it (as Prometheus does).",
            "content": {media: {"schema": {"type": "string"}}
                        for media in ("text/plain", "application/openmetrics-text")}}}),
        "/openapi.json": _get("This document", "Reference", {"200": _ok(
            "The OpenAPI 3.1 description of the API.", {"type": "object"})}),
        "/": _get("The forecast page", "Browser", {"200": {
            "description": "HTML.", "content": {"text/html": {"schema": {
                "type": "string"}}}}}),
        "/docs": _get("The API reference page", "Browser", {"200": {
            "description": "HTML that renders this document.",
            "content": {"text/html": {"schema": {"type": "string"}}}}}),
        "/upload/check": _post(
            "Check a CSV as training would read it; writes nothing", "Browser",
            upload, {"200": _ok("What training would see.", {"type": "object"}),
                     **_errors(400, 403, 413, 422)}),
        "/upload/train": _post(
            "Train on a CSV and publish the new version", "Browser", upload,
            {"201": _ok("The new version, its summary and evaluation.", {
                "type": "object", "required": ["version", "dropped_series"],
                "properties": {"version": {"type": "string"},
                               "dropped_series": {
                                   "type": "array", "items": {"type": "string"},
                                   "description": "series the version served before "
                                                  "answered and this one does not"}}}),
             **_errors(400, 403, 409, 413, 422, 507)}),
        "/v2": _get("Server metadata (V2)", "Open Inference Protocol V2",
                    {"200": _ok("Name, server version, extensions.", {
                        "type": "object", "required": ["name", "version",
                                                       "extensions"]})}),
        "/v2/health/live": _get("Liveness (V2)", "Open Inference Protocol V2", {
            "200": _ok("Alive.", {"type": "object", "required": ["live"],
                                  "properties": {"live": {"const": True}}})}),
        "/v2/health/ready": _get("Readiness (V2)", "Open Inference Protocol V2", {
            "200": _ok("Ready.", {"type": "object", "required": ["ready"],
                                  "properties": {"ready": {"const": True}}}),
            **_errors(503)}),
        "/v2/models/{name}": {**v2_metadata, "parameters": [name]},
        "/v2/models/{name}/versions/{version}": {**v2_metadata,
                                                 "parameters": [name, VERSION]},
        "/v2/models/{name}/ready": {**v2_ready, "parameters": [name]},
        "/v2/models/{name}/versions/{version}/ready": {**v2_ready,
                                                       "parameters": [name, VERSION]},
        "/v2/models/{name}/infer": {**v2_infer, "parameters": [name]},
        "/v2/models/{name}/versions/{version}/infer": {**v2_infer,
                                                       "parameters": [name, VERSION]},
    }


def routed_operations(app: Flask) -> set[tuple[str, str]]:
    """(path in OpenAPI spelling, method) for every route of the application."""
    operations = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operations.add((path, method.lower()))
    return operations


def document(app: Flask, model_name: str) -> dict:
    """The OpenAPI document for `app`, limited to the operations it routes."""
    routed = routed_operations(app)
    paths = {}
    for path, item in _operations(model_name).items():
        kept = {key: value for key, value in item.items()
                if key == "parameters" or (path, key) in routed}
        if set(kept) - {"parameters"}:
            paths[path] = kept

    return {
        "openapi": "3.1.0",
        "info": {"title": "sales-forecast", "version": API_VERSION,
                 "description": DESCRIPTION,
                 "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
        "paths": paths,
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "responses": {
                name: {"description": ERROR_DESCRIPTIONS[name],
                       **_json(_ref("Error"))}
                for name in ERROR_RESPONSES.values()
            },
        },
    }


def described_operations(doc: dict) -> set[tuple[str, str]]:
    return {(path, method) for path, item in doc["paths"].items()
            for method in item if method != "parameters"}
