"""The batch scorer without a socket: every point comes back, in order, scored or marked."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import orjson
import pytest

from tests.polling import wait_until
from tickml import schema
from tickml.stack.programs import free_port
from tickml.udf.client import PredictClient, ScoringUnavailable
from tickml.udf.scoring import BatchScorer

from .conftest import UnavailableApi
from .kapacitor_side import point_request, split_responses
from .local_http import QuietHandler, serving


def test_an_unreachable_api_marks_every_point_in_order_with_its_reason() -> None:
    client = PredictClient(f"http://127.0.0.1:{free_port()}", timeout=1.0, retry_for=0.0)
    scorer = BatchScorer(client, threshold=None)
    batch = [point_request(tx="a").point, point_request(tx="b", drop="V14").point]
    try:
        out = [r.point for r in split_responses(scorer.score(batch))]
    finally:
        client.close()
    assert [p.fieldsString[schema.TRANSACTION_ID] for p in out] == ["a", "b"]
    assert [p.fieldsString[schema.REASON] for p in out] == ["api unreachable",
                                                           "missing feature V14"]
    assert not any(p.fieldsBool[schema.SCORED] for p in out)
    assert (scorer.stats.batches, scorer.stats.unscored, scorer.stats.scored) == (1, 2, 0)
    assert scorer.stats.reasons == {"api unreachable": 1, "missing feature V14": 1}


@pytest.fixture
def api_closing_idle_connections() -> Iterator[str]:
    """A fake API (an answer for any batch) that closes every connection after one answer
    while announcing keep-alive, as a server whose idle timeout has passed does."""

    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            rows = len(orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
                       ["instances"])
            body = orjson.dumps({"predictions": [{"probability": 0.25, "fraud": False}] * rows,
                                 "model": {"name": "fake", "version": 1}})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

    with serving(Handler) as url:
        yield url


def test_a_kept_alive_connection_the_api_closed_is_replaced_at_once(
        api_closing_idle_connections: str, caplog: pytest.LogCaptureFixture) -> None:
    client = PredictClient(api_closing_idle_connections, timeout=2.0, retry_for=0.0)
    try:
        first = client.predict([[0.1] * len(schema.FEATURES)])
        second = client.predict([[0.2] * len(schema.FEATURES)] * 3)
    finally:
        client.close()
    assert first.probabilities == [0.25] and second.probabilities == [0.25] * 3
    assert "retrying" not in caplog.text and "unreachable" not in caplog.text


def test_a_client_told_to_give_up_stops_retrying_and_calls_the_api_no_more(
        unavailable_api: UnavailableApi) -> None:
    give_up = threading.Event()
    client = PredictClient(unavailable_api.url, timeout=2.0, retry_for=60.0, give_up=give_up)
    row = [0.1] * len(schema.FEATURES)
    failures: list[ScoringUnavailable] = []

    def predict() -> None:
        try:
            client.predict([row])
        except ScoringUnavailable as exc:
            failures.append(exc)

    caller = threading.Thread(target=predict, daemon=True)
    caller.start()
    try:
        assert wait_until(lambda: unavailable_api.calls >= 2, timeout=10), "it never retried"
        give_up.set()
        caller.join(timeout=10)
        assert not caller.is_alive(), "still retrying after being told to give up"
        assert [str(f) for f in failures] == ["api error 503 (not retried: the task was stopping)"]
        calls = unavailable_api.calls
        with pytest.raises(ScoringUnavailable, match="not retried: the task was stopping"):
            client.predict([row])
        assert unavailable_api.calls == calls, "a batch after giving up still called the API"
    finally:
        client.close()
