"""The OpenAPI 3 document of the API, and the interactive docs page that shows it.

Built from the schema module, so the documented transaction is always the one the
validator checks. Every status a route can answer is listed with its body, and every
operation carries request and response examples (`tickml.api.examples`). The docs page
is Swagger UI from the `flask-swagger-ui` package's bundle, served by the API itself:
no CDN, so it works offline.
"""

from __future__ import annotations

import html
from importlib.resources import files
from pathlib import Path
from typing import Any

from tickml import __version__, schema
from tickml.api import examples
from tickml.api.errors import HTTP_CODES
from tickml.api.validation import COLUMN_ORDER, FLOAT64_LIMIT, POSITIONAL_KEY

TITLE = "tickml model API"
SUMMARY = "Scores credit-card transactions with the production fraud model of the tickml registry."
#: The Swagger UI files the docs page loads, with their media types.
DOCS_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
               "favicon-32x32.png": "image/png", "favicon-16x16.png": "image/png"}
DOCS_ASSET_MAX_AGE = 3600
#: The group each path is listed under on the docs page (by its first segment).
TAGS = {"": "tickml", "predict": "tickml", "test": "tickml", "model": "tickml",
        "health": "operations", "ready": "operations", "metrics": "operations",
        "openapi.json": "documentation", "docs": "documentation",
        "v2": "Open Inference Protocol (V2)"}

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
            "title": TITLE,
            "version": __version__,
            "description": (
                f"{SUMMARY} `/predict` is tickml's own JSON contract: transactions by "
                f"feature name, or positional as `{{\"{POSITIONAL_KEY}\": [...]}}` in the "
                f"order {COLUMN_ORDER}. `/test` scores a built-in sample transaction. "
                "`/v2/...` is the Open Inference Protocol (KServe/Triton V2), including "
                "Triton's binary tensor extension. Errors on tickml routes are "
                "`{\"error\": {message, field, index, code}}`; on `/v2` routes "
                "`{\"error\": message, \"details\": {...}}`."),
        },
        "tags": [{"name": name} for name in dict.fromkeys(TAGS.values())],
        "paths": annotate(_paths()),
        "components": {"schemas": _schemas(max_instances)},
    }


