"""tickml's own routes: predictions, model metadata, health, metrics and docs."""

from __future__ import annotations

from flask import Blueprint, Response, request

from tickml.api import openapi, validation
from tickml.api.errors import ApiError, json_response
from tickml.api.limits import read_body
from tickml.api.metrics import CONTENT_TYPE
from tickml.api.state import api_state, require_model

bp = Blueprint("api", __name__)


@bp.post("/predict")
def predict() -> Response:
    """Score one transaction or a batch; see the OpenAPI document for the contract."""
    require_json_body()
    state = api_state()
    matrix, _ = validation.predict_matrix(read_body(), state.max_instances)
    model = require_model()
    probabilities = model.predict_proba(matrix)
    flags = probabilities >= model.threshold
    state.metrics.observe_scores(len(flags), int(flags.sum()))
    predictions = [{"probability": p, "fraud": f}
                   for p, f in zip(probabilities.tolist(), flags.tolist(), strict=True)]
    return json_response({"model": model.summary(), "predictions": predictions})


@bp.get("/model")
def model_metadata() -> Response:
    """The production model's metadata: version, threshold, metrics, columns, ..."""
    return json_response(require_model().metadata)


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
    """A human-readable page rendered from the OpenAPI document."""
    html = openapi.render_html(openapi.document(api_state().max_instances))
    return Response(html, mimetype="text/html")


def require_json_body() -> None:
    """Refuse a body that is not declared as JSON, with 415 `unsupported_media_type`."""
    if request.mimetype != "application/json":
        declared = request.content_type or "no Content-Type"
        raise ApiError(415, "unsupported_media_type",
                       f"send the body as application/json, not {declared}")
