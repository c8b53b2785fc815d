"""Bounds on what one request may cost a worker: body size and large bodies at once.

Parsing JSON multiplies a body's size in memory: 16 MiB of empty objects (`[{},{},...]`)
became 414 MB of Python objects. The size limit (`MAX_CONTENT_LENGTH`) caps one body;
the slots here cap how many bodies above `TICKML_LARGE_BODY_BYTES` (or of unknown,
chunked length) a worker reads and parses at once. A request that finds every slot
taken gets 503 with `Retry-After` before its body is read; small requests, such as the
UDF agent's micro-batches, never wait for a slot.
"""

from __future__ import annotations

import threading

from flask import Flask, Response, current_app, g, request

from tickml.api.errors import ApiError, error_response

RETRY_AFTER_SECONDS = 1


class BodyTooLarge(ApiError):
    """A body over the size limit, told as a 413 whichever way it arrived."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "payload_too_large",
                         f"the request body is larger than the limit of {limit:,} bytes")


def read_body() -> bytes:
    """The request body, or a 413 when it is over `MAX_CONTENT_LENGTH`.

    Werkzeug refuses a declared Content-Length over the limit, but it stops a chunked
    body at the limit without saying so: the truncated JSON would be a 400.
    """
    body = request.get_data(cache=False)
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    chunked = request.content_length is None
    # One byte more than the limit means the body was cut short: it is too large.
    if limit is not None and chunked and len(body) >= limit and request.environ[
            "wsgi.input"].read(1):
        raise BodyTooLarge(limit)
    return body


def register_body_limits(app: Flask, large_body_bytes: int, large_bodies: int) -> None:
    """Give each request with a large body one of `large_bodies` slots, or a 503."""
    slots = threading.BoundedSemaphore(large_bodies)  # gevent's own, once it has patched

    @app.before_request
    def _claim_a_slot() -> Response | None:
        if not _is_large(large_body_bytes):
            return None
        if not slots.acquire(blocking=False):
            response = error_response(ApiError(
                503, "too_many_large_bodies",
                f"this worker is already reading {large_bodies} request body(ies) over "
                f"{large_body_bytes:,} bytes; retry in {RETRY_AFTER_SECONDS} s or send "
                "smaller batches"))
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        g.large_body_slot = True
        return None

    @app.teardown_request
    def _release_the_slot(_error: BaseException | None) -> None:
        if g.pop("large_body_slot", False):
            slots.release()


def _is_large(large_body_bytes: int) -> bool:
    """A body over the threshold, or chunked (its length is unknown until read)."""
    length = request.content_length
    if length is not None:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        # Over the size limit it is refused with 413 unread: no slot needed.
        return large_body_bytes < length and (limit is None or length <= limit)
    return "chunked" in request.headers.get("Transfer-Encoding", "").lower()
