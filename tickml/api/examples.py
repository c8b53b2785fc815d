"""Request and response examples for every operation of the OpenAPI document.

The docs page shows them and fills "Try it out" with them. The transaction in them is
the built-in sample (`tickml.api.sample`); figures such as probabilities are
illustrative, in the shape the API answers. `tests/api/test_examples.py` checks every
example against its schema and sends every request example to a real server.
"""

from __future__ import annotations

from typing import Any

from tickml import schema
from tickml.api import sample

MODEL = {"name": "fraud-lgbm", "version": 1, "threshold": 0.18}
PREDICTION = {"probability": 0.93, "fraud": True}
_VALUES = list(sample.FEATURES.values())

#: An example for every path parameter, by name.
PARAMETERS: dict[str, str] = {"name": MODEL["name"], "version": str(MODEL["version"]),
                              "asset": "swagger-ui.css"}

_PREDICT_REQUESTS = {
    "transaction": ("One transaction, features by name", sample.FEATURES),
    "positional": ("One transaction, positional (Time, V1..V28, Amount)",
                   {"features": _VALUES}),
    "batch": ("A batch of transactions, features by name",
              {"instances": [sample.FEATURES, {**sample.FEATURES, "Amount": 149.62}]}),
    "positional-batch": ("A batch of positional transactions",
                         {"instances": [{"features": _VALUES},
                                        {"features": [*_VALUES[:-1], 149.62]}]}),
}
_INFER_REQUEST = {"inputs": [{"name": "transactions", "shape": [1, len(schema.FEATURES)],
                              "datatype": "FP64", "data": _VALUES}]}
_REQUESTS: dict[tuple[str, str], dict[str, tuple[str, Any]]] = {
    ("post", "/predict"): _PREDICT_REQUESTS,
    ("post", "/v2/models/{name}/infer"): {"transaction": ("One row", _INFER_REQUEST)},
    ("post", "/v2/models/{name}/versions/{version}/infer"): {
        "transaction": ("One row", _INFER_REQUEST)},
}

_READY = {"status": "ready", "model": MODEL, "loaded_at": "2026-01-01T12:00:00+00:00",
          "reason": None, "refused": None, "pid": 4242}
_V2_MODEL = {"name": MODEL["name"], "versions": ["1"], "platform": "tickml-sklearn-pipeline",
             "inputs": [{"name": "transactions", "datatype": "FP64",
                         "shape": [-1, len(schema.FEATURES)]}],
             "outputs": [{"name": "probability", "datatype": "FP64", "shape": [-1]},
                         {"name": "fraud", "datatype": "BOOL", "shape": [-1]}],
             "parameters": {"threshold": MODEL["threshold"],
                            "columns": list(schema.FEATURES)}}
_INFER_RESPONSE = {"model_name": MODEL["name"], "model_version": "1", "outputs": [
    {"name": "probability", "datatype": "FP64", "shape": [1], "data": [0.93]},
    {"name": "fraud", "datatype": "BOOL", "shape": [1], "data": [True]}]}
_SERVICE = {"name": "tickml model API",
            "description": "Scores credit-card transactions with the production fraud "
                           "model of the tickml registry.",
            "version": "0.1.0", "model": MODEL, "features": list(schema.FEATURES),
            "links": {"docs": "/docs", "openapi": "/openapi.json", "predict": "/predict",
                      "test": "/test", "v2": "/v2", "model": "/model", "health": "/health",
                      "ready": "/ready", "metrics": "/metrics"}}
_METADATA = {**MODEL, "created": "2026-01-01T11:58:00+00:00", "columns": list(schema.FEATURES),
             "metrics": {"test": {"average_precision": 0.81, "roc_auc": 0.97}},
             "params": {"n_estimators": 400, "learning_rate": 0.05}, "seed": 42,
             "scoring": {"path": "compiled", "compiler": "lleaves 1.3.0", "trees": 400,
                         "tolerance": 1e-9, "source": "fastpath.zip",
                         "max_abs_difference": 2.2e-16, "rows_verified": 56962,
                         "load_check": {"rows": 2000, "max_abs_difference": 1.1e-16}}}
_METRICS = ("# HELP tickml_api_rows_scored_total Transactions scored.\n"
            "# TYPE tickml_api_rows_scored_total counter\n"
            "tickml_api_rows_scored_total 1024.0\n")

