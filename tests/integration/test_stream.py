"""End to end through real influxd, kapacitord, the UDF agent and the model API."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import requests

from tests.api_metrics import V2_INFER_ROUTE, answered
from tests.conftest import SCRIPTS
from tests.liveness import alerted_transactions
from tests.polling import wait_until
from tickml import schema
from tickml.generator import transaction_lines
from tickml.kapacitor import TASKS, define_tickml_tasks
from tickml.rescore import rescore, rescore_range
from tickml.udf.client import PredictClient

from .conftest import StreamStack


def api_scores(stack: StreamStack, rows: pd.DataFrame) -> tuple[np.ndarray, float]:
    """The API's probabilities for `rows`, and the model threshold."""
    instances = rows[list(schema.FEATURES)].to_dict(orient="records")
    response = requests.post(f"{stack.api.url}/predict", json={"instances": instances},
                             timeout=30)
    response.raise_for_status()
    body = response.json()
    return np.array([p["probability"] for p in body["predictions"]]), body["model"]["threshold"]


def rescore_run(stack: StreamStack, start_ns: int):
    api = PredictClient(stack.api.url, timeout=10, retry_for=10)
    try:
        return rescore(stack.influx, api, start_ns, time.time_ns() + 1)
    finally:
        api.close()


def test_every_transaction_comes_out_scored_with_the_api_probability(stream) -> None:
    rows = pd.concat([stream.test_rows.sample(300, random_state=1),
                      stream.test_rows.query("Class == 1").head(10)])
    sent = stream.write("all-scored", rows)
    scored = stream.wait_for_scored("all-scored", sent).sort_values("time")
    assert len(scored) == sent
    assert scored[schema.SCORED].all()
    expected, threshold = api_scores(stream, rows)
    np.testing.assert_allclose(scored[schema.PROBABILITY].to_numpy(), expected, rtol=1e-12)
    assert (scored[schema.VERDICT].to_numpy() == (expected >= threshold)).all()
    assert set(scored[schema.MODEL]) == {"fraud-lgbm"}
    assert (scored[schema.LABEL].to_numpy() == rows[schema.LABEL].to_numpy()).all()
    assert (scored[schema.LATENCY] >= 0).all()


def test_a_task_whose_url_names_the_v2_endpoint_scores_every_transaction_through_it(
        stream, tmp_path: Path) -> None:
    v2_url = stream.api.url + stream.v2_path
    scripts = tmp_path / "scripts"
    shutil.copytree(SCRIPTS, scripts)
    scoring = scripts / "fraud_scoring.tick"
    scoring.write_text(scoring.read_text().replace(
        "    @fraud()\n", f"    @fraud()\n        .url('{v2_url}')\n"))
    settings = dataclasses.replace(stream.settings, kapacitor_scripts=scripts)
    predict_before = answered(stream.api.url)
    v2_before = answered(stream.api.url, V2_INFER_ROUTE)
    try:
        define_tickml_tasks(stream.kapacitor, settings, stream.task_overrides)
        assert stream.wait_task_executing("fraud_scoring"), stream.kapacitord.log_tail()
        rows = pd.concat([stream.test_rows.sample(300, random_state=5),
                          stream.test_rows.query("Class == 1").head(10)])
        sent = stream.write("v2-url", rows)
        scored = stream.wait_for_scored("v2-url", sent).sort_values("time")
        assert len(scored) == sent
        assert scored[schema.SCORED].all(), set(scored[schema.REASON].dropna())
        expected, threshold = api_scores(stream, rows)
        np.testing.assert_allclose(scored[schema.PROBABILITY].to_numpy(), expected,
                                   rtol=1e-12)
        assert (scored[schema.VERDICT].to_numpy() == (expected >= threshold)).all()
        assert answered(stream.api.url, V2_INFER_ROUTE) > v2_before
        assert answered(stream.api.url) == predict_before + 1, "only api_scores used /predict"
    finally:
        stream.pipeline.define_tasks(reset=True)
        assert stream.wait_task_executing("fraud_scoring", timeout=60)


def test_a_point_with_a_missing_feature_is_marked_and_the_task_keeps_running(stream) -> None:
    lines = transaction_lines(stream.test_rows.head(3), time.time_ns(), tags={"run": "missing"})
    lines[1] = lines[1].replace(",V14=", ",V14_renamed=")
    stream.influx.write_lines(lines)
    scored = stream.wait_for_scored("missing", 3).sort_values("time")
    assert scored[schema.SCORED].tolist() == [True, False, True]
    assert scored[schema.REASON].iloc[1] == "missing feature V14"
    assert stream.kapacitor.task("fraud_scoring").healthy
    after = stream.write("missing-after", stream.test_rows.head(5))
    assert len(stream.wait_for_scored("missing-after", after)) == after


