"""The native stack (`tickml up`) in a throw-away folder on free ports."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tickml import schema
from tickml.config import Settings
from tickml.influx import InfluxClient, influx_for
from tickml.stack.native import NativeStack, throwaway_environment
from tickml.stack.users import StackLogins

from .goroutines import digest, dump_goroutines

ROOT = Path(__file__).resolve().parents[2]


def native_environment(directory: Path, project: Settings) -> dict[str, str]:
    """TICKML_* variables for a stack in `directory`, reusing a prepared project, with a
    quick watchdog and model reload."""
    project = dataclasses.replace(project, kapacitor_scripts=ROOT / "compose" / "kapacitor")
    return {**throwaway_environment(directory, project, StackLogins.generated()),
            "TICKML_WATCHDOG_INTERVAL": "0.5", "TICKML_API_RELOAD_INTERVAL": "0.5"}


@pytest.fixture(scope="module")
def native(small_project: Settings, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[NativeStack]:
    directory = tmp_path_factory.mktemp("native")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in native_environment(directory, small_project).items():
            patch.setenv(key, value)
        stack = NativeStack(Settings.from_env(), generator_rate=40, fraud_share=0.05)
        try:
            stack.up(report=lambda _: None)
            yield stack
        finally:
            stack.down()


def influx_of(stack: NativeStack) -> InfluxClient:
    """A client logged in as tickml's services."""
    return influx_for(stack.service_settings)


def counts(influx: InfluxClient) -> dict[str, int]:
    """Transactions, points in `scored`, and of those the scored and unscored ones."""
    return {
        "transactions": influx.count(schema.TRANSACTIONS, schema.AMOUNT),
        # Every scored point carries the `scored` flag; the features stay in transactions.
        "scored_points": influx.count(schema.SCORED_POINTS, schema.SCORED),
        "scored": influx.count(schema.SCORED_POINTS, schema.PROBABILITY,
                               f'"{schema.SCORED}" = true'),
        "unscored": influx.count(schema.SCORED_POINTS, schema.SCORED,
                                 f'"{schema.SCORED}" = false'),
    }


def wait_until_settled(influx: InfluxClient, timeout: float = 60) -> dict[str, int]:
    """Counts once they stop changing (the pipeline has drained)."""
    previous, stable_since = None, time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = counts(influx)
        if current != previous:
            previous, stable_since = current, time.monotonic()
        elif time.monotonic() - stable_since >= 4:
            return current
        time.sleep(0.5)
    return previous or counts(influx)


#: (test id, digest) of each kapacitord found stuck, printed at the end of the run.
STUCK_KAPACITORDS: list[tuple[str, list[str]]] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """When kapacitord stops answering in a test, add its goroutine dump to the report."""
    outcome = yield
    report = outcome.get_result()
    stack = getattr(item, "funcargs", {}).get("native")
    if not (report.failed and isinstance(stack, NativeStack)
            and "Read timed out" in str(report.longrepr)):
        return
    dump = dump_goroutines(stack)
    report.sections.append(("kapacitord goroutines (SIGQUIT)", dump))
    STUCK_KAPACITORDS.append((item.nodeid, digest(dump)))


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The digests last, where a CI log that shows only its tail still has them."""
    for test_id, lines in STUCK_KAPACITORDS:
        terminalreporter.write_line(f"kapacitord stopped answering in {test_id}; goroutines:")
        for line in lines:
            terminalreporter.write_line(f"  {line}")
