"""The watchdog's gap sweep: which windows it rescores, and that no failure stops it."""

from __future__ import annotations

import pytest

from tickml.rescore import GapSweeper, RescoreReport

SECOND = 10**9


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def report(failed: int = 0) -> RescoreReport:
    return RescoreReport(transactions=5, already_scored=5 - failed, rescored=0, unscorable=0,
                         failed=failed)


def sweeper_with(outcomes: list, clock: Clock) -> tuple[GapSweeper, list[tuple[int, int]]]:
    windows: list[tuple[int, int]] = []

    def rescore_window(start: int, end: int) -> RescoreReport:
        windows.append((start, end))
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return GapSweeper(rescore_window, interval=30, grace=15, lookback=600, clock=clock), windows


def test_sweeps_follow_each_other_without_gaps_or_overlap() -> None:
    clock = Clock(1_000 * SECOND)
    sweeper, windows = sweeper_with([report(), report()], clock)
    assert sweeper.maybe_sweep() is not None
    clock.now += 10 * SECOND
    assert sweeper.maybe_sweep() is None, "not due before the interval"
    clock.now += 20 * SECOND
    assert sweeper.maybe_sweep() is not None
    assert windows == [(400 * SECOND, 985 * SECOND), (985 * SECOND, 1_015 * SECOND)]


@pytest.mark.parametrize("failure", [RuntimeError("InfluxDB unreachable"), report(failed=3)])
def test_a_failed_sweep_is_retried_from_the_same_start(failure) -> None:
    clock = Clock(1_000 * SECOND)
    sweeper, windows = sweeper_with([failure, report()], clock)
    sweeper.maybe_sweep()  # raises nothing, whatever went wrong
    clock.now += 30 * SECOND
    sweeper.maybe_sweep()
    assert [start for start, _ in windows] == [400 * SECOND, 400 * SECOND]
    assert windows[1][1] == 1_015 * SECOND


def test_after_a_restart_the_sweep_comes_once_the_grace_has_passed() -> None:
    clock = Clock(1_000 * SECOND)
    sweeper, windows = sweeper_with([report(), report()], clock)
    sweeper.maybe_sweep()
    clock.now += 2 * SECOND  # the scoring task was restarted now
    sweeper.sweep_soon()
    clock.now += 14 * SECOND
    assert sweeper.maybe_sweep() is None, "points of the restart may still be in flight"
    clock.now += 1 * SECOND
    assert sweeper.maybe_sweep() is not None, "not 30 s later, at the next regular sweep"
    assert windows[1] == (985 * SECOND, 1_002 * SECOND), "up to the restart, and no further"