def test_api_outage_marks_points_and_rescore_fills_every_gap(stream) -> None:
    start = time.time_ns()
    before = stream.write("outage", stream.test_rows.iloc[0:50])
    assert len(stream.wait_for_scored("outage", before)) == before
    stream.api.stop()
    during = stream.write("outage", stream.test_rows.iloc[50:100])
    scored = stream.wait_for_scored("outage", before + during)
    assert len(scored) == before + during, "every transaction ends scored or marked"
    unscored = scored[~scored[schema.SCORED].astype(bool)]
    assert len(unscored) == during
    assert set(unscored[schema.REASON]) == {"api unreachable"}
    stream.restart_api()
    after = stream.write("outage", stream.test_rows.iloc[100:150])
    total = before + during + after
    wait_until(lambda: stream.scored("outage")[schema.SCORED].sum() >= total - during, timeout=60)

    report = rescore_run(stream, start)
    assert report.rescored >= during and report.failed == 0
    final = stream.scored("outage")
    assert len(final) == total, "rescore replaced the unscored points instead of adding"
    assert final[schema.SCORED].astype(bool).all()
    assert (final[schema.REASON].fillna("") == "").all()
    assert stream.kapacitor.task("fraud_scoring").healthy


def test_rescore_takes_the_threshold_the_scoring_task_gives_the_agent(
        stream, tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    shutil.copytree(SCRIPTS, scripts)
    scoring = scripts / "fraud_scoring.tick"
    # A task that flags every transaction, whatever the model's own threshold.
    scoring.write_text(scoring.read_text().replace(
        "    @fraud()\n", "    @fraud()\n        .threshold(0.0)\n"))
    settings = dataclasses.replace(stream.settings, kapacitor_scripts=scripts)
    try:
        define_tickml_tasks(stream.kapacitor, settings, stream.task_overrides)
        stream.kapacitor.set_status("fraud_scoring", "disabled")  # leave the run to rescore
        start = time.time_ns()
        sent = stream.write("task-threshold", stream.test_rows.query("Class == 0").head(20))
        report = rescore_range(settings, start, time.time_ns() + 1)
        rescored = stream.scored("task-threshold")
        assert report.rescored == sent and len(rescored) == sent
        assert (rescored[schema.VERDICT] == 1).all(), "rescore flags what the agent would flag"
    finally:
        stream.pipeline.define_tasks(reset=True)  # this test disabled it: enable it again
        assert stream.wait_task_executing("fraud_scoring", timeout=60)


def test_a_fraud_the_sweep_flags_raises_its_alert_once(stream) -> None:
    """The sweep's scored points reach fraud_alerts through the same subscription as the
    stream's: a transaction only the sweep scored and flagged is alerted, once."""
    stream.kapacitor.set_status("fraud_scoring", "disabled")  # leave the run to the sweep
    try:
        start = time.time_ns()
        sent = stream.write("swept-frauds", stream.test_rows.query("Class == 1").head(20))
        report = rescore_run(stream, start)
        assert report.rescored == sent
        swept = stream.scored("swept-frauds")
        flagged = set(swept.loc[swept[schema.VERDICT] == 1, schema.TRANSACTION_ID])
        assert flagged, "the model flags some of the known frauds"
        assert swept[schema.RESCORED].astype(bool).all()
        alert_log = stream.pipeline.alert_log
        assert wait_until(lambda: set(alerted_transactions(alert_log)) >= flagged, timeout=30)
        alerted = alerted_transactions(alert_log)
        assert {tx: alerted.count(tx) for tx in flagged} == dict.fromkeys(flagged, 1)
    finally:
        stream.kapacitor.set_status("fraud_scoring", "enabled")
        assert stream.wait_task_executing("fraud_scoring", timeout=60)


def test_killed_agent_is_recovered_by_the_watchdog_and_nothing_is_missing(stream) -> None:
    from tickml.stack.process import Service
    from tickml.stack.programs import TICKML, tickml_env

    watchdog = Service("watchdog", [TICKML, "watchdog", "--interval", "0.5",
                                    "--no-rescore-after"],
                       stream.directory, ready=lambda: True,
                       env=tickml_env(stream.settings)).start()
    try:
        start = time.time_ns()
        first = stream.write("agent-killed", stream.test_rows.iloc[200:240])
        assert len(stream.wait_for_scored("agent-killed", first)) == first
        stream.agent.kill()
        lost = stream.write("agent-killed", stream.test_rows.iloc[240:260])
        stream.restart_agent()
        assert stream.wait_task_executing("fraud_scoring", timeout=60), watchdog.log_tail()
        assert "restarting it" in watchdog.log_tail(100)
        later = stream.write("agent-killed", stream.test_rows.iloc[260:300])
        total = first + lost + later
        wait_until(lambda: stream.scored("agent-killed")[schema.SCORED].sum() >= first + later,
                   timeout=60)
        rescore_run(stream, start)
        final = stream.scored("agent-killed")
        assert len(final) == total
        assert final[schema.SCORED].astype(bool).all()
    finally:
        watchdog.stop()


def test_defining_the_tasks_again_changes_nothing(stream) -> None:
    # up.sh runs on every start: a second definition must not restart a healthy stream
    kapacitor = stream.pipeline.kapacitor
    before = {task_id: kapacitor.task(task_id) for task_id in TASKS}
    actions = stream.pipeline.define_tasks()
    assert actions == dict.fromkeys(TASKS, "unchanged"), {t: before[t].vars for t in TASKS}
    assert all(kapacitor.task(task_id).healthy for task_id in TASKS), before
