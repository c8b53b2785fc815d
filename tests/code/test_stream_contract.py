"""The stream's names live in tickml.schema; the TICKscripts and the clients agree with it."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import SCRIPTS
from tickml import schema
from tickml.udf.client import PredictClient, Predictions, Score, Unscored, score_rows
from tickml.udf.options import DEFAULTS


def test_the_scoring_task_reads_transactions_and_writes_scored_points() -> None:
    script = (SCRIPTS / "fraud_scoring.tick").read_text()
    assert f".measurement('{schema.TRANSACTIONS}')" in script
    assert f".measurement('{schema.SCORED_POINTS}')" in script


def test_the_scoring_tasks_vars_default_to_the_agents_defaults() -> None:
    script = (SCRIPTS / "fraud_scoring.tick").read_text()
    assert f"var batch_size = {DEFAULTS.batch_size}\n" in script
    assert f"var max_wait = {round(DEFAULTS.max_wait * 1000)}ms\n" in script
    assert f"var retry_for = {DEFAULTS.retry_for:g}s\n" in script


def test_the_alert_task_reads_the_scored_fields_and_writes_alerts() -> None:
    script = (SCRIPTS / "fraud_alerts.tick").read_text()
    assert f".measurement('{schema.SCORED_POINTS}')" in script
    assert f".measurement('{schema.ALERTS}')" in script
    for field in (schema.SCORED, schema.VERDICT, schema.PROBABILITY, schema.MODEL,
                  schema.MODEL_VERSION, schema.TRANSACTION_ID):
        assert f'"{field}"' in script, field


@pytest.mark.parametrize(("threshold", "verdicts"), [(None, [False, True, True]),
                                                     (0.5, [False, False, True])])
def test_a_task_threshold_replaces_the_model_verdict(threshold: float | None,
                                                    verdicts: list[bool]) -> None:
    predictions = Predictions([0.1, 0.4, 0.8], [False, True, True], "fraud-lgbm", 2)
    scores = predictions.scores(threshold)
    assert [s.verdict for s in scores] == verdicts
    assert scores[2] == Score(0.8, True, "fraud-lgbm", 2)


def test_unscorable_rows_keep_their_reason_and_an_unreachable_api_is_an_api_error() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    client = PredictClient(url, timeout=1.0, retry_for=0.0)
    try:
        outcomes = score_rows(client, [[0.0] * len(schema.FEATURES), "missing feature V14"])
    finally:
        client.close()
    assert outcomes == [Unscored("api unreachable", api_error=True),
                        Unscored("missing feature V14")]
    assert outcomes[1].fields() == {schema.SCORED: False, schema.REASON: "missing feature V14"}
