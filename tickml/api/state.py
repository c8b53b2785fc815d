"""What the views share, kept on the app (`app.extensions["tickml"]`)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from tickml.api.errors import ApiError
from tickml.api.holder import ModelHolder
from tickml.api.metrics import Metrics
from tickml.loader import LoadedModel


@dataclass(frozen=True)
class ApiState:
    """The model holder, the metrics and the request limits of one app."""

    holder: ModelHolder
    metrics: Metrics
    max_instances: int


def api_state() -> ApiState:
    """The state of the app handling the current request."""
    return current_app.extensions["tickml"]


def require_model() -> LoadedModel:
    """The model for this request, or a 503 `model_unavailable` when none is loaded."""
    holder = api_state().holder
    model = holder.current()
    if model is None:
        raise ApiError(503, "model_unavailable",
                       f"no model is loaded: {holder.problem or 'not loaded yet'}")
    return model
