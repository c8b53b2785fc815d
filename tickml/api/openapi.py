"""The OpenAPI 3 document of the API, and a docs page rendered from it.

Built from the schema module, so the documented transaction is always the one the
validator checks. Every status a route can answer is listed with its body.
"""

from __future__ import annotations

import html
from typing import Any

from tickml import __version__, schema
from tickml.api.errors import HTTP_CODES
from tickml.api.validation import FLOAT64_LIMIT

ERROR_CODES = sorted({*HTTP_CODES.values(), "malformed_json", "missing_field", "invalid_value",
                      "non_finite_value", "too_many_instances", "invalid_shape",
                      "invalid_datatype", "model_not_found", "model_unavailable",
                      "internal_error"})
_REF = "#/components/schemas/"


def document(max_instances: int) -> dict[str, Any]:
    """The OpenAPI 3.0 document for a server accepting `max_instances` rows per request."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "tickml model API",
            "version": __version__,
            "description": (
                "Scores credit-card transactions with the production fraud model of the "
                "tickml registry. `/predict` is tickml's own JSON contract; `/v2/...` is "
                "the Open Inference Protocol (KServe/Triton V2), including Triton's binary "
                "tensor extension. Errors on tickml routes are `{\"error\": {message, field, "
                "index, code}}`; on `/v2` routes `{\"error\": message, \"details\": {...}}`."),
        },
        "paths": _paths(),
        "components": {"schemas": _schemas(max_instances)},
    }


def _paths() -> dict[str, Any]:
    model_name = _path_param("name", "Model name, e.g. fraud-lgbm.",
                             "^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
    version = _path_param("version", "Model version, e.g. 1.", "^[0-9]+$")
    infer = _operation(
        "Score a [rows, 30] tensor (Open Inference Protocol)",
        "The one input is `transactions`, FP64 or FP32, shape `[rows, 30]`, columns in "
        "schema order (Time, V1..V28, Amount), data flat or one array per row. With the "
        "binary tensor extension the JSON header is followed by raw little-endian values "
        "and its length is sent in `Inference-Header-Content-Length`; binary outputs are "
        "answered as `application/octet-stream`. The Content-Type is not checked.",
        {200: ("Probability and fraud tensors.",
               {"application/json": _ref("V2InferResponse"),
                "application/octet-stream": {"type": "string", "format": "binary"}}),
         **_errors(400, 404, 413, 503, v2=True)},
        request={"application/json": _ref("V2InferRequest")})
    return {
        "/predict": {"post": _operation(
            "Score one transaction or a batch",
            "Features are read by name; extra keys (an id, `Class`) are ignored. A body "
            "with an `instances` member is a batch; anything else is one transaction. "
            "Predictions come back in input order; `fraud` is probability >= threshold.",
            {200: ("One prediction per transaction.", {"application/json": _ref("Prediction")}),
             **_errors(400, 413, 415, 503)},
            request={"application/json": {"oneOf": [_ref("Batch"), _ref("Transaction")]}})},
        "/model": {"get": _operation(
            "The production model's metadata",
            "Name, version, threshold, metrics, columns and the rest of its registry sidecar.",
            {200: ("The metadata.", {"application/json": _ref("ModelMetadata")}),
             **_errors(503)})},
        "/health": {"get": _operation(
            "Liveness", "200 whenever the process answers.",
            {200: ("Alive.", {"application/json": _ref("Health")})})},
        "/ready": {"get": _operation(
            "Readiness",
            "200 with the model served when a verified model is loaded; 503 with the reason "
            "when none is. `refused` names a newer production model this worker would not "
            "load (the previous one keeps serving). Each worker answers for itself.",
            {200: ("Ready.", {"application/json": _ref("Readiness")}),
             503: ("No model is loaded.", {"application/json": _ref("Readiness")})})},
        "/metrics": {"get": _operation(
            "Prometheus metrics",
            "Requests by endpoint and status, latency histogram, rows scored, frauds flagged, "
            "model version per worker, model loads and refusals.",
            {200: ("Prometheus text format.", {"text/plain": {"type": "string"}})})},
        "/openapi.json": {"get": _operation(
            "This document", "",
            {200: ("OpenAPI 3 document.", {"application/json": {"type": "object"}})})},
        "/docs": {"get": _operation(
            "Human-readable documentation", "",
            {200: ("HTML page.", {"text/html": {"type": "string"}})})},
        "/v2": {"get": _operation(
            "Server metadata (Open Inference Protocol)", "",
            {200: ("Name, version, extensions.", {"application/json": _ref("V2Server")})})},
        "/v2/health/live": {"get": _operation(
            "Server liveness (Open Inference Protocol)", "",
            {200: ("Live.", {"application/json": _ref("V2Live")})})},
        "/v2/health/ready": {"get": _operation(
            "Server readiness (Open Inference Protocol)", "",
            {200: ("Ready.", {"application/json": _ref("V2Ready")}),
             503: ("No model is loaded.", {"application/json": _ref("V2Ready")})})},
        "/v2/models/{name}": _model_metadata_path([model_name]),
        "/v2/models/{name}/versions/{version}": _model_metadata_path([model_name, version]),
        "/v2/models/{name}/ready": _model_ready_path([model_name]),
        "/v2/models/{name}/versions/{version}/ready": _model_ready_path([model_name, version]),
        "/v2/models/{name}/infer": {"parameters": [model_name], "post": infer},
        "/v2/models/{name}/versions/{version}/infer": {"parameters": [model_name, version],
                                                        "post": infer},
    }


def _model_metadata_path(parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return {"parameters": parameters, "get": _operation(
        "Model metadata (Open Inference Protocol)", "404 unless it names the model served.",
        {200: ("Inputs, outputs, versions.", {"application/json": _ref("V2ModelMetadata")}),
         **_errors(404, 503, v2=True)})}


def _model_ready_path(parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return {"parameters": parameters, "get": _operation(
        "Model readiness (Open Inference Protocol)", "404 unless it names the model served.",
        {200: ("Ready.", {"application/json": _ref("V2ModelReady")}),
         **_errors(404, 503, v2=True)})}


def _operation(summary: str, description: str, responses: dict[int, tuple[str, dict]],
               request: dict[str, Any] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {str(status): {"description": text,
                                    "content": {t: {"schema": s} for t, s in content.items()}}
                      for status, (text, content) in responses.items()},
    }
    if description:
        operation["description"] = description
    if request is not None:
        operation["requestBody"] = {"required": True, "content": {
            t: {"schema": s} for t, s in request.items()}}
    return operation


def _errors(*statuses: int, v2: bool = False) -> dict[int, tuple[str, dict]]:
    text = {400: "Bad input; the error names the field and, in a batch, the index.",
            404: "No such model or version.",
            413: "Body over the size limit, or too many instances.",
            415: "The body is not declared as application/json.",
            503: "No model is loaded (code model_unavailable), or this worker is already "
                 "reading its share of large bodies (code too_many_large_bodies, with "
                 "Retry-After)."}
    schema_ = _ref("V2Error" if v2 else "Error")
    return {s: (text[s], {"application/json": schema_}) for s in statuses}


def _path_param(name: str, description: str, pattern: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "pattern": pattern}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _schemas(max_instances: int) -> dict[str, Any]:
    number = {"type": "number", "minimum": -FLOAT64_LIMIT, "exclusiveMinimum": True,
              "maximum": FLOAT64_LIMIT, "exclusiveMaximum": True}
    error_details = {
        "code": {"type": "string", "enum": ERROR_CODES},
        "field": {"type": "string", "nullable": True},
        "index": {"type": "integer", "nullable": True},
    }
    model_summary = {"type": "object", "required": ["name", "version", "threshold"],
                     "properties": {"name": {"type": "string"}, "version": {"type": "integer"},
                                    "threshold": {"type": "number"}}}
    tensor_out = {"type": "object", "required": ["name", "datatype", "shape"], "properties": {
        "name": {"type": "string", "enum": ["probability", "fraud"]},
        "datatype": {"type": "string", "enum": ["FP64", "BOOL"]},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "data": {"type": "array", "items": {"oneOf": [{"type": "number"},
                                                      {"type": "boolean"}]}},
        "parameters": {"type": "object"}}}
    return {
        "Transaction": {
            "type": "object",
            "description": "One transaction; features by name, finite numbers. Other keys "
                           "are ignored, except `instances`, which makes the body a batch.",
            "required": list(schema.FEATURES),
            "properties": {name: number for name in schema.FEATURES},
            "not": {"required": ["instances"]},
        },
        "Batch": {
            "type": "object", "required": ["instances"],
            "properties": {"instances": {"type": "array", "maxItems": max_instances,
                                         "items": _ref("Transaction")}},
        },
        "Prediction": {
            "type": "object", "required": ["model", "predictions"],
            "properties": {
                "model": model_summary,
                "predictions": {"type": "array", "items": {
                    "type": "object", "required": ["probability", "fraud"],
                    "properties": {"probability": {"type": "number", "minimum": 0,
                                                   "maximum": 1},
                                   "fraud": {"type": "boolean"}}}}},
        },
        "Error": {
            "type": "object", "required": ["error"],
            "properties": {"error": {"type": "object", "required": ["message", "code"],
                                     "properties": {"message": {"type": "string"},
                                                    **error_details}}},
        },
        "V2Error": {
            "type": "object", "required": ["error"],
            "properties": {"error": {"type": "string"},
                           "details": {"type": "object", "properties": error_details}},
        },
        "ModelMetadata": {
            "type": "object",
            "required": ["name", "version", "threshold", "columns", "metrics"],
            "properties": {"name": {"type": "string"}, "version": {"type": "integer"},
                           "threshold": {"type": "number"},
                           "columns": {"type": "array", "items": {"type": "string"}},
                           "metrics": {"type": "object"}},
        },
        "Health": {"type": "object", "required": ["status"],
                   "properties": {"status": {"type": "string", "enum": ["alive"]}}},
        "Readiness": {
            "type": "object", "required": ["status", "model", "refused"],
            "properties": {
                "status": {"type": "string", "enum": ["ready", "not_ready"]},
                "model": {**model_summary, "nullable": True},
                "loaded_at": {"type": "string", "nullable": True},
                "reason": {"type": "string", "nullable": True},
                "refused": {"type": "object", "nullable": True, "properties": {
                    "model": {"type": "string"}, "reason": {"type": "string"},
                    "at": {"type": "string"}}},
                "pid": {"type": "integer"}},
        },
        "V2Server": {"type": "object", "required": ["name", "version", "extensions"],
                     "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                                    "extensions": {"type": "array",
                                                   "items": {"type": "string"}}}},
        "V2Live": {"type": "object", "required": ["live"],
                   "properties": {"live": {"type": "boolean"}}},
        "V2Ready": {"type": "object", "required": ["ready"],
                    "properties": {"ready": {"type": "boolean"}}},
        "V2ModelReady": {"type": "object", "required": ["name", "ready"],
                         "properties": {"name": {"type": "string"},
                                        "ready": {"type": "boolean"}}},
        "V2ModelMetadata": {
            "type": "object", "required": ["name", "versions", "platform", "inputs", "outputs"],
            "properties": {"name": {"type": "string"},
                           "versions": {"type": "array", "items": {"type": "string"}},
                           "platform": {"type": "string"},
                           "inputs": {"type": "array", "items": {"type": "object"}},
                           "outputs": {"type": "array", "items": {"type": "object"}},
                           "parameters": {"type": "object"}},
        },
        "V2InferRequest": {
            "type": "object", "required": ["inputs"],
            "properties": {
                "id": {"type": "string"},
                "parameters": {"type": "object",
                               "properties": {"binary_data_output": {"type": "boolean"}}},
                "inputs": {"type": "array", "minItems": 1, "maxItems": 1, "items": {
                    "type": "object", "required": ["name", "shape", "datatype"],
                    "properties": {
                        "name": {"type": "string", "enum": ["transactions"]},
                        "shape": {"type": "array", "minItems": 2, "maxItems": 2,
                                  "items": {"type": "integer", "minimum": 0}},
                        "datatype": {"type": "string", "enum": ["FP64", "FP32"]},
                        "parameters": {"type": "object", "properties": {
                            "binary_data_size": {"type": "integer", "minimum": 0}}},
                        "data": {"type": "array", "items": {"oneOf": [
                            number, {"type": "array", "items": number}]}}}}},
                "outputs": {"type": "array", "items": {
                    "type": "object", "required": ["name"],
                    "properties": {"name": {"type": "string", "enum": ["probability", "fraud"]},
                                   "parameters": {"type": "object", "properties": {
                                       "binary_data": {"type": "boolean"}}}}}},
            },
        },
        "V2InferResponse": {
            "type": "object", "required": ["model_name", "model_version", "outputs"],
            "properties": {"model_name": {"type": "string"},
                           "model_version": {"type": "string"},
                           "id": {"type": "string"},
                           "parameters": {"type": "object"},
                           "outputs": {"type": "array", "items": tensor_out}},
        },
    }


def render_html(doc: dict[str, Any]) -> str:
    """A self-contained HTML page listing every operation of `doc` (no CDN needed)."""
    info = doc["info"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(info['title'])}"
             "</title><style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
             "code{background:#eee;padding:0 .2em}h2{border-top:1px solid #ccc;"
             "padding-top:.5em}</style></head><body>",
             f"<h1>{_e(info['title'])} {_e(info['version'])}</h1>",
             f"<p>{_e(info['description'])}</p>",
             "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a></p>"]
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            parts.append(f"<h2><code>{method.upper()} {_e(path)}</code> — "
                         f"{_e(operation['summary'])}</h2>")
            if operation.get("description"):
                parts.append(f"<p>{_e(operation['description'])}</p>")
            parts.append("<ul>" + "".join(
                f"<li><b>{status}</b> {_e(response['description'])} "
                f"({_e(', '.join(response['content']))})</li>"
                for status, response in operation["responses"].items()) + "</ul>")
    parts.append("</body></html>")
    return "".join(parts)


def _e(text: str) -> str:
    return html.escape(str(text))
