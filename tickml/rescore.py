"""`tickml rescore`: fill the gaps an outage left between `transactions` and `scored`.

A transaction counts as done when `scored` holds a point at the same time and
with the same tags whose `scored` field is true. Every other transaction in the
range is scored through the model API and written to `scored` at its own
timestamp, which replaces an earlier unscored point instead of adding one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tickml import schema
from tickml.config import Settings
from tickml.influx import InfluxClient, influx_for, to_line
from tickml.udf import points
from tickml.udf.client import PredictClient, ScoringRejected, ScoringUnavailable

log = logging.getLogger(__name__)
SOURCE = "transactions"
TARGET = "scored"
RESCORED = "rescored"  # true on points written by rescore (their latency means nothing)
DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


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


def rescore_range(settings: Settings, start_ns: int, end_ns: int) -> RescoreReport:
    """`rescore` against the settings' InfluxDB and model API, with generous retries."""
    influx = influx_for(settings)
    api = PredictClient(settings.api_url, timeout=10.0, retry_for=30.0)
    try:
        return rescore(influx, api, start_ns, end_ns)
    finally:
        influx.close()
        api.close()


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
