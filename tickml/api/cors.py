"""Cross-origin requests (CORS), off unless origins are listed.

With `TICKML_API_CORS_ORIGINS` set, a browser page served from one of those origins
may call the API: its requests, the preflight `OPTIONS` included, are answered with
`Access-Control-Allow-Origin` naming that origin. Any other origin gets no such
header, so the browser keeps the response from the page. `*` allows every origin.
"""

from __future__ import annotations

import re

from flask import Flask, Response, request

ANY_ORIGIN = "*"
#: How long a browser may cache a preflight answer, in seconds.
PREFLIGHT_MAX_AGE = 600
#: Response headers a page may read besides the CORS-safelisted ones (V2 binary tensors).
EXPOSED_HEADERS = "Inference-Header-Content-Length"
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#\s]+$", re.IGNORECASE)


def parse_origins(raw: str) -> tuple[str, ...]:
    """The origins listed in `raw` (comma- or space-separated), checked.

    Raises:
        ValueError: for an entry that is not `scheme://host[:port]` or `*`; a path or a
            trailing slash would never equal a browser's `Origin` header.
    """
    origins = tuple(part for part in re.split(r"[\s,]+", raw) if part)
    for origin in origins:
        if origin != ANY_ORIGIN and not _ORIGIN.match(origin):
            raise ValueError(f"TICKML_API_CORS_ORIGINS: {origin!r} is not an origin like "
                             "https://example.com or http://localhost:8080 (no path, no "
                             "trailing slash), nor *")
    return origins


def register_cors(app: Flask, origins: tuple[str, ...]) -> None:
    """Answer requests from `origins` with CORS headers; no origins leaves CORS off."""
    if not origins:
        return
    allow_any = ANY_ORIGIN in origins
    allowed = frozenset(origin.lower() for origin in origins)

    @app.after_request
    def _cors_headers(response: Response) -> Response:
        response.vary.add("Origin")
        origin = request.headers.get("Origin")
        if origin is None or not (allow_any or origin.lower() in allowed):
            return response
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            # Flask answered the preflight with the route's Allow header: reuse it.
            response.headers["Access-Control-Allow-Methods"] = response.headers.get(
                "Allow", "GET, POST, OPTIONS")
            requested = request.headers.get("Access-Control-Request-Headers")
            if requested:
                response.headers["Access-Control-Allow-Headers"] = requested
            response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
        return response
