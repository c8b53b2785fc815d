"""API errors: one exception type and the two JSON shapes clients see.

`/predict` and the other tickml routes answer
`{"error": {"message", "field", "index", "code"}}`. Routes under `/v2/` follow the
Open Inference Protocol, whose clients read `{"error": "<message>"}`; the same code,
field and index travel beside it in `details`.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

#: Codes for HTTP errors that Werkzeug raises before a view runs.
HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class ApiError(Exception):
    """A request the API refuses, with what to tell the client.

    Args:
        status: HTTP status (4xx, or 503 when no model is loaded).
        code: machine-readable reason, e.g. ``invalid_value``.
        message: one sentence naming the problem.
        field: the feature or body member at fault, if any.
        index: the position in a batch, if the problem is in one item.
    """

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None,
                 index: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.index = index

    def body(self, v2: bool = False) -> dict[str, Any]:
        """The JSON body: tickml's shape, or the Open Inference Protocol's when `v2`."""
        details = {"code": self.code, "field": self.field, "index": self.index}
        if v2:
            return {"error": self.message, "details": details}
        return {"error": {"message": self.message, **details}}


def json_response(payload: Any, status: int = 200) -> Response:
    """A JSON response serialised with orjson (several times faster than `json`)."""
    return Response(orjson.dumps(payload), status=status, mimetype="application/json")


def error_response(error: ApiError) -> Response:
    """Render `error` in the shape the request's route family uses."""
    v2 = request.path.startswith("/v2/") or request.path == "/v2"
    return json_response(error.body(v2=v2), error.status)


def register_error_handlers(app: Flask) -> None:
    """Turn every failure into a JSON error; nothing leaks as an HTML page."""

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return error_response(error)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        message = {
            404: f"no route {request.path}; see /openapi.json",
            405: f"{request.method} is not allowed on {request.path}",
            413: "the request body is larger than the limit of "
                 f"{app.config['MAX_CONTENT_LENGTH']:,} bytes",
        }.get(status, error.description or error.name)
        response = error_response(ApiError(status, HTTP_CODES.get(status, "http_error"), message))
        for name, value in error.get_headers():  # keep the Allow header of a 405
            if name.lower() == "allow":
                response.headers["Allow"] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(ApiError(500, "internal_error", "internal error; see the server log"))