def annotate(paths: dict[str, Any]) -> dict[str, Any]:
    """Give every operation its tag and its examples (request body, parameters, responses)."""
    for path, item in paths.items():
        for parameter in item.get("parameters", []):
            parameter["example"] = examples.PARAMETERS[parameter["name"]]
        for method, operation in item.items():
            if method == "parameters":
                continue
            operation["tags"] = [TAGS[path.split("/")[1]]]
            for parameter in operation.get("parameters", []):
                parameter["example"] = examples.PARAMETERS[parameter["name"]]
            for media_type, content in operation.get("requestBody", {}).get("content",
                                                                             {}).items():
                content["examples"] = examples.request(method, path, media_type)
            for status, response in operation["responses"].items():
                for media_type, content in response["content"].items():
                    example = examples.response(method, path, int(status), media_type)
                    if example is not None:
                        content["example"] = example
    return paths


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
        "/": {"get": _operation(
            "What this service is",
            "Name, version, the model served (null while none is loaded), the feature "
            "order of the positional form, and links to the other routes.",
            {200: ("The description.", {"application/json": _ref("Service")})})},
        "/predict": {"post": _operation(
            "Score one transaction or a batch",
            "Features are read by name; extra keys (an id, `Class`) are ignored. A "
            f"transaction may instead be positional, `{{\"{POSITIONAL_KEY}\": [...]}}` with "
            f"the values in this order: {COLUMN_ORDER}; a wrong length is a 400 naming the "
            "columns. A body with an `instances` member is a batch (of either form, mixed "
            "too); anything else is one transaction. Predictions come back in input order; "
            "`fraud` is probability >= threshold.",
            {200: ("One prediction per transaction.", {"application/json": _ref("Prediction")}),
             **_errors(400, 413, 415, 503)},
            request={"application/json": {"oneOf": [_ref("Batch"), _ref("Transaction"),
                                                    _ref("Positional")]}})},
        "/test": {"get": _operation(
            "Score the built-in sample transaction",
            "Scores a fixed transaction shipped with tickml (the first fraud of the Kaggle "
            "file, rounded) and names it, so the API can be tried with no data at hand. "
            "Not counted in the rows-scored metrics.",
            {200: ("The sample, the model and its prediction.",
                   {"application/json": _ref("SampleResult")}),
             **_errors(503)})},
        "/model": {"get": _operation(
            "The production model's metadata",
            "Name, version, threshold, metrics, columns and the rest of its registry sidecar; "
            "`scoring` says whether the compiled scorer or the pipeline serves, and why.",
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
            "Interactive documentation (Swagger UI)",
            "Lists every operation of this document and can call them (\"Try it out\").",
            {200: ("HTML page.", {"text/html": {"type": "string"}})})},
        "/docs/{asset}": {"parameters": [{
            "name": "asset", "in": "path", "required": True,
            "description": "A file of the Swagger UI bundle the docs page loads.",
            "schema": {"type": "string", "enum": list(DOCS_ASSETS)}}],
            "get": _operation(
                "A file of the docs page", "Served from the installed Swagger UI bundle.",
                {200: ("The file.", {
                    "text/javascript": {"type": "string"}, "text/css": {"type": "string"},
                    "image/png": {"type": "string", "format": "binary"}}),
                 404: ("No such file.", {"application/json": _ref("Error")})})},
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
    prediction = {"type": "object", "required": ["probability", "fraud"],
                  "properties": {"probability": {"type": "number", "minimum": 0, "maximum": 1},
                                 "fraud": {"type": "boolean"}}}
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
            "not": {"anyOf": [{"required": ["instances"]}, {"required": [POSITIONAL_KEY]}]},
        },
        "Positional": {
            "type": "object",
            "description": f"One transaction, positional: `{POSITIONAL_KEY}` holds the "
                           f"{len(schema.FEATURES)} values in this order: {COLUMN_ORDER}. "
                           "Other keys are ignored, except `instances`.",
            "required": [POSITIONAL_KEY],
            "properties": {POSITIONAL_KEY: {
                "type": "array", "items": number,
                "minItems": len(schema.FEATURES), "maxItems": len(schema.FEATURES)}},
            "not": {"required": ["instances"]},
        },
        "Batch": {
            "type": "object", "required": ["instances"],
            "properties": {"instances": {"type": "array", "maxItems": max_instances,
                                         "items": {"oneOf": [_ref("Transaction"),
                                                             _ref("Positional")]}}},
        },
        "Service": {
            "type": "object",
            "required": ["name", "description", "version", "model", "features", "links"],
            "properties": {
                "name": {"type": "string"}, "description": {"type": "string"},
                "version": {"type": "string"},
                "model": {**model_summary, "nullable": True},
                "features": {"type": "array", "items": {"type": "string",
                                                        "enum": list(schema.FEATURES)},
                             "description": "The order of a positional transaction."},
                "links": {"type": "object", "required": ["docs", "predict", "v2"],
                          "additionalProperties": {"type": "string"}}},
        },
        "SampleResult": {
            "type": "object", "required": ["sample", "model", "prediction"],
            "properties": {
                "sample": {"type": "object", "required": ["name", "description", "features"],
                           "properties": {"name": {"type": "string"},
                                          "description": {"type": "string"},
                                          "features": _ref("Transaction")}},
                "model": model_summary,
                "prediction": prediction},
        },
        "Prediction": {
            "type": "object", "required": ["model", "predictions"],
            "properties": {
                "model": model_summary,
                "predictions": {"type": "array", "items": prediction}},
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
            "required": ["name", "version", "threshold", "columns", "metrics", "scoring"],
            "properties": {"name": {"type": "string"}, "version": {"type": "integer"},
                           "threshold": {"type": "number"},
                           "columns": {"type": "array", "items": {"type": "string"}},
                           "metrics": {"type": "object"},
                           "scoring": {
                               "type": "object", "required": ["path"],
                               "description": "Which path serves: `compiled` (the compiler, "
                                              "the largest difference from the pipeline and "
                                              "the rows compared) or `pipeline` and why.",
                               "properties": {
                                   "path": {"type": "string", "enum": ["compiled", "pipeline"]},
                                   "reason": {"type": "string"},
                                   "compiler": {"type": "string"},
                                   "max_abs_difference": {"type": "number"},
                                   "rows_verified": {"type": "integer"}}}},
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


def swagger_ui_dir() -> Path:
    """The installed Swagger UI bundle (the `flask-swagger-ui` package's `dist`)."""
    return Path(str(files("flask_swagger_ui") / "dist"))


def docs_page() -> str:
    """The Swagger UI page: it loads the bundle from `/docs/...` and this API's document.

    Paths are relative (the page is `/docs`), so it also works behind a path prefix.
    `validatorUrl: null` keeps Swagger UI from asking an online validator for a badge.
    """
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(TITLE)}</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="docs/favicon-16x16.png" sizes="16x16">
<style>body{{margin:0;background:#fafafa}}</style>
</head><body><div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout", validatorUrl: null,
  displayRequestDuration: true, defaultModelsExpandDepth: 0
}});
</script></body></html>
"""
