"""A short real run of the pipeline whose data every dashboard query is executed against.

influxd → kapacitord (fraud_scoring, fraud_alerts, kapacitor_stats, live_share) → `tickml udf` →
`tickml serve`: a few hundred transactions with frauds among them and one point that
cannot be scored, then wait until scored, alerts and Kapacitor's statistics are stored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.polling import wait_until
from tickml.config import Settings
from tickml.data.prepare import load_split
from tickml.generator import transaction_lines
from tickml.influx import InfluxClient, InfluxError
from tickml.kapacitor import TASKS, KapacitorClient
from tickml.stack.services import local_pipeline

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "compose" / "grafana"
RUN = "dashboards"
UNSCORABLE_REASON = "missing feature V14"
ALERTS = '"chronograf"."autogen"."alerts"'


def load_dashboards() -> dict[str, dict[str, Any]]:
    """The provisioned dashboards by file name."""
    return {path.name: json.loads(path.read_text())
            for path in sorted((GRAFANA / "dashboards").glob("*.json"))}


@pytest.fixture(scope="session")
def dashboards() -> dict[str, dict[str, Any]]:
    return load_dashboards()


@dataclass
class DashboardRun:
    """The finished run: clients, what was written and when."""

    influx: InfluxClient
    kapacitor: KapacitorClient
    start_ms: int
    sent: int
    frauds_sent: int
    alert_log: Path

    def records(self, statement: str) -> list[dict[str, Any]]:
        return self.influx.records(statement)

    def count(self, statement: str) -> int:
        """The `count` of a query; 0 also while its database does not exist yet."""
        try:
            rows = self.records(statement)
        except InfluxError:
            return 0
        return int(rows[0]["count"]) if rows else 0


def run_rows(test_rows: pd.DataFrame) -> pd.DataFrame:
    """300 ordinary test rows and 15 frauds, so flagged, missed and passed all occur."""
    return pd.concat([test_rows.query("Class == 0").sample(300, random_state=3),
                      test_rows.query("Class == 1").head(15)])


def write_run(influx: InfluxClient, rows: pd.DataFrame) -> int:
    """Write `rows` and one transaction without V14; return how many points were sent."""
    lines = transaction_lines(rows, time.time_ns(), tags={"run": RUN}, spacing_ns=1000)
    broken = transaction_lines(rows.head(1), time.time_ns(), tags={"run": RUN})[0]
    lines.append(broken.replace(",V14=", ",V14_renamed="))
    influx.write_lines(lines)
    return len(lines)


@pytest.fixture(scope="module")
def dashboard_run(small_project: Settings, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[DashboardRun]:
    with local_pipeline(small_project, tmp_path_factory.mktemp("dashboards")) as pipeline:
        kapacitord = pipeline.kapacitord
        start_ms = int(time.time() * 1000)
        rows = run_rows(load_split(small_project, "test"))
        sent = write_run(pipeline.influx, rows)
        # The dashboards query with Grafana's and Chronograf's read-only login.
        reader = pipeline.logins.influx_reader
        influx = InfluxClient(pipeline.settings.influx_url, "fraud", username=reader.user,
                              password=reader.password)
        run = DashboardRun(influx, pipeline.kapacitor, start_ms, sent,
                           int(rows["Class"].sum()), pipeline.alert_log)
        if not wait_until(lambda: run.count('SELECT count("scored") FROM "scored"') >= sent, 60):
            pytest.fail(f"{sent} points never all reached scored:\n{kapacitord.log_tail()}")
        # The tests compare alerts with flagged points; give the last alerts a moment.
        flagged = run.count('SELECT count("fraud") FROM "scored" WHERE "fraud" = 1')
        wait_until(lambda: run.count(f"SELECT count(\"value\") FROM {ALERTS}") >= flagged, 20)
        # Two statistics samples per task (one every 10 s) make rates and differences.
        if not wait_until(lambda: all(
                run.count(f'SELECT count("emitted") FROM "_kapacitor"."autogen"."edges" '
                          f"WHERE \"task\" = '{task}' AND \"parent\" =~ /^from/") >= 2
                for task in TASKS if task != "live_share"), 45):  # a batch task: no from()
            pytest.fail(f"Kapacitor statistics never reached InfluxDB:\n{kapacitord.log_tail()}")
        yield run
