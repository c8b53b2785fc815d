"""Did the stream itself score again after a fault, and how soon? Shared by every fault test.

"Nothing lost" is not enough: the watchdog's sweep scores what the stream missed, late,
and marks it `rescored`. After a fault the stream must score again by itself: from some
transaction on, every one has a scored point without `rescored`. The time from the fault
to that transaction is the recovery time; each test's is printed at the end of the run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.polling import wait_until
from tickml import schema
from tickml.bench.soak import transaction_outcomes
from tickml.influx import InfluxClient

#: Seconds a transaction may still be on its way through the stream.
IN_FLIGHT_SECONDS = 5
#: (test, fault, seconds to live scoring) of every recovery measured, printed at the end.
RECOVERIES: list[tuple[str, str, float]] = []
#: Seconds the watchdog's sweep may take to score what the stream lost at a fault.
SWEEP_SECONDS = 90


@dataclass(frozen=True)
class Recovery:
    """How the transactions written from a fault on were scored."""

    fault_ns: int
    outcomes: tuple[str, ...]  # per transaction, in time order: live, swept, unscored, missing
    first_live_ns: int | None  # from this transaction on, every one was scored live

    @property
    def seconds(self) -> float | None:
        """Seconds from the fault to the first of the transactions scored live since."""
        return None if self.first_live_ns is None else (self.first_live_ns - self.fault_ns) / 1e9

    @property
    def live_tail(self) -> int:
        """Transactions at the end, all scored live (the stream's own since recovery)."""
        tail = 0
        for outcome in reversed(self.outcomes):
            if outcome != "live":
                break
            tail += 1
        return tail

    def summary(self) -> str:
        counts = {name: self.outcomes.count(name) for name in sorted(set(self.outcomes))}
        return f"{len(self.outcomes)} transactions since the fault: {counts}"


def outcomes_since(influx: InfluxClient, start_ns: int, end_ns: int) -> list[tuple[int, str]]:
    """(time, outcome) of every transaction in [start, end), in time order, by transaction id."""
    window = f"time >= {start_ns} AND time < {end_ns}"
    scored = {}
    for row in influx.records(f'SELECT "{schema.TRANSACTION_ID}", "{schema.SCORED}", '
                              f'"{schema.RESCORED}" FROM "{schema.SCORED_POINTS}" '
                              f"WHERE {window}"):
        if row[schema.SCORED] is not True:
            outcome = "unscored"
        else:
            outcome = "swept" if row.get(schema.RESCORED) else "live"
        scored[row[schema.TRANSACTION_ID]] = outcome
    rows = influx.records(f'SELECT "{schema.TRANSACTION_ID}" FROM "{schema.TRANSACTIONS}" '
                          f"WHERE {window}")
    return sorted((row["time"], scored.get(row[schema.TRANSACTION_ID], "missing"))
                  for row in rows)


def recovery_since(influx: InfluxClient, fault_ns: int, end_ns: int | None = None) -> Recovery:
    """How the stream scored the transactions written from `fault_ns` on (in-flight ones aside)."""
    end_ns = end_ns or time.time_ns() - IN_FLIGHT_SECONDS * 1_000_000_000
    rows = outcomes_since(influx, fault_ns, end_ns)
    outcomes = tuple(outcome for _, outcome in rows)
    recovery = Recovery(fault_ns, outcomes, None)
    tail = recovery.live_tail
    first = rows[len(rows) - tail][0] if tail else None
    return Recovery(fault_ns, outcomes, first)


def assert_live_again(influx: InfluxClient, fault_ns: int, test: str, fault: str,
                      min_live: int = 20, timeout: float = 120) -> Recovery:
    """Wait until the stream scores live again after the fault, and record how long it took.

    Passes once the last `min_live` or more transactions written since the fault were all
    scored by the stream (no `rescored`): the sweep scoring them does not count.
    """
    deadline = time.monotonic() + timeout
    recovery = recovery_since(influx, fault_ns)
    while recovery.live_tail < min_live and time.monotonic() < deadline:
        time.sleep(2)
        recovery = recovery_since(influx, fault_ns)
    assert recovery.live_tail >= min_live, (
        f"the stream does not score live again after {fault}: {recovery.summary()}, "
        f"the last {recovery.live_tail} scored live")
    RECOVERIES.append((test, fault, recovery.seconds))
    return recovery


def alerted_transactions(alert_log: Path) -> list[str]:
    """The transaction id of every alert fraud_alerts logged, in order, repeats kept."""
    if not alert_log.is_file():
        return []
    ids = []
    for line in alert_log.read_text().splitlines():
        alert = json.loads(line) if line.strip() else {}
        if alert.get("id") != "fraud_alerts":  # the live share's alerts share the log
            continue
        for series in alert["data"]["series"]:
            column = series["columns"].index(schema.TRANSACTION_ID)
            ids.extend(row[column] for row in series["values"])
    return ids


def alerted_in_influx(alerts: InfluxClient, start_ns: int) -> list[str]:
    """The transaction id of every alert fraud_alerts wrote to Chronograf's alert history
    (`alerts` must be a client of database `chronograf`) for transactions since `start_ns`."""
    return [row[schema.TRANSACTION_ID] for row in alerts.records(
        f'SELECT "{schema.TRANSACTION_ID}" FROM "{schema.ALERTS}" WHERE time >= {start_ns}')]


def flagged_live(influx: InfluxClient, start_ns: int) -> set[str]:
    """Transactions the stream itself flagged as fraud since `start_ns`."""
    rows = influx.records(f'SELECT "{schema.TRANSACTION_ID}", "{schema.RESCORED}" FROM '
                          f'"{schema.SCORED_POINTS}" WHERE "{schema.VERDICT}" = 1 '
                          f"AND time >= {start_ns}")
    return {row[schema.TRANSACTION_ID] for row in rows if not row[schema.RESCORED]}


def assert_flagged_are_alerted_once(influx: InfluxClient, alerted: Callable[[], list[str]],
                                    start_ns: int) -> set[str]:
    """Every transaction the stream flagged since `start_ns` (one at least) raised one alert."""
    assert wait_until(lambda: flagged_live(influx, start_ns), timeout=60), \
        "the stream flags a fraud"
    flagged = flagged_live(influx, start_ns)
    wait_until(lambda: set(alerted()) >= flagged, timeout=30)
    alerts = alerted()
    missing = flagged - set(alerts)
    assert not missing, f"{len(missing)} of {len(flagged)} flagged transactions raised no alert"
    doubled = {tx for tx in flagged if alerts.count(tx) > 1}
    assert not doubled, f"{len(doubled)} flagged transactions raised more than one alert"
    return flagged


def exactly_once(influx: InfluxClient, start_ns: int, end_ns: int) -> dict[str, int]:
    """How the transactions stamped in [start, end) were scored: how many, how many have no
    scored point, more than one, or one that failed."""
    outcomes = transaction_outcomes(influx, start_ns, end_ns)
    return {"transactions": len(outcomes),
            "missing": sum(o.points == 0 for o in outcomes),
            "twice": sum(o.points > 1 for o in outcomes),
            "unscored": sum(o.points == 1 and not o.scored for o in outcomes)}


def settled(influx: InfluxClient, start_ns: int, end_ns: int) -> dict[str, int]:
    """The accounting once the sweep has had its turn: what a fault's instant loses in
    flight only the sweep gets back, up to half a minute later."""
    wait_until(lambda: exactly_once(influx, start_ns, end_ns)["missing"] == 0,
               timeout=SWEEP_SECONDS, interval=3)
    return exactly_once(influx, start_ns, end_ns)
