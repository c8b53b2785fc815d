"""tickml's own routes: the service's description, predictions, the built-in sample,
model metadata, health, metrics and docs."""

from __future__ import annotations

from typing import Any

import numpy as np
from flask import Blueprint, Response, request, send_from_directory

from tickml import __version__, schema
from tickml.api import openapi, sample, validation
from tickml.api.errors import ApiError, json_response
from tickml.api.limits import read_body
from tickml.api.metrics import CONTENT_TYPE
from tickml.api.state import api_state, require_model
from tickml.loader import LoadedModel

bp = Blueprint("api", __name__)

#: Where a client goes next, as `GET /` lists it.
LINKS = {"docs": "/docs", "openapi": "/openapi.json", "predict": "/predict", "test": "/test",
         "v2": "/v2", "model": "/model", "health": "/health", "ready": "/ready",
         "metrics": "/metrics"}


@bp.get("/")
def service() -> Response:
    """What this service is: name, version, the model served, and links to the rest."""
    model = api_state().holder.current()
    return json_response({
        "name": openapi.TITLE,
        "description": openapi.SUMMARY,
        "version": __version__,
        "model": model.summary() if model is not None else None,
        "features": list(schema.FEATURES),
        "links": LINKS,
    })


@bp.post("/predict")
def predict() -> Response:
    """Score one transaction or a batch; see the OpenAPI document for the contract."""
    require_json_body()
    state = api_state()
    matrix, _ = validation.predict_matrix(read_body(), state.max_instances)
    model, predictions, frauds = score(matrix)
    state.metrics.observe_scores(len(predictions), frauds)
    return json_response({"model": model.summary(), "predictions": predictions})


@bp.get("/test")
def score_sample() -> Response:
    """Score the built-in sample transaction, and say which it is.

    Not counted in the rows-scored and frauds-flagged metrics: it is no real transaction.
    """
    model, (prediction,), _ = score(sample.matrix())
    return json_response({"sample": sample.describe(), "model": model.summary(),
                          "prediction": prediction})


def score(matrix: np.ndarray) -> tuple[LoadedModel, list[dict[str, Any]], int]:
    """Score `matrix` with the current model (503 when none is loaded).

    Returns:
        The model that scored, one `{"probability", "fraud"}` per row in input order,
        and how many rows it flags as fraud.
    """
    model = require_model()
    probabilities = model.predict_proba(matrix)
    flags = probabilities >= model.threshold
    predictions = [{"probability": p, "fraud": f}
                   for p, f in zip(probabilities.tolist(), flags.tolist(), strict=True)]
    return model, predictions, int(flags.sum())


@bp.get("/model")
def model_metadata() -> Response:
    """The production model's metadata (version, threshold, metrics, columns, ...), and
    under `scoring` which path serves it: `compiled` with its compiler and how far it
    was found from the pipeline, or `pipeline` and why."""
    model = require_model()
    return json_response({**model.metadata, "scoring": model.scoring})


@bp.get("/health")
def health() -> Response:
    """Liveness: the process answers. Says nothing about the model."""
    return json_response({"status": "alive"})


@bp.get("/ready")
def ready() -> Response:
    """Readiness: 200 when a verified model is loaded, else 503 with the reason."""
    holder = api_state().holder
    holder.current()
    status = holder.status()
    return json_response(status, 200 if status["model"] is not None else 503)


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus metrics of every worker."""
    return Response(api_state().metrics.exposition(), mimetype=None,
                    content_type=CONTENT_TYPE)


@bp.get("/openapi.json")
def openapi_document() -> Response:
    """The OpenAPI 3 document of this API."""
    return json_response(openapi.document(api_state().max_instances))


@bp.get("/docs")
def docs() -> Response:
    """The interactive docs page (Swagger UI, served from the installed bundle)."""
    return Response(openapi.docs_page(), mimetype="text/html")


@bp.get("/docs/<asset>")
def docs_asset(asset: str) -> Response:
    """A file of the Swagger UI bundle the docs page loads; 404 for any other name."""
    mimetype = openapi.DOCS_ASSETS.get(asset)
    if mimetype is None:
        raise ApiError(404, "not_found", f"no docs asset {asset!r}; the assets are "
                       f"{', '.join(openapi.DOCS_ASSETS)}")
    return send_from_directory(openapi.swagger_ui_dir(), asset, mimetype=mimetype,
                               max_age=openapi.DOCS_ASSET_MAX_AGE)


def require_json_body() -> None:
    """Refuse a body that is not declared as JSON, with 415 `unsupported_media_type`."""
    if request.mimetype != "application/json":
        declared = request.content_type or "no Content-Type"
        raise ApiError(415, "unsupported_media_type",
                       f"send the body as application/json, not {declared}")
