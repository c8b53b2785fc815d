"""The agent's client against an Open Inference Protocol (V2) endpoint, here a stand-in one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from tickml import schema
from tickml.udf.client import PredictClient, Score, ScoringRejected, Unscored, score_rows
from tickml.udf.wire import PredictForm, V2Form, wire_form

from .local_http import QuietHandler, serving

N = len(schema.FEATURES)
INFER = "/v2/models/fraud-lgbm/infer"


@pytest.mark.parametrize(("url", "endpoint", "form"), [
    ("http://api:5000", "http://api:5000/predict", PredictForm),
    ("http://api:5000/", "http://api:5000/predict", PredictForm),
    ("http://api:5000/v2/models/fraud-lgbm/infer", "http://api:5000/v2/models/fraud-lgbm/infer",
     V2Form),
    ("http://api:5000/v2/models/fraud-lgbm/infer/", "http://api:5000/v2/models/fraud-lgbm/infer",
     V2Form),
    ("https://ml.example.org/serving/v2/models/fraud/versions/3/infer",
     "https://ml.example.org/serving/v2/models/fraud/versions/3/infer", V2Form),
    ("http://api:5000/v2/models/fraud-lgbm", "http://api:5000/v2/models/fraud-lgbm/predict",
     PredictForm),
    ("http://api:5000/v2/models/infer", "http://api:5000/v2/models/infer/predict", PredictForm),
], ids=["base", "base-slash", "v2", "v2-slash", "v2-version-under-a-prefix", "v2-no-infer",
        "v2-no-name"])
def test_the_url_decides_the_endpoint_and_its_form(url: str, endpoint: str, form: type) -> None:
    chosen_endpoint, chosen_form = wire_form(url)
    assert (chosen_endpoint, type(chosen_form)) == (endpoint, form)


@dataclass
class V2Server:
    """A stand-in V2 server: `answer(request)` gives (status, body); requests are kept."""

    answer: Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def client(self, **kwargs: Any) -> PredictClient:
        return PredictClient(self.url + INFER, timeout=2.0, retry_for=0.0, **kwargs)


def v2_answer(probabilities: list[float], *, fraud: list[bool] | None = None,
              threshold: float | None = None, version: Any = "4",
              datatype: str = "FP64") -> dict[str, Any]:
    """A V2 inference response; `fraud` and `threshold` left out when None."""
    outputs = [{"name": "probability", "datatype": datatype, "shape": [len(probabilities)],
                "data": probabilities}]
    if fraud is not None:
        outputs.append({"name": "fraud", "datatype": "BOOL", "shape": [len(fraud)],
                        "data": fraud})
    body: dict[str, Any] = {"model_name": "fraud-lgbm", "outputs": outputs}
    if version is not None:
        body["model_version"] = version
    if threshold is not None:
        body["parameters"] = {"threshold": threshold}
    return body


@pytest.fixture
def v2_server() -> Iterator[Callable[..., V2Server]]:
    started: list = []

    def start(answer: Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]) -> V2Server:
        server = V2Server(answer)

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                request = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(request)
                server.paths.append(self.path)
                status, body = server.answer(request)
                raw = orjson.dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        context = serving(Handler)
        server.url = context.__enter__()
        started.append(context)
        return server

    yield start
    for context in started:
        context.__exit__(None, None, None)


def rows_of(count: int) -> list[list[float]]:
    return [[float(i * N + j) for j in range(N)] for i in range(count)]


def rows_in(request: dict[str, Any]) -> int:
    return request["inputs"][0]["shape"][0]


def test_a_batch_goes_as_one_fp64_tensor_of_rows_by_30(v2_server) -> None:
    server = v2_server(lambda r: (200, v2_answer([0.5] * rows_in(r), fraud=[True] * rows_in(r))))
    client = server.client()
    try:
        client.predict(rows_of(3))
    finally:
        client.close()
    assert server.paths == [INFER]
    assert server.requests == [{"inputs": [{
        "name": "transactions", "shape": [3, N], "datatype": "FP64",
        "data": [float(v) for v in range(3 * N)]}]}]


def test_the_answer_gives_probabilities_verdicts_model_and_version(v2_server) -> None:
    server = v2_server(lambda r: (200, v2_answer([0.1, 0.9], fraud=[False, True],
                                                  threshold=0.5, version="4")))
    client = server.client()
    try:
        predictions = client.predict(rows_of(2))
    finally:
        client.close()
    assert predictions.probabilities == [0.1, 0.9]
    assert predictions.verdicts == [False, True]
    assert (predictions.model, predictions.version, predictions.threshold) == \
        ("fraud-lgbm", 4, 0.5)


@pytest.mark.parametrize(("answer", "task_threshold", "verdicts"), [
    (v2_answer([0.2, 0.6], fraud=[True, False], threshold=0.9), None, [True, False]),
    (v2_answer([0.2, 0.6], threshold=0.5), None, [False, True]),
    (v2_answer([0.2, 0.6]), 0.1, [True, True]),
    (v2_answer([0.2, 0.6], fraud=[False, False], threshold=0.9), 0.5, [False, True]),
    (v2_answer([0.2, 0.6], datatype="FP32", threshold=0.5, version=7), None, [False, True]),
], ids=["the-servers-verdicts", "no-fraud-output-the-models-threshold",
        "neither-the-tasks-threshold", "the-tasks-threshold-first", "fp32-and-a-number-version"])
def test_the_verdict_comes_from_the_task_else_the_server_else_the_models_threshold(
        v2_server, answer: dict[str, Any], task_threshold: float | None,
        verdicts: list[bool]) -> None:
    server = v2_server(lambda r: (200, answer))
    client = server.client()
    try:
        outcomes = score_rows(client, rows_of(2), task_threshold)
    finally:
        client.close()
    assert [o.verdict for o in outcomes if isinstance(o, Score)] == verdicts


def test_an_answer_without_verdicts_or_threshold_leaves_the_rows_unscored_and_says_why(
        v2_server) -> None:
    server = v2_server(lambda r: (200, v2_answer([0.2] * rows_in(r))))
    client = server.client()
    try:
        outcomes = score_rows(client, [*rows_of(2), "missing feature V14"])
    finally:
        client.close()
    assert outcomes[2] == Unscored("missing feature V14")
    assert outcomes[0] == outcomes[1]
    assert isinstance(outcomes[0], Unscored) and outcomes[0].api_error
    assert "no 'fraud' output" in outcomes[0].reason
    assert "parameters.threshold" in outcomes[0].reason
    assert ".threshold()" in outcomes[0].reason


def rejected_by(server) -> ScoringRejected:
    """The ScoringRejected the client raises on the server's answer to one row."""
    client = server.client()
    try:
        with pytest.raises(ScoringRejected) as refused:
            client.predict(rows_of(1))
    finally:
        client.close()
    return refused.value


