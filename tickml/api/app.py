"""The Flask app factory."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request

from tickml.api import routes, v2
from tickml.api.cors import parse_origins, register_cors
from tickml.api.errors import register_error_handlers
from tickml.api.holder import ModelHolder
from tickml.api.limits import register_body_limits
from tickml.api.metrics import Metrics
from tickml.api.state import ApiState
from tickml.config import Settings, get_settings


def create_app(settings: Settings | None = None,
               test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the API and load the production model once, in this process.

    Under gunicorn this runs in each worker after the fork, so no model crosses a
    fork and each worker owns its reload state. Starting without a production model
    is fine: `/ready` says so, `/predict` answers 503, and the model is picked up as
    soon as one is promoted.

    Args:
        settings: tickml settings (default: read from `TICKML_*` variables).
        test_config: Flask config overriding the settings-derived values
            (`MAX_CONTENT_LENGTH`, `TICKML_MODELS_DIR`, `TICKML_MAX_INSTANCES`,
            `TICKML_RELOAD_INTERVAL`, `TICKML_LARGE_BODY_BYTES`, `TICKML_LARGE_BODIES`,
            `TICKML_CORS_ORIGINS`).

    Returns:
        The Flask application.
    """
    settings = settings or get_settings()
    app = Flask(__name__)
    app.config.from_mapping(
        MAX_CONTENT_LENGTH=settings.api_max_body_bytes,
        TICKML_MODELS_DIR=str(settings.models_dir),
        TICKML_MAX_INSTANCES=settings.api_max_instances,
        TICKML_RELOAD_INTERVAL=settings.api_reload_interval,
        TICKML_LARGE_BODY_BYTES=settings.api_large_body_bytes,
        TICKML_LARGE_BODIES=settings.api_large_bodies,
        TICKML_CORS_ORIGINS=settings.api_cors_origins,
    )
    if test_config is not None:
        app.config.from_mapping(test_config)
    app.url_map.merge_slashes = False  # `/v2/models//ready` is a 404, not a redirect

    metrics = Metrics()
    holder = ModelHolder(Path(app.config["TICKML_MODELS_DIR"]),
                         float(app.config["TICKML_RELOAD_INTERVAL"]),
                         on_change=metrics.model_loaded, on_refuse=metrics.model_refused,
                         verification_split=settings.processed_dir / "test.parquet")
    app.extensions["tickml"] = ApiState(holder, metrics, int(app.config["TICKML_MAX_INSTANCES"]))
    holder.refresh(wait=True)

    register_error_handlers(app)
    register_body_limits(app, int(app.config["TICKML_LARGE_BODY_BYTES"]),
                         int(app.config["TICKML_LARGE_BODIES"]))
    _register_request_metrics(app, metrics)
    register_cors(app, parse_origins(app.config["TICKML_CORS_ORIGINS"]))
    app.register_blueprint(routes.bp)
    app.register_blueprint(v2.bp)
    return app


def _register_request_metrics(app: Flask, metrics: Metrics) -> None:
    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.get("started")
        if started is not None:
            # The rule, not the path: `/v2/models/<name>/infer` keeps label values bounded.
            endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
            metrics.observe_request(endpoint, request.method, response.status_code,
                                    time.perf_counter() - started)
        return response
