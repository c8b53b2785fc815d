"""Property-based fuzzing of the live API from its own OpenAPI document (schemathesis),
and of the positional `/predict` form with any JSON values (hypothesis).

Positive and negative cases for every operation: no 5xx, and every status, content type
and body must be the ones the document declares. The operations are parametrized here,
from the document the app builds, rather than with `schemathesis.pytest.from_fixture`,
whose lazy loader reads a pytest attribute (`Function._nodeid`) that pytest 9 removed.
"""

from __future__ import annotations

import json
import math

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
