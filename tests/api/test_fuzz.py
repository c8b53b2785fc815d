"""Property-based fuzzing of the live API from its own OpenAPI document (schemathesis),
then tables of malformed headers and V2 tensor fields, each answered 4xx naming it,
and of the positional `/predict` form with any JSON values (hypothesis).

Positive and negative cases for every operation: no 5xx, and every status, content type
and body must be the ones the document declares. The operations are parametrized here,
from the document the app builds, rather than with `schemathesis.pytest.from_fixture`,
whose lazy loader reads a pytest attribute (`Function._nodeid`) that pytest 9 removed.
"""

from __future__ import annotations

import json
import math
import socket

import orjson
import pytest
import schemathesis
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.api.conftest import MAX_INSTANCES, Server
from tickml import schema
from tickml.api import create_app, openapi
from tickml.api.validation import FLOAT64_LIMIT
from tickml.config import Settings

DOCUMENT = openapi.document(MAX_INSTANCES)
OPERATIONS = [(method.upper(), path, mode)
              for path, item in DOCUMENT["paths"].items()
              for method, operation in item.items() if method != "parameters"
              for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
              # an operation without inputs has no invalid request to generate
              if mode is GenerationMode.POSITIVE or "parameters" in item
              or "requestBody" in operation]


#: Statuses that count as rejecting invalid data: schemathesis's defaults, plus the 413 the
#: document declares for a body over the size limit or too many instances.
REJECTIONS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428",
              "429", "5xx"]


