"""A real stream: influxd → kapacitord → `tickml udf` → `tickml serve`, and back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pandas as pd
import pytest

from tests.polling import wait_until
from tickml import schema
from tickml.config import Settings
from tickml.data.prepare import load_split
from tickml.generator import transaction_lines
from tickml.registry import ModelRegistry
from tickml.stack.services import LocalPipeline, local_pipeline


@dataclass
class StreamStack:
    """A running pipeline, and helpers to feed and read the stream.

    `v2_path` is the path of the API's V2 endpoint for the served model, which a
    task's `.url()` may name (it is in the agent's TICKML_UDF_ALLOWED_URLS).
    """

    pipeline: LocalPipeline
    test_rows: pd.DataFrame
    v2_path: str

    def __getattr__(self, name: str):
        return getattr(self.pipeline, name)  # influx, kapacitor, api, agent, restart_api, ...

    def write(self, run: str, rows: pd.DataFrame) -> int:
        """Write `rows` as transactions tagged `run=<run>`; return how many."""
        lines = transaction_lines(rows, time.time_ns(), tags={"run": run}, spacing_ns=1000)
        self.pipeline.influx.write_lines(lines)
        return len(lines)

    def scored(self, run: str) -> pd.DataFrame:
        records = self.pipeline.influx.records(
            f"SELECT * FROM \"{schema.SCORED_POINTS}\" WHERE \"run\" = '{run}'")
        return pd.DataFrame.from_records(records)

    def wait_for_scored(self, run: str, expected: int, timeout: float = 60) -> pd.DataFrame:
        """Poll `scored` until `expected` points of this run arrived (or time runs out)."""
        wait_until(lambda: len(self.scored(run)) >= expected, timeout)
        return self.scored(run)

    def wait_task_executing(self, task_id: str = "fraud_scoring", timeout: float = 30) -> bool:
        def healthy() -> bool:
            state = self.pipeline.kapacitor.task(task_id)
            return state is not None and state.healthy

        return wait_until(healthy, timeout, interval=0.2)


@pytest.fixture(scope="module")
def stream(small_project: Settings, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[StreamStack]:
    # Give up on an unreachable API after 1s, so outage tests run quickly.
    quick_retries = {"fraud_scoring": {"retry_for": timedelta(seconds=1)}}
    v2_path = f"/v2/models/{ModelRegistry(small_project.models_dir).production().name}/infer"
    with local_pipeline(small_project, tmp_path_factory.mktemp("stream"),
                        task_overrides=quick_retries, allowed_api_paths=[v2_path]) as pipeline:
        stack = StreamStack(pipeline, load_split(small_project, "test"), v2_path)
        assert stack.wait_task_executing("fraud_scoring"), pipeline.kapacitord.log_tail()
        yield stack
