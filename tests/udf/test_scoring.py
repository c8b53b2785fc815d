"""The batch scorer without a socket: every point comes back, in order, scored or marked."""

from __future__ import annotations

from tickml import schema
from tickml.stack.programs import free_port
from tickml.udf.client import PredictClient
from tickml.udf.scoring import BatchScorer

from .kapacitor_side import point_request, split_responses


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
