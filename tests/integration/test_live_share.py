"""The live share's alert: Kapacitor's task live_share, against a real stream whose
transactions were scored half by the stream and half by the sweep."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.polling import wait_until
from tickml.config import Settings
from tickml.data.prepare import load_split
from tickml.generator import transaction_lines
from tickml.kapacitor import SCORING_TASK
from tickml.live import live_share
from tickml.rescore import rescore_range
from tickml.stack.services import LocalPipeline, local_pipeline

pytestmark = pytest.mark.timeout(600)
#: The task's schedule shortened, so its first query comes within seconds.
QUICK = {"live_share": {"every": timedelta(seconds=2), "min_scored": 10}}


@pytest.fixture(scope="module")
def half_swept(small_project: Settings, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[LocalPipeline]:
    """A stream where 40 transactions were scored live and 40 by a sweep."""
    with local_pipeline(small_project, tmp_path_factory.mktemp("live-share"),
                        task_overrides=QUICK) as pipeline:
        rows = load_split(small_project, "test").sample(80, random_state=5)
        write(pipeline, rows.head(40), "live")
        assert wait_until(lambda: live_share(pipeline.influx).scored >= 40, timeout=60)
        pipeline.kapacitor.set_status(SCORING_TASK, "disabled")
        start = time.time_ns()
        write(pipeline, rows.tail(40), "swept")
        time.sleep(1)
        report = rescore_range(pipeline.settings, start, time.time_ns())
        assert report.rescored == 40, report
        yield pipeline


def write(pipeline: LocalPipeline, rows, run: str) -> None:
    pipeline.influx.write_lines(transaction_lines(rows, time.time_ns(), tags={"run": run},
                                                  spacing_ns=1000))


def live_share_alerts(alert_log: Path) -> list[dict]:
    if not alert_log.is_file():
        return []
    alerts = [json.loads(line) for line in alert_log.read_text().splitlines() if line]
    return [a for a in alerts if a["id"] == "live_share"]


def test_tickml_status_counts_what_the_sweep_scored(half_swept: LocalPipeline) -> None:
    share = live_share(half_swept.influx)
    assert (share.scored, share.swept, share.share) == (80, 40, 0.5)


def test_a_live_share_of_one_half_raises_a_critical_alert(half_swept: LocalPipeline) -> None:
    assert wait_until(lambda: live_share_alerts(half_swept.alert_log), timeout=60), \
        half_swept.kapacitor.task("live_share")
    [alert] = live_share_alerts(half_swept.alert_log)
    assert alert["level"] == "CRITICAL"
    assert "0.500 of the 80 transactions scored in the last 5 minutes were scored live" \
        in alert["message"]
    assert "the sweep scored 40" in alert["message"]
