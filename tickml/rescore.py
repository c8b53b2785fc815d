"""`tickml rescore`: fill the gaps an outage left between `transactions` and `scored`.

A transaction counts as done when `scored` holds a point at the same time and
with the same tags whose `scored` field is true. Every other transaction in the
range is scored through the model API and written to `scored` at its own
timestamp, which replaces an earlier unscored point instead of adding one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tickml import schema
from tickml.influx import InfluxClient, to_line
from tickml.udf import points
from tickml.udf.client import PredictClient, ScoringRejected, ScoringUnavailable

log = logging.getLogger(__name__)
SOURCE = "transactions"
TARGET = "scored"
RESCORED = "rescored"  # true on points written by rescore (their latency means nothing)


@dataclass(frozen=True)
class RescoreReport:
    transactions: int
    already_scored: int
    rescored: int
    unscorable: int  # a feature is missing or not a number: marked, cannot be scored
    failed: int  # the API could not score them this time


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
    scored_query = f'SELECT "{points.SCORED}" FROM "{TARGET}" WHERE {window} GROUP BY *'
    for series in influx.query(scored_query):
        key = tuple(sorted(series.tags.items()))
        done.update((key, row[0]) for row in series.values if row[1] is True)
    missing, total = [], 0
    for series in influx.query(f'SELECT * FROM "{SOURCE}" WHERE {window} GROUP BY *'):
        key = tuple(sorted(series.tags.items()))
        for record in series.records():
            total += 1
            if (key, record["time"]) not in done:
                missing.append(Transaction(record.pop("time"), dict(series.tags), record))
    return missing, total - len(missing)


def rescore(
    influx: InfluxClient,
    api: PredictClient,
    start_ns: int,
    end_ns: int,
    batch_size: int = 500,
) -> RescoreReport:
    """Score every transaction in [start, end) that has no scored point yet."""
    missing, already = find_unscored(influx, start_ns, end_ns)
    rescored = unscorable = failed = 0
    for batch in _batches(missing, batch_size):
        rows, scorable, lines = [], [], []
        for tx in batch:
            features, reason = points.features_from_fields(tx.fields.get)
            if reason is None:
                rows.append(features)
                scorable.append(tx)
            else:
                unscorable += 1
                lines.append(_line(tx, {points.SCORED: False, points.REASON: reason}))
        if rows:
            try:
                predictions = api.predict(rows)
            except (ScoringUnavailable, ScoringRejected) as exc:
                log.error("rescore: %d transactions not scored: %s", len(rows), exc)
                failed += len(rows)
            else:
                for tx, probability, verdict in zip(scorable, predictions.probabilities,
                                                    predictions.verdicts, strict=True):
                    lines.append(_line(tx, {
                        points.PROBABILITY: probability, points.VERDICT: int(verdict),
                        points.MODEL: predictions.model,
                        points.MODEL_VERSION: predictions.version,
                        points.SCORED: True, points.REASON: "",
                    }))
                rescored += len(rows)
        influx.write_lines(lines)
    return RescoreReport(already + len(missing), already, rescored, unscorable, failed)


def _line(tx: Transaction, results: dict[str, Any]) -> str:
    return to_line(TARGET, {**_typed_fields(tx.fields), **results, RESCORED: True},
                   tx.time, tx.tags)


def _typed_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The transaction's own fields with the types the generator wrote.

    InfluxDB's JSON answers 1.0 as 1; written back as an integer it would clash
    with the float field already stored, so the schema decides the types.
    """
    typed: dict[str, Any] = {}
    for name in schema.FEATURES:
        value = fields.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            typed[name] = float(value)
    if isinstance(fields.get(schema.LABEL), int | float):
        typed[schema.LABEL] = int(fields[schema.LABEL])
    if fields.get(schema.TRANSACTION_ID) is not None:
        typed[schema.TRANSACTION_ID] = str(fields[schema.TRANSACTION_ID])
    return typed


def _batches(items: list[Transaction], size: int) -> Iterator[list[Transaction]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


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
        lookback: float,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.rescore_window = rescore_window
        self.interval_ns = int(interval * 1e9)
        self.grace_ns = int(grace * 1e9)
        self.clock = clock
        now = clock()
        self.cursor_ns = now - int(lookback * 1e9)  # the next sweep starts here
        self.next_sweep_ns = now

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
            log.warning("gap sweep failed, will retry: %s", exc)
            return None
        if report.failed == 0:
            self.cursor_ns = end
        if report.rescored or report.unscorable or report.failed:
            log.info("gap sweep: %s", report)
        return report
