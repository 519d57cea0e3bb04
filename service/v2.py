"""The Open Inference Protocol (V2), as KServe and MLServer speak it over REST.

The model takes two tensors, `date` (BYTES, months as `YYYY-MM`) and `series`
(BYTES, optional when the model has one series), and returns `sales` (FP64). Only
JSON tensors are accepted; the binary-data extension is refused with a clear error.
"""

import time

import orjson
from flask import Flask, request

from service import __version__
from service.errors import BadRequest, ModelNotFound
from service.http import MAX_ROWS, check_fields, json_response, read_json

INPUTS = {"date": "BYTES", "series": "BYTES"}
OUTPUT = "sales"
INFER_FIELDS = {"id", "parameters", "inputs", "outputs"}
TENSOR_FIELDS = {"name", "shape", "datatype", "data", "parameters"}


def register(app: Flask, model_name: str, predictor, ready_model) -> None:
    """The V2 routes. `predictor` returns the served model or raises NotReady;
    `ready_model` does the same and also refuses while the service drains, for the
    readiness answers."""
    def model_or_404(name: str, version: str | None = None):
        if name != model_name:
            raise ModelNotFound(f"Unknown model {name[:100]!r}; this server serves "
                                f"{model_name!r}.")
        current = predictor()
        if version is not None and version != current.version:
            raise ModelNotFound(f"Model {name!r} has no version {version[:100]!r} "
                                f"loaded; the loaded version is {current.version!r}.")
        return current

    @app.get("/v2")
    def server_metadata():
        # The protocol asks for the server's version here, not its own.
        return json_response({"name": "sales-forecast", "version": __version__,
                              "extensions": []})

    @app.get("/v2/health/live")
    def live():
        return json_response({"live": True})

    @app.get("/v2/health/ready")
    def ready():
        ready_model()
        return json_response({"ready": True})

    @app.get("/v2/models/<name>")
    @app.get("/v2/models/<name>/versions/<version>")
    def model_metadata(name, version=None):
        current = model_or_404(name, version)
        return json_response({
            "name": model_name,
            "versions": [current.version],
            "platform": "scikit-learn",
            "inputs": [{"name": n, "datatype": t, "shape": [-1]}
                       for n, t in INPUTS.items()],
            "outputs": [{"name": OUTPUT, "datatype": "FP64", "shape": [-1]}],
        })

    @app.get("/v2/models/<name>/ready")
    @app.get("/v2/models/<name>/versions/<version>/ready")
    def model_ready(name, version=None):
        model_or_404(name, version)
        ready_model()
        return json_response({"name": model_name, "ready": True})

    @app.post("/v2/models/<name>/infer")
    @app.post("/v2/models/<name>/versions/<version>/infer")
    def infer(name, version=None):
        if "Inference-Header-Content-Length" in request.headers:
            raise BadRequest("Binary tensor data is not supported; send JSON tensors "
                             "(tritonclient: binary_data=False).")
        current = model_or_404(name, version)
        body = read_json()
        check_fields(body, INFER_FIELDS)
        # The response echoes the id, which the protocol makes a string.
        if "id" in body and not isinstance(body["id"], str):
            raise BadRequest(f"id must be a string, got "
                             f"{orjson.dumps(body['id']).decode()[:40]}.")
        check_parameters(body, "the request")
        tensors = parse_inputs(body.get("inputs"), MAX_ROWS)
        check_requested_outputs(body.get("outputs"))

        dates = tensors["date"]
        series = tensors.get("series") or [None] * len(dates)
        if len(series) != len(dates):
            raise BadRequest(f"inputs 'date' and 'series' must have the same length, "
                             f"got {len(dates)} and {len(series)}.")
        started = time.perf_counter()
        values = current.values(dates, series)
        app.extensions["metrics"].observe_prediction("infer", started, len(values))

        response = {"model_name": model_name, "model_version": current.version,
                    "outputs": [{"name": OUTPUT, "datatype": "FP64",
                                 "shape": [len(values)], "data": values}]}
        if "id" in body:
            response["id"] = body["id"]
        return json_response(response)


def parse_inputs(inputs, max_rows: int) -> dict[str, list]:
    """Validate the V2 `inputs` list into {tensor name: flat list of values}."""
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest("inputs must be a non-empty list of tensors; this model "
                         f"takes {', '.join(INPUTS)}.")
    tensors = {}
    for i, tensor in enumerate(inputs):
        where = f"inputs[{i}]"
        if not isinstance(tensor, dict):
            raise BadRequest(f"{where} must be a tensor object.")
        check_fields(tensor, TENSOR_FIELDS, where)
        check_parameters(tensor, where)
        name = tensor.get("name")
        # The type test first: a name like {} or [] is unhashable and would make the
        # membership test itself raise.
        if not isinstance(name, str) or name not in INPUTS:
            raise BadRequest(f"{where}.name must be one of {', '.join(INPUTS)}, got "
                             f"{orjson.dumps(name).decode()[:60]}.")
        if name in tensors:
            raise BadRequest(f"{where}: input {name!r} is given twice.")
        if tensor.get("datatype") != INPUTS[name]:
            raise BadRequest(f"{where}.datatype must be {INPUTS[name]} for {name!r}, "
                             "got "
                             f"{orjson.dumps(tensor.get('datatype')).decode()[:40]}.")
        data = tensor.get("data")
        if isinstance(data, list) and data and isinstance(data[0], list):
            # Nested as its shape [n, 1] says: n rows of one value, never mixed with
            # flat values (a client sending that has lost track of its own shape).
            # Flat data with a list inside fails where that value is read.
            if not all(isinstance(row, list) and len(row) == 1 for row in data):
                raise BadRequest(f"{where}.data must be flat ([v1, v2, ...]) or rows "
                                 "of one value each ([[v1], [v2], ...]), not a mix "
                                 "of both or rows of other lengths.")
            data = [row[0] for row in data]
        if not isinstance(data, list) or not data:
            raise BadRequest(f"{where}.data must be a non-empty list.")
        if len(data) > max_rows:
            raise BadRequest(f"{where}: at most {max_rows} values per request, got "
                             f"{len(data)}.")
        check_shape(tensor.get("shape"), len(data), where)
        tensors[name] = data
    if "date" not in tensors:
        raise BadRequest("inputs must include a 'date' tensor (BYTES, months as "
                         "'YYYY-MM').")
    return tensors


def check_shape(shape, count: int, where: str) -> None:
    valid = isinstance(shape, list) and shape and all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    if not valid:
        raise BadRequest(f"{where}.shape must be a list of non-negative integers.")
    # [count] or [count, 1, ...]: no product of the dimensions, which for a long
    # list of large ones is a number of millions of digits, slow to compute.
    if shape[0] != count or any(n != 1 for n in shape[1:]):
        shown = orjson.dumps(shape).decode()[:60]
        raise BadRequest(f"{where}.shape {shown} does not match its {count} values "
                         f"(expected [{count}] or [{count}, 1]).")


def check_requested_outputs(outputs) -> None:
    if outputs is None:
        return
    if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and o.get("name") == OUTPUT for o in outputs):
        raise BadRequest(f"outputs may only request {OUTPUT!r}.")
    for i, output in enumerate(outputs):
        check_parameters(output, f"outputs[{i}]")


def check_parameters(holder: dict, where: str) -> None:
    """`parameters`, where the protocol allows it, is an object of name: value."""
    parameters = holder.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        shown = orjson.dumps(parameters).decode()[:40]
        raise BadRequest(f"parameters in {where} must be an object such as "
                         f'{{"name": value}}, got {shown}.')
