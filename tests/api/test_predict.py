"""`/predict` and tickml's other routes, against a real gunicorn server."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import requests

from tests.api.conftest import MAX_BODY_BYTES, MAX_INSTANCES, Server, as_matrix
from tickml import schema
from tickml.loader import LoadedModel


def test_batch_scores_equal_the_registry_models_own(server: Server, model: LoadedModel,
                                                     transactions: list[dict]) -> None:
    response = server.post("/predict", {"instances": transactions})
    assert response.status_code == 200
    body = response.json()
    expected = model.predict_proba(as_matrix(transactions))
    assert body["model"] == {"name": model.ref.name, "version": model.ref.version,
                             "threshold": model.threshold}
    assert [p["probability"] for p in body["predictions"]] == expected.tolist()
    assert [p["fraud"] for p in body["predictions"]] == (expected >= model.threshold).tolist()
    assert any(p["fraud"] for p in body["predictions"])  # the fraud rows are caught


def test_a_single_object_gives_one_prediction(server: Server, model: LoadedModel,
                                              transactions: list[dict]) -> None:
    response = server.post("/predict", transactions[3])
    assert response.status_code == 200
    (prediction,) = response.json()["predictions"]
    assert prediction["probability"] == model.predict_proba(as_matrix(transactions[3:4]))[0]


def test_predictions_follow_input_order(server: Server, transactions: list[dict]) -> None:
    forward = server.post("/predict", {"instances": transactions[:20]}).json()["predictions"]
    backward = server.post("/predict",
                           {"instances": transactions[:20][::-1]}).json()["predictions"]
    assert backward == forward[::-1]


def test_extra_keys_and_integers_are_fine(server: Server, transactions: list[dict]) -> None:
    row = {**transactions[0], "Class": 1, "note": "anything", "Amount": 12}
    assert server.post("/predict", row).status_code == 200


def test_an_empty_batch_scores_nothing(server: Server) -> None:
    response = server.post("/predict", {"instances": []})
    assert response.status_code == 200
    assert response.json()["predictions"] == []


def _row(transactions: list[dict], **changes: object) -> dict:
    return {**transactions[0], **changes}


def _without(row: dict, name: str) -> dict:
    return {k: v for k, v in row.items() if k != name}


BAD_BATCH_ITEMS = [
    # (description, change to item 3, status, code, field, message part)
    ("string", {"V14": "abc"}, 400, "invalid_value", "V14",
     "instances[3].V14: 'abc' is not a number"),
    ("null", {"V2": None}, 400, "invalid_value", "V2", "instances[3].V2: None is not a number"),
    ("boolean", {"Amount": True}, 400, "invalid_value", "Amount", "is not a number"),
    ("nested", {"V7": [1.0]}, 400, "invalid_value", "V7", "is not a number"),
    # the agent's rule (schema.feature_value) refuses these too, and relies on the index
    ("float64-max", {"Amount": sys.float_info.max}, 400, "invalid_value", "Amount",
     "is too large for a 64-bit float"),
    ("beyond-float64", {"V1": 10**400}, 400, "invalid_value", "V1",
     "is too large for a 64-bit float"),
]


@pytest.mark.parametrize(("what", "change", "status", "code", "field", "message"),
                         BAD_BATCH_ITEMS, ids=[case[0] for case in BAD_BATCH_ITEMS])
def test_a_bad_value_in_a_batch_names_field_and_index(
        server: Server, transactions: list[dict], what: str, change: dict, status: int,
        code: str, field: str, message: str) -> None:
    batch = [dict(row) for row in transactions[:6]]
    batch[3].update(change)
    response = server.post("/predict", {"instances": batch})
    assert response.status_code == status
    error = response.json()["error"]
    assert (error["code"], error["field"], error["index"]) == (code, field, 3)
    assert message in error["message"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_values_are_refused_by_field(server: Server, transactions: list[dict],
                                                 literal: str) -> None:
    row = _row(transactions, V10=0.0)
    body = requests.models.complexjson.dumps(row).replace('"V10": 0.0', f'"V10": {literal}')
    response = requests.post(server.url + "/predict", data=body, timeout=30,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["field"], error["index"]) == ("non_finite_value", "V10", None)
    assert error["message"].startswith("V10: ")


def test_a_missing_feature_is_named(server: Server, transactions: list[dict]) -> None:
    response = server.post("/predict", _without(transactions[0], "V17"))
    assert response.status_code == 400
    assert response.json()["error"] == {"message": "missing feature 'V17'",
                                        "code": "missing_field", "field": "V17", "index": None}
    batch = [transactions[0], _without(transactions[1], "Time")]
    error = server.post("/predict", {"instances": batch}).json()["error"]
    assert error == {"message": "instances[1]: missing feature 'Time'",
                     "code": "missing_field", "field": "Time", "index": 1}


@pytest.mark.parametrize(("body", "code", "field", "index", "message"), [
    (b'{"V1": 1.0,', "malformed_json", None, None, "the body is not valid JSON"),
    (b"", "malformed_json", None, None, "the body is not valid JSON"),
    (b"[1, 2]", "invalid_shape", None, None, "the body must be a JSON object"),
    (b'{"instances": {"V1": 1}}', "invalid_shape", "instances", None, "must be an array"),
    (b'{"instances": [17]}', "invalid_shape", None, 0, "instances[0] must be a transaction"),
])
def test_malformed_bodies_are_4xx_with_a_reason(server: Server, body: bytes, code: str,
                                               field: str | None, index: int | None,
                                               message: str) -> None:
    response = requests.post(server.url + "/predict", data=body, timeout=30,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["field"], error["index"]) == (code, field, index)
    assert message in error["message"]


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_body_not_declared_as_json_is_415(server: Server, transactions: list[dict],
                                            content_type: str | None) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    body = requests.models.complexjson.dumps(transactions[0])
    response = requests.post(server.url + "/predict", data=body, headers=headers, timeout=30)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_too_many_instances_is_413(server: Server, transactions: list[dict]) -> None:
    small = {name: 0.0 for name in schema.FEATURES}
    response = server.post("/predict", {"instances": [small] * (MAX_INSTANCES + 1)})
    assert response.status_code == 413
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("too_many_instances", "instances")
    assert f"{MAX_INSTANCES + 1:,} instances is more than the limit of {MAX_INSTANCES:,}" \
        in error["message"]


def test_a_body_over_the_size_limit_is_413(server: Server, transactions: list[dict]) -> None:
    row = _row(transactions, padding="x" * (MAX_BODY_BYTES + 1))
    response = server.post("/predict", row)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "payload_too_large"
    assert f"{MAX_BODY_BYTES:,} bytes" in error["message"]


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("GET", "/predict", 405, "method_not_allowed"),
    ("POST", "/health", 405, "method_not_allowed"),
    ("GET", "/nowhere", 404, "not_found"),
])
def test_unknown_routes_and_methods_answer_json(server: Server, method: str, path: str,
                                                status: int, code: str) -> None:
    response = requests.request(method, server.url + path, timeout=30)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_model_health_and_ready(server: Server, model: LoadedModel) -> None:
    metadata = server.get("/model").json()
    assert metadata["version"] == model.ref.version
    assert metadata["threshold"] == model.threshold
    assert metadata["columns"] == list(schema.FEATURES)
    assert "average_precision" in metadata["metrics"]["test"]
    assert server.get("/health").json() == {"status": "alive"}
    ready = server.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["model"] == {"name": model.ref.name, "version": model.ref.version,
                                     "threshold": model.threshold}
    assert ready.json()["refused"] is None


def _metric(text: str, metric: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith((metric + "{", metric + " ")) and all(
                f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_rows_and_frauds(server: Server, model: LoadedModel,
                                                transactions: list[dict]) -> None:
    before = server.get("/metrics").text
    batch = transactions[:30]
    assert server.post("/predict", {"instances": batch}).status_code == 200
    assert server.post("/predict", {"instances": "x"}).status_code == 400
    after = server.get("/metrics").text
    frauds = int((model.predict_proba(as_matrix(batch)) >= model.threshold).sum())

    def grew(name: str, **labels: str) -> float:
        return _metric(after, name, **labels) - _metric(before, name, **labels)

    assert grew("tickml_api_rows_scored_total") == 30
    assert grew("tickml_api_frauds_flagged_total") == frauds
    assert grew("tickml_api_requests_total", endpoint="/predict", status="200") == 1
    assert grew("tickml_api_requests_total", endpoint="/predict", status="400") == 1
    assert grew("tickml_api_request_duration_seconds_count", endpoint="/predict") == 2
    versions = [float(line.rsplit(" ", 1)[1]) for line in after.splitlines()
                if line.startswith("tickml_api_model_version{")]
    assert versions and all(math.isclose(v, model.ref.version) for v in versions)


def test_openapi_document_and_docs_page(server: Server) -> None:
    document = server.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    for path in ("/predict", "/model", "/health", "/ready", "/metrics", "/v2/health/live",
                 "/v2/health/ready", "/v2/models/{name}", "/v2/models/{name}/ready",
                 "/v2/models/{name}/infer"):
        assert path in document["paths"]
    batch = document["components"]["schemas"]["Batch"]
    assert batch["properties"]["instances"]["maxItems"] == MAX_INSTANCES
    page = server.get("/docs")
    assert page.headers["Content-Type"].startswith("text/html")
    # Swagger UI renders the operations in the browser (tests/api/test_docs_page.py);
    # the page itself loads only this server's bundle and document, nothing online.
    assert 'src="docs/swagger-ui-bundle.js"' in page.text and '"openapi.json"' in page.text
    assert "http://" not in page.text and "https://" not in page.text


def test_probabilities_are_numbers_not_strings(server: Server, transactions: list[dict]) -> None:
    predictions = server.post("/predict", {"instances": transactions[:5]}).json()["predictions"]
    assert all(isinstance(p["probability"], float) for p in predictions)
    assert np.all([0 <= p["probability"] <= 1 for p in predictions])
