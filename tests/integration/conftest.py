"""A real stream: influxd → kapacitord → `tickml udf` → `tickml serve`, and back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tickml.config import Settings
from tickml.data.prepare import load_split
from tickml.generator import transaction_lines
from tickml.influx import InfluxClient
from tickml.kapacitor import KapacitorClient, define_tasks, read_scripts, task_vars
from tickml.stack.process import Service
from tickml.stack.services import (
    influx_client,
    short_socket_path,
    start_agent,
    start_api,
    start_influxd,
    start_kapacitord,
)

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "compose" / "kapacitor"


@dataclass
class StreamStack:
    """Handles on every running piece, and helpers to feed and read the stream."""

    settings: Settings
    directory: Path
    influx: InfluxClient
    kapacitor: KapacitorClient
    influxd: Service
    kapacitord: Service
    api: Service
    agent: Service
    socket_path: Path
    test_rows: pd.DataFrame

    def write(self, run: str, rows: pd.DataFrame) -> int:
        """Write `rows` as transactions tagged `run=<run>`; return how many."""
        lines = transaction_lines(rows, time.time_ns(), tags={"run": run}, spacing_ns=1000)
        self.influx.write_lines(lines)
        return len(lines)

    def scored(self, run: str) -> pd.DataFrame:
        records = self.influx.records(f"SELECT * FROM scored WHERE \"run\" = '{run}'")
        return pd.DataFrame.from_records(records)

    def wait_for_scored(self, run: str, expected: int, timeout: float = 60) -> pd.DataFrame:
        """Poll `scored` until `expected` points of this run arrived (or time runs out)."""
        deadline = time.monotonic() + timeout
        frame = pd.DataFrame()
        while time.monotonic() < deadline:
            frame = self.scored(run)
            if len(frame) >= expected:
                return frame
            time.sleep(0.5)
        return frame

    def restart_api(self) -> None:
        port = int(self.api.url.rsplit(":", 1)[1])
        self.api = start_api(self.settings, self.directory, port)

    def restart_agent(self) -> None:
        self.agent = start_agent(self.settings, self.directory, self.socket_path, self.api.url)

    def wait_task_executing(self, task_id: str = "fraud_scoring", timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.kapacitor.task(task_id)
            if state is not None and state.healthy:
                return True
            time.sleep(0.2)
        return False


@pytest.fixture(scope="module")
def stream(small_project: Settings, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[StreamStack]:
    directory = tmp_path_factory.mktemp("stream")
    services: list[Service] = []
    try:
        influxd, influx_config = start_influxd(directory)
        services.append(influxd)
        influx = influx_client(influx_config)
        influx.create_database()  # before kapacitord, so it subscribes at startup
        api = start_api(small_project, directory)
        services.append(api)
        socket_path = short_socket_path(directory)
        agent = start_agent(small_project, directory, socket_path, api.url)
        services.append(agent)
        kapacitord, kapacitor_config = start_kapacitord(directory, influx_config.url,
                                                        socket_path)
        services.append(kapacitord)
        kapacitor = KapacitorClient(kapacitor_config.url)
        define_tasks(kapacitor, read_scripts(SCRIPTS), {
            # Give up on an unreachable API after 1s, so outage tests run quickly.
            "fraud_scoring": {"retry_for": {"type": "duration", "value": "1s"}},
            "fraud_alerts": task_vars({"alert_log": str(directory / "alerts.log")}),
        })
        stack = StreamStack(small_project, directory, influx, kapacitor, influxd, kapacitord,
                            api, agent, socket_path, load_split(small_project, "test"))
        assert stack.wait_task_executing("fraud_scoring"), kapacitord.log_tail()
        yield stack
        services = [stack.kapacitord, stack.agent, stack.api, stack.influxd]
    finally:
        for service in reversed(services):
            service.stop()