#: The example answer of each operation's success (and other non-error) statuses.
_RESPONSES: dict[tuple[str, str, int], Any] = {
    ("get", "/", 200): _SERVICE,
    ("post", "/predict", 200): {"model": MODEL, "predictions": [PREDICTION]},
    ("get", "/test", 200): {"sample": sample.describe(), "model": MODEL,
                            "prediction": PREDICTION},
    ("get", "/model", 200): _METADATA,
    ("get", "/health", 200): {"status": "alive"},
    ("get", "/ready", 200): _READY,
    ("get", "/ready", 503): {"status": "not_ready", "model": None, "loaded_at": None,
                             "reason": "no production model in models/", "refused": None,
                             "pid": 4242},
    ("get", "/metrics", 200): _METRICS,
    ("get", "/openapi.json", 200): {"openapi": "3.0.3",
                                    "info": {"title": "tickml model API", "version": "0.1.0"},
                                    "paths": {}},
    ("get", "/docs", 200): "<!doctype html><html lang=\"en\"><head>...</head><body>"
                           "<div id=\"swagger-ui\"></div>...</body></html>",
    ("get", "/docs/{asset}", 200): "html{box-sizing:border-box} ...",
    ("get", "/v2", 200): {"name": "tickml", "version": "0.1.0",
                          "extensions": ["binary_tensor_data"]},
    ("get", "/v2/health/live", 200): {"live": True},
    ("get", "/v2/health/ready", 200): {"ready": True},
    ("get", "/v2/health/ready", 503): {"ready": False},
    ("get", "/v2/models/{name}", 200): _V2_MODEL,
    ("get", "/v2/models/{name}/versions/{version}", 200): _V2_MODEL,
    ("get", "/v2/models/{name}/ready", 200): {"name": MODEL["name"], "ready": True},
    ("get", "/v2/models/{name}/versions/{version}/ready", 200): {"name": MODEL["name"],
                                                                 "ready": True},
    ("post", "/v2/models/{name}/infer", 200): _INFER_RESPONSE,
    ("post", "/v2/models/{name}/versions/{version}/infer", 200): _INFER_RESPONSE,
}

#: (status, code, message, field, index) of the example error for each error status.
_ERRORS = {
    400: ("invalid_value", "instances[3].V14: 'abc' is not a number", "V14", 3),
    404: ("model_not_found", "no model 'fraud-xgb' here; this server serves 'fraud-lgbm'",
          None, None),
    413: ("too_many_instances", "10,001 instances is more than the limit of 10,000 per "
          "request", "instances", None),
    415: ("unsupported_media_type", "send the body as application/json, not text/plain",
          None, None),
    503: ("model_unavailable", "no model is loaded: no production model in models/",
          None, None),
}
_PREDICT_ERRORS = {
    400: ("invalid_shape", "features has 29 values; expected 30, in this order: "
          + ", ".join(schema.FEATURES), "features", None),
}
_ASSET_ERROR = ("not_found", "no docs asset 'x.js'; the assets are swagger-ui-bundle.js, "
                "swagger-ui.css, favicon-32x32.png, favicon-16x16.png", None, None)


def request(method: str, path: str, media_type: str) -> dict[str, dict[str, Any]]:
    """The named request-body examples of an operation, as OpenAPI `examples`."""
    if media_type != "application/json":
        raise KeyError(f"no {media_type} request example for {method.upper()} {path}")
    return {name: {"summary": summary, "value": value}
            for name, (summary, value) in _REQUESTS[(method, path)].items()}


def response(method: str, path: str, status: int, media_type: str) -> Any:
    """The example body of one response, or None for a binary one (raw bytes)."""
    if media_type in ("application/octet-stream", "image/png"):
        return None
    if status >= 400 and (method, path, status) not in _RESPONSES:
        return _error(path, status)
    if media_type == "text/javascript":
        return "!function(){ /* Swagger UI */ }();"
    return _RESPONSES[(method, path, status)]


def _error(path: str, status: int) -> dict[str, Any]:
    if path == "/docs/{asset}":
        code, message, field, index = _ASSET_ERROR
    elif path == "/predict" and status in _PREDICT_ERRORS:
        code, message, field, index = _PREDICT_ERRORS[status]
    else:
        code, message, field, index = _ERRORS[status]
    details = {"code": code, "field": field, "index": index}
    if path.startswith("/v2"):
        return {"error": message, "details": details}
    return {"error": {"message": message, **details}}
