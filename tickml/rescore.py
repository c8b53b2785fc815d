"""`tickml rescore`: fill the gaps an outage left between `transactions` and `scored`.

A transaction counts as done when `scored` holds a point at the same time and
with the same tags whose `scored` field is true. Every other transaction in the
range is scored through the model API and written to `scored` at its own
timestamp, which replaces an earlier unscored point instead of adding one. The
point carries what the agent's points carry (`schema.scored_transaction_fields`: the
id and the label, not the features), the score fields and `rescored`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tickml import schema
from tickml.config import Settings
from tickml.influx import InfluxClient, WriteRefused, influx_for, to_line
from tickml.kapacitor import KapacitorError, error_line, kapacitor_for, scoring_threshold
from tickml.udf.client import PredictClient, Score, Unscored, score_rows

log = logging.getLogger(__name__)
#: A watchdog that starts (or restarts) first sweeps this far back, in seconds.
SWEEP_LOOKBACK_SECONDS = 600
DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class RescoreReport:
    transactions: int
    already_scored: int
    rescored: int
    unscorable: int  # a feature is missing or not a number: marked, cannot be scored
    failed: int  # the API could not score them this time
    # InfluxDB would not store their scored point (a tag line protocol cannot carry,
    # a field type conflict): logged, not retried
    unwritable: int = 0


@dataclass(frozen=True)
class Transaction:
    time: int
    tags: dict[str, str]
    fields: dict[str, Any]


def find_unscored(
    influx: InfluxClient, start_ns: int, end_ns: int
) -> tuple[list[Transaction], int]:
    """Transactions in [start, end) without a scored counterpart, and how many had one."""
    window = f"time >= {start_ns} AND time < {end_ns}"
    done = set()
    scored_query = (f'SELECT "{schema.SCORED}" FROM "{schema.SCORED_POINTS}" '
                    f"WHERE {window} GROUP BY *")
    for series in influx.query(scored_query):
        key = _series_key(series.tags)
        done.update((key, row[0]) for row in series.values if row[1] is True)
    missing, total = [], 0
    transactions_query = f'SELECT * FROM "{schema.TRANSACTIONS}" WHERE {window} GROUP BY *'
    for series in influx.query(transactions_query):
        key = _series_key(series.tags)
        for record in series.records():
            total += 1
            if (key, record["time"]) not in done:
                missing.append(Transaction(record.pop("time"), dict(key), record))
    return missing, total - len(missing)


def _series_key(tags: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The tags a series really has: `GROUP BY *` names every tag key of the measurement,
    with "" where the series lacks it, and the two measurements may know different keys."""
    return tuple(sorted((key, value) for key, value in tags.items() if value))


def rescore(
    influx: InfluxClient,
    api: PredictClient,
    start_ns: int,
    end_ns: int,
    batch_size: int = 500,
    threshold: float | None = None,
) -> RescoreReport:
    """Score every transaction in [start, end) that has no scored point yet.

    Args:
        threshold: the verdict's cut-off, as the scoring task gives the agent; None
            keeps the model's own.
    """
    missing, already = find_unscored(influx, start_ns, end_ns)
    rescored = unscorable = failed = unwritable = 0
    for batch in _batches(missing, batch_size):
        rows = [_features_or_reason(tx) for tx in batch]
        lines, scored = [], []
        for tx, outcome in zip(batch, score_rows(api, rows, threshold), strict=True):
            if isinstance(outcome, Unscored) and outcome.api_error:
                failed += 1
                continue
            # The same time and tags replace an earlier unscored point field by field:
            # a score clears the reason it carries.
            results = {**outcome.fields(), schema.REASON: ""} \
                if isinstance(outcome, Score) else outcome.fields()
            line = _line(tx, results)
            if line is None:
                unwritable += 1
                continue
            lines.append(line)
            scored.append(isinstance(outcome, Score))
        refused = write_each_line(influx, lines)
        unwritable += len(refused)
        stored = [ok for i, ok in enumerate(scored) if i not in refused]
        rescored += sum(stored)
        unscorable += len(stored) - sum(stored)
    return RescoreReport(already + len(missing), already, rescored, unscorable, failed,
                         unwritable)


