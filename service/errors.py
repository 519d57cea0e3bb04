"""Every error the API returns: one class per situation, one JSON shape for all.

The body is always `{"error": "<message>", "code": "<slug>"}`; `error` is what the
Open Inference Protocol clients read, `code` is stable for programs to branch on.
"""


class ServiceError(Exception):
    status = 500
    code = "internal"
    headers: dict = {}  # sent with the answer (Retry-After on a 429 that will pass)

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def body(self) -> dict:
        return {"error": self.message, "code": self.code}


class BadRequest(ServiceError):
    status = 400
    code = "bad_request"


class InvalidJSON(BadRequest):
    code = "invalid_json"


class UnknownSeries(ServiceError):
    status = 404
    code = "unknown_series"


class ModelNotFound(ServiceError):
    status = 404
    code = "model_not_found"


class NotReady(ServiceError):
    status = 503
    code = "not_ready"


class UploadsDisabled(ServiceError):
    status = 403
    code = "uploads_disabled"


class InvalidData(ServiceError):
    """An uploaded CSV the training loader refuses; the message is the loader's."""
    status = 422
    code = "invalid_data"


class CrossOrigin(ServiceError):
    """An upload posted by a page of another site."""
    status = 403
    code = "cross_origin"


class NotPromoted(ServiceError):
    """An upload trained and kept, but not served: it scores worse on the backtest
    than the version being served."""
    status = 409
    code = "not_promoted"


class TrainingBusy(ServiceError):
    status = 409
    code = "training_busy"


class HistoryMissing(ServiceError):
    status = 404
    code = "history_missing"


class StoreDamaged(ServiceError):
    """A file of the served version that is there but cannot be read: unreadable by
    the service's user, not a regular file, or not what training writes. A fault of
    the server's model store, not of the request, so it counts as a server error."""
    status = 500
    code = "store_damaged"


class StoreUnwritable(ServiceError):
    """An upload that could not be published: the model store's disk is full, or
    the store cannot be written. Nothing was published; the message says why."""
    status = 507
    code = "store_unwritable"
