"""Every operation of the OpenAPI document carries examples, and they are true.

Each example must match its own schema, and each request example, sent to a real
server, must get an answer the document declares (schemathesis's examples phase).
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft4Validator

from tests.api.conftest import MAX_INSTANCES, Server
from tickml.api import openapi

DOCUMENT = openapi.document(MAX_INSTANCES)
BINARY = {"application/octet-stream", "image/png"}
OPERATIONS = [(method, path, operation) for path, item in DOCUMENT["paths"].items()
              for method, operation in item.items() if method != "parameters"]
IDS = [f"{method.upper()} {path}" for method, path, _ in OPERATIONS]


def json_schema(schema: Any) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema draft 4: references inlined, `nullable` read."""
    if isinstance(schema, list):
        return [json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return json_schema(DOCUMENT["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
    converted = {key: json_schema(value) for key, value in schema.items()
                 if key not in ("nullable", "example", "format")}
    if schema.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def check(example: Any, schema: dict[str, Any]) -> None:
    errors = [error.message for error in Draft4Validator(json_schema(schema))
              .iter_errors(example)]
    assert errors == []


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=IDS)
def test_every_operation_has_true_examples(method: str, path: str,
                                           operation: dict[str, Any]) -> None:
    parameters = DOCUMENT["paths"][path].get("parameters", [])
    for parameter in parameters:
        check(parameter["example"], parameter["schema"])
    for content in operation.get("requestBody", {}).get("content", {}).values():
        assert content["examples"], "no request example"
        for example in content["examples"].values():
            check(example["value"], content["schema"])
    assert "200" in operation["responses"]
    for response in operation["responses"].values():
        for media_type, content in response["content"].items():
            if media_type in BINARY:
                continue
            assert "example" in content, f"no {media_type} example"
            check(content["example"], content["schema"])


def test_the_predict_examples_show_both_forms_singly_and_in_batches() -> None:
    content = DOCUMENT["paths"]["/predict"]["post"]["requestBody"]["content"]
    examples = content["application/json"]["examples"]
    assert set(examples) == {"transaction", "positional", "batch", "positional-batch"}
    assert len(examples["positional"]["value"]["features"]) == 30


@pytest.fixture(scope="module")
def api_schema(server: Server):
    return schemathesis.openapi.from_url(server.url + "/openapi.json")


#: Operations that take input (a body or path parameters), so have request examples.
WITH_INPUT = [(method, path) for method, path, operation in OPERATIONS
              if "requestBody" in operation or "parameters" in DOCUMENT["paths"][path]]


@pytest.mark.parametrize(("method", "path"), WITH_INPUT,
                         ids=[f"{m.upper()} {p}" for m, p in WITH_INPUT])
def test_request_examples_get_the_documented_answer(api_schema, method: str,
                                                    path: str) -> None:
    operation = api_schema[path][method.upper()]
    strategies = operation.get_strategies_from_examples()
    assert strategies, "schemathesis found no example to send"

    @given(case=st.one_of(*strategies))
    @settings(max_examples=10, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def send(case) -> None:
        response = case.call_and_validate()
        assert response.status_code == 200, response.text

    send()
