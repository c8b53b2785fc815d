"""The watchdog loop outlives every error: each is logged in one line and tried again."""

from __future__ import annotations

import logging

import pytest

from tickml.kapacitor import ERROR_LINE_CHARACTERS, KapacitorClient, error_line, watch_tasks
from tickml.rescore import GapSweeper
from tickml.stack.programs import free_port


def rounds(count: int):
    """A `should_stop` that lets the loop run `count` rounds."""
    calls = iter(range(count + 1))
    return lambda: next(calls) == count


def test_a_sweep_that_raises_is_logged_in_one_line_and_the_loop_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    kapacitor = KapacitorClient(f"http://127.0.0.1:{free_port()}", timeout=1)  # nobody there
    sweeps = []

    def failing_sweep() -> None:
        sweeps.append(1)
        raise KeyError("a\nmulti-line\n  reason")

    with caplog.at_level(logging.WARNING, logger="tickml.kapacitor"):
        watch_tasks([(kapacitor, ["fraud_scoring"])], interval=0.01, should_stop=rounds(3),
                    on_check=failing_sweep)
    kapacitor.close()
    assert len(sweeps) == 3, "every round ran its sweep, whatever failed before"
    messages = [r.getMessage() for r in caplog.records]
    assert sum("checking the tasks failed, will retry: KapacitorError" in m
               for m in messages) == 3
    assert sum("the check's follow-up failed, will retry: KeyError: 'a\\nmulti-line" in m
               for m in messages) == 3
    assert all("\n" not in m and len(m) < ERROR_LINE_CHARACTERS + 80 for m in messages)
    assert not any(r.exc_info for r in caplog.records), "no traceback"


def test_a_failing_gap_sweep_logs_one_line_without_the_lines_influxdb_echoed(
        caplog: pytest.LogCaptureFixture) -> None:
    def rescore_window(start: int, end: int):
        raise RuntimeError('write refused (400): {"error":"unable to parse \'scored,txid= '
                           'V1=0.1\n...\'"}' + "x" * 5000)

    sweeper = GapSweeper(rescore_window, interval=1, grace=0, lookback=60)
    with caplog.at_level(logging.WARNING, logger="tickml.rescore"):
        assert sweeper.maybe_sweep() is None
    [record] = caplog.records
    assert record.getMessage().startswith("gap sweep failed, will retry: RuntimeError: write")
    assert "\n" not in record.getMessage()
    assert len(record.getMessage()) <= ERROR_LINE_CHARACTERS + 40


@pytest.mark.parametrize(("error", "line"), [
    (ValueError("plain"), "ValueError: plain"),
    (OSError("two\nlines\twith  gaps"), "OSError: two lines with gaps"),
    (RuntimeError("x" * 1000), "RuntimeError: " + "x" * (ERROR_LINE_CHARACTERS - 17) + "..."),
])
def test_error_line(error: BaseException, line: str) -> None:
    assert error_line(error) == line