@pytest.fixture(scope="module")
def api_schema(server: Server):
    config = schemathesis.Config.from_dict(
        {"checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}}})
    return schemathesis.openapi.from_url(server.url + "/openapi.json", config=config)


@pytest.mark.parametrize(("method", "path", "mode"), OPERATIONS,
                         ids=[f"{m} {p} {mode.value}" for m, p, mode in OPERATIONS])
def test_the_api_keeps_its_documented_promises(api_schema, method: str, path: str,
                                               mode: GenerationMode) -> None:
    operation = api_schema[path][method]
    # A V2 tensor must hold rows x 30 values (or binary_data_size bytes): a relation
    # between members that JSON Schema cannot state, so a schema-valid tensor can still
    # be a documented 400. Every other check, 5xx and conformance included, still runs.
    excluded = [positive_data_acceptance] if path.endswith("/infer") else []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=15, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case) -> None:
        case.call_and_validate(excluded_checks=excluded)

    check()


# -- headers and tensor fields, one malformed value at a time ----------------------------

def raw_status(server: Server, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send one request as raw bytes (any header value at all); its status and body."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        try:  # HTTP header bytes are latin-1; a character beyond it goes as UTF-8
            raw = head.encode("latin-1")
        except UnicodeEncodeError:
            raw = head.encode()
        conn.sendall(raw + b"\r\n" + body)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def infer_head(server: Server, body: bytes, *headers: str) -> str:
    name = server.get("/model").json()["name"]
    lines = [f"POST /v2/models/{name}/infer HTTP/1.1", "Host: 127.0.0.1",
             "Connection: close", f"Content-Length: {len(body)}", *headers]
    return "\r\n".join(lines) + "\r\n"


def valid_tensor(rows: int = 1) -> dict:
    return {"inputs": [{"name": "transactions", "datatype": "FP64",
                        "shape": [rows, len(schema.FEATURES)],
                        "data": [0.0] * (rows * len(schema.FEATURES))}]}


@pytest.mark.parametrize("value", [
    "²", "9" * 5000, "-1", "1e3", "", " ", "0x10", "１２", "12.0", "99999999999999999999",
])
def test_a_malformed_inference_header_length_is_400_naming_it(server: Server,
                                                              value: str) -> None:
    body = orjson.dumps(valid_tensor())
    status, answer = raw_status(server, infer_head(
        server, body, f"Inference-Header-Content-Length: {value}"), body)
    assert status == 400, answer
    assert orjson.loads(answer)["details"]["field"] == "Inference-Header-Content-Length"


@pytest.mark.parametrize("value", ["²", "abc", "-1", "1 2", "9" * 5000, "0x10", "１２"])
def test_a_malformed_content_length_is_4xx(server: Server, value: str) -> None:
    head = ("POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {value}\r\n")
    status, _ = raw_status(server, head, b"{}")
    assert 400 <= status < 500


@pytest.mark.parametrize(("value", "status"), [
    ("application/json; charset=\x7f", 400),  # a control character: gunicorn refuses it
    ("application/json;;;", 200),
    ("application/json; q=" + "9" * 5000, 200),
    ("x" * 4000, 415),
    ("", 415),
])
def test_an_odd_content_type_is_json_or_4xx(server: Server, value: str, status: int) -> None:
    body = orjson.dumps(dict.fromkeys(schema.FEATURES, 0.0))
    head = ("POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Type: {value}\r\nContent-Length: {len(body)}\r\n")
    assert raw_status(server, head, body)[0] == status


def _set(document: dict, path: tuple, value: object) -> dict:
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return document


#: (where, malformed value, the field the 400 names)
TENSOR_FIELDS = [
    *[(("inputs", 0, "datatype"), v, "inputs[0].datatype")
      for v in (["FP64"], {"FP64": 1}, 64, None, True, "fp64", "BYTES")],
    *[(("inputs", 0, "name"), v, "inputs[0].name")
      for v in (["transactions"], {"name": 1}, 5, None, "x" * 5000)],
    *[(("inputs", 0, "shape"), v, "inputs[0].shape")
      for v in ("1,30", [1, "30"], [1.0, 30], [-1, 30], [True, 30], {"rows": 1}, None,
                [1], [1, 30, 1], [MAX_INSTANCES + 1, 30])],
    *[(("inputs", 0, "data"), v, "inputs[0].data") for v in ("x", {"a": 1}, None, 7)],
    (("inputs", 0, "data"), ["1.0"] * 30, "Time"),
    (("inputs", 0, "data"), [[None] * 30], "Time"),
    (("inputs", 0, "data"), [0.0] * 29 + [[1.0]], "Amount"),
    (("inputs", 0, "data"), [0.0] * 29 + [{"v": 1}], "Amount"),
    (("inputs", 0, "data"), [0.0] * 29 + [True], "Amount"),
    *[(("inputs", 0, "parameters"), v, "inputs[0].parameters") for v in ([], "x", 1)],
    *[(("inputs", 0, "parameters"), {"binary_data_size": v},
       "inputs[0].parameters.binary_data_size") for v in ("240", 1.5, [240], None, -1)],
    *[(("inputs",), v, "inputs") for v in ({}, "x", [], None)],
    (("inputs", 0), 5, "inputs[0]"),
    *[(("outputs",), v, "outputs") for v in ("probability", {"name": "fraud"}, 3)],
    *[(("outputs",), [{"name": v}], "outputs[0].name")
      for v in (["probability"], {"a": 1}, 1, None, "nope")],
    (("outputs",), ["probability"], "outputs[0]"),
    (("outputs",), [{"name": "fraud", "parameters": [1]}], "outputs[0].parameters"),
    *[(("parameters",), v, "parameters") for v in ([], "x", 2)],
]


@pytest.mark.parametrize(("path", "value", "field"), TENSOR_FIELDS,
                         ids=[f"{'.'.join(map(str, p))}={str(v)[:20]!r}"
                              for p, v, _ in TENSOR_FIELDS])
def test_a_malformed_tensor_field_is_4xx_naming_it(server: Server, path: tuple, value: object,
                                                   field: str) -> None:
    body = orjson.dumps(_set(valid_tensor(), path, value))
    status, answer = raw_status(server, infer_head(server, body), body)
    assert 400 <= status < 500, answer
    assert orjson.loads(answer)["details"]["field"] == field, answer
def test_the_original_calls_are_fuzzed() -> None:
    fuzzed = {(method, path) for method, path, _ in OPERATIONS}
    assert {("GET", "/"), ("GET", "/test"), ("POST", "/predict")} <= fuzzed
    request = DOCUMENT["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert {"$ref": "#/components/schemas/Positional"} in request["application/json"]["schema"][
        "oneOf"]


@pytest.fixture(scope="module")
def client(small_project: Settings) -> FlaskClient:
    return create_app(small_project).test_client()


ANY_VALUE = st.one_of(st.floats(), st.integers(min_value=-10 ** 400, max_value=10 ** 400),
                      st.booleans(), st.none(), st.text(max_size=5),
                      st.lists(st.floats(), max_size=2))


def is_accepted_number(value: object) -> bool:
    """The documented rule: a JSON number whose float64 is finite and below the limit."""
    if type(value) not in (int, float):
        return False
    try:
        number = float(value)
    except OverflowError:
        return False
    return math.isfinite(number) and abs(number) < FLOAT64_LIMIT


# Any values at all, and full rows of finite numbers (which must all score).
@given(values=st.one_of(st.lists(ANY_VALUE, max_size=34),
                        st.lists(st.floats(allow_nan=False, allow_infinity=False),
                                 min_size=30, max_size=30)))
@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_any_positional_row_is_scored_or_refused_by_column(client: FlaskClient,
                                                           values: list) -> None:
    response = client.post("/predict", data=json.dumps({"features": values}),
                           content_type="application/json")
    if len(values) == len(schema.FEATURES) and all(map(is_accepted_number, values)):
        assert response.status_code == 200
        assert len(response.json["predictions"]) == 1
    else:
        assert response.status_code == 400
        error = response.json["error"]
        assert error["field"] in ("features", *schema.FEATURES)
        if error["field"] == "features":
            assert ", ".join(schema.FEATURES) in error["message"]