def write_each_line(influx: InfluxClient, lines: list[str]) -> set[int]:
    """Write `lines` in one request; when InfluxDB refuses some, find them one by one.

    Returns:
        The positions of the lines InfluxDB refused (logged in one line); the others
        are stored.
    """
    try:
        influx.write_lines(lines)
        return set()
    except WriteRefused as exc:
        first = exc
    refused = set()
    for i, line in enumerate(lines):
        try:
            influx.write_lines([line])
        except WriteRefused:
            refused.add(i)
    log.warning("rescore: InfluxDB refused %d of %d points: %s", len(refused), len(lines),
                error_line(first))
    return refused


def _features_or_reason(tx: Transaction) -> list[float] | str:
    features, reason = schema.features_from_fields(tx.fields.get)
    return reason if reason is not None else features


def _line(tx: Transaction, results: dict[str, Any]) -> str | None:
    """The scored point in line protocol, or None (logged) when line protocol cannot carry it."""
    own = schema.scored_transaction_fields(tx.fields.get)
    try:
        return to_line(schema.SCORED_POINTS, {**own, **results, schema.RESCORED: True},
                       tx.time, tx.tags)
    except ValueError as exc:
        log.warning("rescore: transaction at %d cannot be written: %s", tx.time, exc)
        return None


def _batches(items: list[Transaction], size: int) -> Iterator[list[Transaction]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def rescore_range(settings: Settings, start_ns: int, end_ns: int) -> RescoreReport:
    """`rescore` against the settings' services, with the scoring task's threshold."""
    threshold = task_threshold(settings)
    influx = influx_for(settings)
    api = PredictClient(settings.score_url, timeout=10.0, retry_for=30.0,
                        resolve_interval=settings.api_resolve_interval)
    try:
        return rescore(influx, api, start_ns, end_ns, threshold=threshold)
    finally:
        influx.close()
        api.close()


def task_threshold(settings: Settings) -> float | None:
    """The `.threshold()` the running scoring task gives the agent, None for the model's.

    Kapacitor may be the very service that was down: then the model's threshold is
    used, with a warning.
    """
    kapacitor = kapacitor_for(settings)
    try:
        return scoring_threshold(kapacitor)
    except (KapacitorError, ValueError) as exc:
        log.warning("rescore: using the model's threshold, the task's is unknown: %s", exc)
        return None
    finally:
        kapacitor.close()


def parse_duration(text: str) -> float:
    """Seconds in a duration such as '90s', '15m', '2h' or '1d'.

    Raises:
        ValueError: the text is not such a duration.
    """
    match = DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 2h or 1d")
    return float(match.group(1)) * UNIT_SECONDS[match.group(2)]


def to_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch; a moment without an offset is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1e9)


class GapSweeper:
    """Rescores, now and then, the recent transactions that still lack a scored point.

    Whatever left the gap (InfluxDB restarting while Kapacitor wrote scores, the
    agent or the API down, a task restarted), each sweep scores the transactions
    between the previous sweep and `grace` seconds ago; the grace lets points still
    in the pipeline arrive. A failed sweep is logged and retried from the same place.
    """

    def __init__(
        self,
        rescore_window: Callable[[int, int], RescoreReport],
        interval: float,
        grace: float,
        lookback: float = SWEEP_LOOKBACK_SECONDS,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.rescore_window = rescore_window
        self.interval_ns = int(interval * 1e9)
        self.grace_ns = int(grace * 1e9)
        self.clock = clock
        now = clock()
        self.cursor_ns = now - int(lookback * 1e9)  # the next sweep starts here
        self.next_sweep_ns = now

    def sweep_soon(self) -> None:
        """Sweep once the grace has passed from now (after a restart left a gap)."""
        self.next_sweep_ns = min(self.next_sweep_ns, self.clock() + self.grace_ns)

    def maybe_sweep(self) -> RescoreReport | None:
        """Sweep when one is due; return its report, or None when none ran or it failed."""
        now = self.clock()
        if now < self.next_sweep_ns:
            return None
        self.next_sweep_ns = now + self.interval_ns
        end = now - self.grace_ns
        if end <= self.cursor_ns:
            return None
        try:
            report = self.rescore_window(self.cursor_ns, end)
        except Exception as exc:  # the watchdog must outlive any failed sweep
            log.warning("gap sweep failed, will retry: %s", error_line(exc))
            return None
        if report.failed == 0:
            self.cursor_ns = end
        if report.rescored or report.unscorable or report.failed or report.unwritable:
            log.info("gap sweep: %s", report)
        return report
