"""The original project's calls: `GET /`, `GET /test` and positional `/predict` rows.

Scores are checked against a real gunicorn server; error cases and CORS headers go
through Flask's test client, which runs the same app without the server.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.api.conftest import Server, as_matrix
from tickml import schema
from tickml.api import create_app, sample
from tickml.api.cors import parse_origins
from tickml.config import Settings
from tickml.loader import LoadedModel

N = len(schema.FEATURES)
ORDER = ", ".join(schema.FEATURES)


def positional(row: dict) -> dict:
    return {"features": [row[name] for name in schema.FEATURES]}


def test_the_root_describes_the_service(server: Server, model: LoadedModel) -> None:
    body = server.get("/").json()
    assert body["name"] == "tickml model API"
    assert body["model"] == model.summary()
    assert body["features"] == list(schema.FEATURES)
    for name in ("docs", "predict", "v2", "test", "openapi"):
        assert server.get(body["links"][name]).status_code != 404, name


def test_the_test_route_scores_the_built_in_sample(server: Server, model: LoadedModel) -> None:
    body = server.get("/test").json()
    assert body["sample"]["name"] == sample.NAME
    assert body["sample"]["features"] == sample.FEATURES
    probability = model.predict_proba(sample.matrix())[0]
    assert body["prediction"] == {"probability": probability,
                                  "fraud": bool(probability >= model.threshold)}
    assert body["model"] == model.summary()


def test_a_positional_row_scores_as_the_same_row_by_name(
        server: Server, transactions: list[dict]) -> None:
    by_name = server.post("/predict", transactions[0]).json()
    by_position = server.post("/predict", positional(transactions[0])).json()
    assert by_position == by_name


def test_a_positional_batch_and_a_mixed_one_score_in_input_order(
        server: Server, model: LoadedModel, transactions: list[dict]) -> None:
    rows = transactions[:12]
    expected = model.predict_proba(as_matrix(rows)).tolist()
    batch = server.post("/predict", {"instances": [positional(r) for r in rows]}).json()
    assert [p["probability"] for p in batch["predictions"]] == expected
    mixed = [positional(r) if i % 2 else r for i, r in enumerate(rows)]
    body = server.post("/predict", {"instances": mixed}).json()
    assert [p["probability"] for p in body["predictions"]] == expected


@pytest.fixture
def client(small_project: Settings) -> FlaskClient:
    return create_app(small_project, {"TICKML_MAX_INSTANCES": 3}).test_client()


SAMPLE = list(sample.FEATURES.values())


@pytest.mark.parametrize("length", [0, N - 1, N + 1])
def test_a_wrong_length_is_a_400_naming_the_columns(client: FlaskClient, length: int) -> None:
    values = (SAMPLE * 2)[:length]
    for body, index, prefix in [({"features": values}, None, ""),
                                ({"instances": [{"features": SAMPLE}, {"features": values}]},
                                 1, "instances[1].")]:
        response = client.post("/predict", json=body)
        assert response.status_code == 400
        assert response.json["error"] == {
            "message": f"{prefix}features has {length} values; expected {N}, in this order: "
                       f"{ORDER}", "code": "invalid_shape", "field": "features", "index": index}


@pytest.mark.parametrize(("position", "value", "code", "message"), [
    (3, "1.5", "invalid_value", "features[3] (V3): '1.5' is not a number"),
    (0, None, "invalid_value", "features[0] (Time): None is not a number"),
    (29, True, "invalid_value", "features[29] (Amount): True is not a number"),
    (14, [1.0], "invalid_value", "features[14] (V14): [1.0] is not a number"),
    (7, 10 ** 400, "invalid_value", "is too large for a 64-bit float"),
])
def test_a_bad_positional_value_names_its_column(client: FlaskClient, position: int,
                                                 value: object, code: str,
                                                 message: str) -> None:
    values = list(SAMPLE)
    values[position] = value
    error = client.post("/predict", json={"features": values}).json["error"]
    assert (error["code"], error["field"], error["index"]) == (
        code, schema.FEATURES[position], None)
    assert message in error["message"]


def test_a_non_finite_positional_value_is_refused(client: FlaskClient) -> None:
    body = '{"features": [' + ", ".join(["0.5"] * (N - 1) + ["NaN"]) + "]}"
    response = client.post("/predict", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "non_finite_value"
    assert response.json["error"]["field"] == "Amount"


@pytest.mark.parametrize("features", ["1,2,3", {"Time": 1}, 17])
def test_features_must_be_an_array(client: FlaskClient, features: object) -> None:
    error = client.post("/predict", json={"features": features}).json["error"]
    assert (error["code"], error["field"]) == ("invalid_shape", "features")
    assert f"features must be an array of {N} numbers ({ORDER})" in error["message"]


def test_a_features_member_makes_the_row_positional(client: FlaskClient) -> None:
    by_name = {name: 0.0 for name in schema.FEATURES}
    both = client.post("/predict", json={**by_name, "features": SAMPLE}).json
    alone = client.post("/predict", json={"features": SAMPLE}).json
    assert both == alone


def test_a_positional_batch_keeps_the_instance_limit(client: FlaskClient) -> None:
    response = client.post("/predict", json={"instances": [{"features": SAMPLE}] * 4})
    assert response.status_code == 413
    assert response.json["error"]["code"] == "too_many_instances"


def test_without_a_model_the_root_answers_and_test_is_503(tmp_path: Path) -> None:
    client = create_app(Settings(root=tmp_path)).test_client()
    root = client.get("/")
    assert root.status_code == 200 and root.json["model"] is None
    response = client.get("/test")
    assert response.status_code == 503
    assert response.json["error"]["code"] == "model_unavailable"


# -- CORS --------------------------------------------------------------------------------
LISTED = "http://localhost:8080"
PREFLIGHT = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type"}


def cors_client(small_project: Settings, origins: str) -> FlaskClient:
    return create_app(small_project, {"TICKML_CORS_ORIGINS": origins}).test_client()


def test_cors_is_off_by_default(client: FlaskClient) -> None:
    response = client.get("/test", headers={"Origin": LISTED})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = client.options("/predict", headers={"Origin": LISTED, **PREFLIGHT})
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_a_listed_origin_gets_preflight_and_responses_allowed(small_project: Settings) -> None:
    client = cors_client(small_project, f"https://example.org, {LISTED}")
    preflight = client.options("/predict", headers={"Origin": LISTED, **PREFLIGHT})
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == LISTED
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Headers"] == "content-type"
    assert preflight.headers["Access-Control-Max-Age"] == "600"
    response = client.post("/predict", json={"features": SAMPLE}, headers={"Origin": LISTED})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == LISTED
    assert "Origin" in response.headers["Vary"]
    # an error is readable by the page too, so it can show the message
    error = client.post("/predict", json={"features": []}, headers={"Origin": LISTED})
    assert error.status_code == 400
    assert error.headers["Access-Control-Allow-Origin"] == LISTED


@pytest.mark.parametrize("origin", ["http://localhost:8081", "https://localhost:8080",
                                    "http://evil.example", "null"])
def test_an_origin_not_listed_gets_no_allow_origin(small_project: Settings,
                                                   origin: str) -> None:
    client = cors_client(small_project, LISTED)
    for response in (client.options("/predict", headers={"Origin": origin, **PREFLIGHT}),
                     client.get("/", headers={"Origin": origin})):
        assert "Access-Control-Allow-Origin" not in response.headers


def test_a_star_allows_every_origin(small_project: Settings) -> None:
    client = cors_client(small_project, "*")
    response = client.get("/", headers={"Origin": "http://anywhere.example:3000"})
    assert response.headers["Access-Control-Allow-Origin"] == "http://anywhere.example:3000"


@pytest.mark.parametrize(("raw", "expected"), [
    ("", ()), (" ", ()), ("http://a.test", ("http://a.test",)),
    ("http://a.test,https://b.test:8443  *", ("http://a.test", "https://b.test:8443", "*")),
])
def test_origins_are_read_from_a_list(raw: str, expected: tuple[str, ...]) -> None:
    assert parse_origins(raw) == expected


@pytest.mark.parametrize("bad", ["https://example.org/", "example.org", "http://a.test/app"])
def test_an_origin_with_a_path_or_no_scheme_is_refused_by_name(bad: str) -> None:
    with pytest.raises(ValueError, match=f"TICKML_API_CORS_ORIGINS: '{bad}' is not an origin"):
        parse_origins(f"http://ok.test,{bad}")
