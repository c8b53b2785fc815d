"""The mock transaction publisher: test-split rows stamped with the current time.

Each point goes to measurement `transactions` with the schema's features as float
fields, the ground-truth `Class` as an integer field (so dashboards can compare
verdicts with the truth) and a unique `transaction_id`.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tickml import schema
from tickml.influx import DatabaseNotFound, InfluxClient, InfluxError, escape_key, line_head

log = logging.getLogger(__name__)
WRITE_CHUNK = 5_000
MAX_BACKOFF = 10.0
#: How long a stopping generator keeps trying to send its buffer: less than the
#: grace period supervisord (20 s) and compose (30 s here) allow before SIGKILL.
DRAIN_SECONDS = 15.0


def transaction_lines(
    rows: pd.DataFrame,
    start_ns: int,
    tags: dict[str, str] | None = None,
    spacing_ns: int = 1,
) -> list[str]:
    """Line-protocol points for `rows`, the i-th stamped `start_ns + i * spacing_ns`.

    Distinct timestamps matter: InfluxDB keys a point by series and time, so two
    transactions at the same nanosecond would overwrite each other.
    """
    features = rows.loc[:, list(schema.FEATURES)].to_numpy(dtype=np.float64)
    if not np.isfinite(features).all():
        raise ValueError("line protocol cannot carry NaN or infinite feature values")
    labels = rows[schema.LABEL].to_numpy(dtype=np.int64).tolist()
    source_ids = (rows["id"].to_numpy(dtype=np.int64) if "id" in rows
                  else np.arange(len(rows))).tolist()
    # The same measurement, tags and field keys on every line: format them once.
    head = line_head(schema.TRANSACTIONS, tags) + " "
    keys = [f"{escape_key(name)}=" for name in schema.FEATURES]
    label_key = f",{escape_key(schema.LABEL)}="
    id_key = f",{escape_key(schema.TRANSACTION_ID)}=\"tx-"
    lines = []
    for i, values in enumerate(features.tolist()):
        time_ns = start_ns + i * spacing_ns
        numbers = ",".join([key + repr(value) for key, value in zip(keys, values, strict=True)])
        lines.append(f"{head}{numbers}{label_key}{labels[i]}i{id_key}"
                     f"{source_ids[i]}-{time_ns}\" {time_ns}")
    return lines


@dataclass(frozen=True)
class PublishOptions:
    """How fast, how long and with how many frauds the generator publishes."""

    rate: float = 5.0  # transactions per second
    count: int | None = None  # stop after this many (None: no limit)
    duration: float | None = None  # stop after this many seconds (None: no limit)
    fraud_share: float | None = None  # share of frauds drawn; None keeps the split's share
    flush_interval: float = 0.5  # seconds between writes
    buffer_limit: int = 100_000  # points kept while InfluxDB is unreachable
    report_interval: float = 10.0  # seconds between rate reports in the log
    seed: int = 42
    tags: dict[str, str] = field(default_factory=lambda: {"source": "generator"})


@dataclass
class PublishReport:
    generated: int = 0
    written: int = 0
    dropped: int = 0
    write_failures: int = 0


class TransactionSampler:
    """Draws rows from the test split, optionally with a raised share of frauds."""

    def __init__(self, rows: pd.DataFrame, fraud_share: float | None, seed: int) -> None:
        if fraud_share is not None and not 0 <= fraud_share <= 1:
            raise ValueError(f"fraud_share must lie between 0 and 1, got {fraud_share}")
        self.rows = rows.reset_index(drop=True)
        self.fraud_share = fraud_share
        self.rng = np.random.default_rng(seed)
        labels = self.rows[schema.LABEL].to_numpy()
        self.frauds = np.flatnonzero(labels == 1)
        self.legit = np.flatnonzero(labels == 0)

    def draw(self, n: int) -> pd.DataFrame:
        if self.fraud_share is None or not len(self.frauds) or not len(self.legit):
            return self.rows.iloc[self.rng.integers(0, len(self.rows), n)]
        is_fraud = self.rng.uniform(size=n) < self.fraud_share
        picks = np.where(is_fraud, self.rng.choice(self.frauds, n),
                         self.rng.choice(self.legit, n))
        return self.rows.iloc[picks]


class Publisher:
    """Publishes sampled transactions at a steady rate, buffering through outages.

    When InfluxDB cannot be reached the points stay in a bounded buffer (the oldest
    are dropped, and counted, if it ever fills) and are sent when it is back.
    """

    def __init__(self, influx: InfluxClient, rows: pd.DataFrame, options: PublishOptions) -> None:
        if options.rate <= 0:
            raise ValueError(f"rate must be positive, got {options.rate}")
        self.influx = influx
        self.options = options
        self.sampler = TransactionSampler(rows, options.fraud_share, options.seed)
        self.buffer: deque[str] = deque()
        self.report = PublishReport()
        self._last_ns = 0
        self._retry_at = 0.0
        self._backoff = 0.5
        self._failing = False

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> PublishReport:
        """Publish until the count or duration is reached or `should_stop()` is true."""
        started = time.monotonic()
        last_report, reported = started, 0
        while not should_stop() and not self._done(time.monotonic() - started):
            due = self._due(time.monotonic() - started)
            self._generate(due)
            self._try_flush()
            now = time.monotonic()
            if now - last_report >= self.options.report_interval:
                rate = (self.report.generated - reported) / (now - last_report)
                log.info("published %.1f transactions/s (%d in all, %d buffered, %d dropped)",
                         rate, self.report.generated, len(self.buffer), self.report.dropped)
                last_report, reported = now, self.report.generated
            time.sleep(self.options.flush_interval)
        self._drain(deadline=time.monotonic() + DRAIN_SECONDS)
        return self.report

    def _done(self, elapsed: float) -> bool:
        o = self.options
        return (o.count is not None and self.report.generated >= o.count) or \
            (o.duration is not None and elapsed >= o.duration)

    def _due(self, elapsed: float) -> int:
        due = int(elapsed * self.options.rate) + 1 - self.report.generated
        if self.options.count is not None:
            due = min(due, self.options.count - self.report.generated)
        return max(due, 0)

    def _generate(self, n: int) -> None:
        if n == 0:
            return
        start = max(time.time_ns(), self._last_ns + 1)
        lines = transaction_lines(self.sampler.draw(n), start, self.options.tags)
        self._last_ns = start + n - 1
        self.report.generated += n
        self.buffer.extend(lines)
        overflow = len(self.buffer) - self.options.buffer_limit
        if overflow > 0:
            for _ in range(overflow):
                self.buffer.popleft()
            self.report.dropped += overflow
            log.error("buffer full: dropped the %d oldest points (%d dropped in all)",
                      overflow, self.report.dropped)

    def _try_flush(self) -> None:
        if not self.buffer or time.monotonic() < self._retry_at:
            return
        try:
            while self.buffer:
                chunk = [self.buffer[i] for i in range(min(WRITE_CHUNK, len(self.buffer)))]
                self.influx.write_lines(chunk)
                for _ in chunk:
                    self.buffer.popleft()
                self.report.written += len(chunk)
        except DatabaseNotFound:
            self._create_database()
            return
        except InfluxError as exc:
            self.report.write_failures += 1
            self._retry_at = time.monotonic() + self._backoff
            log.warning("InfluxDB write failed (%s); keeping %d points, retrying in %.1fs",
                        exc, len(self.buffer), self._backoff)
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)
            self._failing = True
            return
        if self._failing:
            log.info("InfluxDB is back: buffered points sent")
        self._failing = False
        self._backoff = 0.5

    def _create_database(self) -> None:
        """tickml owns its database: create it, as on a fresh InfluxDB, and retry soon."""
        log.info("creating database %r", self.influx.database)
        try:
            self.influx.create_database()
        except InfluxError as exc:
            log.warning("could not create database %r: %s", self.influx.database, exc)
            self._retry_at = time.monotonic() + self._backoff

    def _drain(self, deadline: float) -> None:
        while self.buffer and time.monotonic() < deadline:
            self._retry_at = min(self._retry_at, time.monotonic() + 1.0)
            self._try_flush()
            if self.buffer:
                time.sleep(0.5)
        if self.buffer:
            log.error("gave up with %d points unsent", len(self.buffer))
