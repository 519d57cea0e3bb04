"""Request and response helpers shared by every view."""

import hashlib
import json
import threading
from collections import OrderedDict

import orjson
from flask import Response, request
from gunicorn.http import errors as wire
from werkzeug.exceptions import RequestEntityTooLarge

from service.errors import BadRequest, InvalidJSON

MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_ROWS = 10_000
PARSED_BODY = "sales_forecast.request_json"
# What gunicorn raises while the application reads a body that is malformed (a bad
# chunk) or cut off; the app answers them with a 400, not a 500.
BODY_ERRORS = (wire.NoMoreData, wire.InvalidChunkSize, wire.ChunkMissingTerminator,
               wire.InvalidChunkExtension, wire.InvalidHeader, wire.InvalidHeaderName,
               wire.LimitRequestHeaders)


class UnchangingJSON:
    """JSON answers that never change for a key (a model version's metadata: a
    published version's files are never rewritten), sent with an ETag that is the
    hash of their body. A client holding it (a browser revalidating, the page
    polling for a new version) gets a 304 without the body being serialised again:
    with thousands of series that is tens of megabytes and tens of milliseconds.
    The tags of the last KEPT keys are remembered; an older key's body is simply
    serialised again."""

    KEPT = 256

    def __init__(self):
        self._tags: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def respond(self, key, payload) -> Response:
        """The answer for `key`; `payload()` gives its content when it is needed."""
        # Weakly, as If-None-Match is compared: a proxy may have marked the tag W/.
        held = request.if_none_match
        with self._lock:
            tag = self._tags.get(key)
        response = None
        if tag is None or not held.contains_weak(tag):
            # The client may still hold the tag, from another worker or from before
            # this key was forgotten: the body is the same, so it is still current.
            response = json_response(payload())
            tag = hashlib.blake2b(response.get_data(), digest_size=12).hexdigest()
            with self._lock:
                self._tags[key] = tag
                self._tags.move_to_end(key)
                while len(self._tags) > self.KEPT:
                    self._tags.popitem(last=False)
        if held.contains_weak(tag):
            response = Response(status=304)
        response.set_etag(tag)
        # Kept by a browser, but asked again each time: the served version changes.
        response.headers["Cache-Control"] = "no-cache"
        return response


def json_response(payload, status: int = 200) -> Response:
    try:
        body = orjson.dumps(payload)
    except orjson.JSONEncodeError:
        # What orjson refuses, the json module writes: a message naming a path the
        # file system could not decode (Python keeps its bytes as lone surrogates,
        # which ASCII escapes carry), or an integer past 64 bits.
        body = json.dumps(payload).encode()
    return Response(body, status=status, mimetype="application/json")


def refuse_cut_off_body() -> None:
    """A 400 when the receive deadline (service.worker.DeadlineSocket) ended the body
    before the client had sent all of it; nothing outside gunicorn."""
    if getattr(request.environ.get("gunicorn.socket"), "cut_off", False):
        raise BadRequest("The request body was cut off: the client stopped sending "
                         "before the whole body arrived within the receive deadline, "
                         "so the request was not processed. Send the whole body at "
                         "once.")


def read_json() -> dict:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    environ = request.environ
    # The body is read once, uncached; a view that answers a second time on a newer
    # model (service.model_store.retry_on_newer_model) gets the parsed object again.
    if PARSED_BODY in environ:
        return environ[PARSED_BODY]
    raw = request.get_data(cache=False)
    refuse_cut_off_body()
    # A chunked body has no Content-Length to refuse up front, and Werkzeug stops
    # reading it at the limit without saying so: look for a byte beyond the limit.
    if len(raw) >= MAX_BODY_BYTES and request.content_length is None \
            and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
    if not raw:
        raise InvalidJSON("The request body is empty; send a JSON object.")
    # Known shortcoming: a key given twice in one object keeps its last value without a
    # word (orjson has no hook to see pairs, and the stdlib parser that has one is ten
    # times slower on the largest bodies).
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        if "not valid UTF-8" in str(e):
            # orjson's own words ("surrogates not allowed") would puzzle; find where.
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as bad:
                raise InvalidJSON(
                    f"The request body is not UTF-8 text (byte 0x{raw[bad.start]:02x} "
                    f"at offset {bad.start}); send JSON encoded as UTF-8, "
                    "uncompressed.") from None
        # orjson refuses NaN and Infinity, which are not JSON, and nesting past 1024.
        raise InvalidJSON(f"The request body is not valid JSON: {e}.") from None
    if not isinstance(body, dict):
        raise InvalidJSON(f"The request body must be a JSON object, got "
                          f"{type(body).__name__}.")
    environ[PARSED_BODY] = body
    return body


def series_argument() -> str | None:
    """The `series` of a GET's query string, the only parameter those routes take.
    Anything else is refused rather than ignored: `?serie=x` would otherwise get
    the answer for every series (tens of megabytes of /model), and a second
    `series` would be dropped without a word."""
    args = request.args
    unknown = sorted(set(args) - {"series"})
    if unknown:
        raise BadRequest(f"Unknown query parameter {unknown[0][:50]!r}; this path "
                         "takes only 'series'.")
    given = args.getlist("series")
    if len(given) > 1:
        raise BadRequest(f"The query parameter 'series' is given {len(given)} times; "
                         "ask for one series per request.")
    return given[0] if given else None


def check_fields(body: dict, allowed: set, where: str = "the request") -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"Unknown field {unknown[0][:50]!r} in {where}; allowed: "
                         f"{', '.join(sorted(allowed))}.")