@pytest.mark.parametrize(("answer", "message"), [
    (v2_answer([0.2], fraud=[True], version=None), "no model_version"),
    (v2_answer([0.2], fraud=[True], version="v2"), "model_version 'v2'"),
    ({"model_name": "m", "model_version": "1", "outputs": [
        {"name": "score", "datatype": "FP64", "shape": [1], "data": [0.2]}]},
     "no 'probability' output (it has 'score')"),
    (v2_answer([0.2, 0.3], fraud=[True, True]), "2 values of 'probability' for 1 rows"),
    (v2_answer([0.2], datatype="BYTES"), "'probability' is 'BYTES', not FP32 or FP64"),
    ({"outputs": []}, "no 'probability' output (it has none)"),
    ({"predictions": [{"probability": 0.2, "fraud": True}]}, "unreadable body"),
], ids=["no-version", "a-version-not-a-number", "no-probability", "wrong-count",
        "wrong-datatype", "no-outputs", "not-a-v2-answer"])
def test_an_answer_that_does_not_score_the_batch_is_refused_by_name(
        v2_server, answer: dict[str, Any], message: str) -> None:
    assert message in str(rejected_by(v2_server(lambda r: (200, answer))))


def test_a_v2_error_body_is_a_rejection_with_its_message(v2_server) -> None:
    server = v2_server(lambda r: (400, {"error": "shape [1, 30] is not what I take"}))
    refused = rejected_by(server)
    assert str(refused) == "api rejected the batch: shape [1, 30] is not what I take"
    assert refused.index is None
    assert len(server.requests) == 1, "a 4xx is not retried"


def test_a_row_tickmls_v2_names_in_its_details_is_marked_and_the_rest_sent_again(
        v2_server) -> None:
    def answer(request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        rows = rows_in(request)
        if rows == 3:
            return 400, {"error": "inputs[0] row 1, Amount: too large", "details": {
                "code": "invalid_value", "field": "Amount", "index": 1}}
        return 200, v2_answer([0.3] * rows, fraud=[False] * rows)

    server = v2_server(answer)
    client = server.client()
    try:
        outcomes = score_rows(client, rows_of(3))
    finally:
        client.close()
    assert outcomes[1] == Unscored("api refused feature Amount (invalid_value)")
    assert all(isinstance(outcomes[i], Score) for i in (0, 2))
    assert [rows_in(r) for r in server.requests] == [3, 2]


def test_a_v2_server_error_is_retried_then_unavailable(v2_server) -> None:
    server = v2_server(lambda r: (503, {"error": "model not ready"}))
    client = PredictClient(server.url + INFER, timeout=2.0, retry_for=0.3)
    try:
        outcomes = score_rows(client, rows_of(1))
    finally:
        client.close()
    assert outcomes == [Unscored("api error 503", api_error=True)]
    assert len(server.requests) >= 2
