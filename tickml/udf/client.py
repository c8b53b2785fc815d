"""The model API as its clients see it: one call per batch, with retries, over replicas.

The URL names either tickml's API, whose `/predict` each batch is posted to, or an Open
Inference Protocol ("V2") endpoint, `.../v2/models/<name>[/versions/<v>]/infer`, of
tickml's API or of any V2 server (MLServer, KServe, Triton): see `wire_form`. When the
URL's host name stands for several replicas, the batches go to each in turn
(`tickml.udf.replicas`).

`score_rows` is the one way to turn rows into scored or unscored outcomes; the UDF
agent and `tickml rescore` both call it, so a verdict means the same in both.
"""

from __future__ import annotations

import http.client
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from tickml import schema
from tickml.influx import FieldValue
from tickml.udf.replicas import RESOLVE_INTERVAL, ReplicaPool, Resolver, resolve_host
from tickml.udf.wire import Predictions, Score, ScoringRejected, rejection, wire_form

__all__ = ["PredictClient", "Predictions", "Score", "ScoringRejected", "ScoringUnavailable",
           "Unscored", "score_rows"]

log = logging.getLogger(__name__)
FIRST_BACKOFF = 0.1
MAX_BACKOFF = 1.0
#: Rows of one batch the API may refuse one by one before the rest is given up on; a
#: refusal costs one more call, and the agent's own checks should leave none to refuse.
MAX_REFUSED_ROWS = 10
_JSON = {"Content-Type": "application/json"}


class ScoringUnavailable(RuntimeError):
    """The API could not score a batch within the retry budget (the reason says why)."""


@dataclass(frozen=True)
class Unscored:
    """A row without a score, and why.

    `api_error` is true when the API could not score it (it may succeed later), false
    when the row itself cannot be scored (a feature is missing or not a number).
    """

    reason: str
    api_error: bool = False

    def fields(self) -> dict[str, FieldValue]:
        """The fields an unscored point carries beside the transaction's own."""
        return {schema.SCORED: False, schema.REASON: self.reason}


class PredictClient:
    """Posts batches to the model API, retrying transient failures with backoff.

    `url` is tickml's API (batches go to its `/predict`) or a V2 infer endpoint (see
    `wire_form`). Each replica of the URL's host keeps one HTTP connection alive with
    http.client, which spends less than half the CPU requests does on each call (a call
    per 200 points is a large share of the agent's work). Unlike requests it reads no
    proxy settings from the environment: the API is reached directly.

    A batch goes to the next replica in turn; one that fails (refused, reset, timed out,
    5xx) passes the batch to the next at once. Only when every replica failed does the
    client back off and try them all again, until `retry_for` has passed.

    Args:
        give_up: once set, a failed call is not retried, nor passed to another
            replica, and after one failure no further call is made: every later batch
            is unavailable at once. The agent sets it when Kapacitor stops the task,
            which waits for the agent (and holds every other task change) until the
            last points are answered.
        resolve_interval: seconds between look-ups of the host's addresses.
        resolve: host → addresses (the system resolver; tests give a stand-in).
    """

    def __init__(self, url: str, timeout: float, retry_for: float,
                 give_up: threading.Event | None = None, *,
                 resolve_interval: float = RESOLVE_INTERVAL,
                 resolve: Resolver = resolve_host) -> None:
        self.endpoint, self.form = wire_form(url)
        self.timeout = timeout
        self.retry_for = retry_for
        self.give_up = give_up or threading.Event()
        self._failed_after_giving_up: str | None = None
        parts = urlsplit(self.endpoint)
        https = parts.scheme == "https"
        self._path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.pool = ReplicaPool(parts.hostname or "", parts.port or (443 if https else 80),
                                https=https, timeout=timeout, resolve=resolve,
                                resolve_interval=resolve_interval)

    def predict(self, rows: list[list[float]]) -> Predictions:
        """Score `rows` (features in schema order).

        Raises:
            ScoringUnavailable: no replica answered (unreachable, timing out or
                answering 5xx) for longer than `retry_for` seconds.
            ScoringRejected: the API answered 4xx, or an answer that does not score
                the batch.
        """
        if self._failed_after_giving_up is not None:
            raise ScoringUnavailable(self._failed_after_giving_up)
        payload = self.form.encode(rows)
        deadline = time.monotonic() + self.retry_for
        backoff = FIRST_BACKOFF
        while True:
            reason = self._attempt(payload, len(rows))
            if isinstance(reason, Predictions):
                return reason
            if self.give_up.is_set():
                raise self._given_up(reason)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ScoringUnavailable(reason)
            log.warning("model API: %s; retrying for another %.1fs", reason, remaining)
            if self.give_up.wait(min(backoff, remaining)):
                raise self._given_up(reason)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _given_up(self, reason: str) -> ScoringUnavailable:
        self._failed_after_giving_up = f"{reason} (not retried: the task was stopping)"
        return ScoringUnavailable(self._failed_after_giving_up)

    def _attempt(self, payload: bytes, rows: int) -> Predictions | str:
        """Predictions from the first replica that answers, or a short reason why none
        did (that of the last one tried)."""
        reason = "api unreachable"  # also when the host name never resolved
        for replica in self.pool.turn():
            try:
                status, body = replica.post(self._path, payload, _JSON)
            except TimeoutError:
                reason = f"api timeout after {self.timeout:g}s"
            except (OSError, http.client.HTTPException):
                reason = "api unreachable"
            else:
                if status < 500:
                    self.pool.succeeded(replica)
                    return self._answer(status, body, rows)
                reason = f"api error {status}"
            self.pool.failed(replica, reason)
            if self.give_up.is_set():
                break
        return reason

    def _answer(self, status: int, body: bytes, rows: int) -> Predictions:
        if status >= 400:
            raise rejection(status, body)
        try:
            return self.form.decode(body, rows)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # not such an answer
            raise ScoringRejected(f"api answered an unreadable body: {exc}") from None

    def close(self) -> None:
        """Close every kept-alive connection (the client stays usable)."""
        self.pool.close()


def score_rows(
    client: PredictClient,
    rows: Sequence[list[float] | str],
    threshold: float | None = None,
) -> list[Score | Unscored]:
    """Score every row that has features, one API call per batch; one outcome per row, in order.

    Args:
        rows: per row, its features in schema order, or the reason it cannot be scored.
        threshold: the verdict's cut-off (a task's `.threshold()`); None keeps the model's.

    When the API refuses the batch and names a row, that row alone is marked with the
    API's reason and the rest is sent again, for at most `MAX_REFUSED_ROWS` rows. When
    the API cannot score the batch, each row with features left comes back as
    `Unscored(reason, api_error=True)`.
    """
    outcomes: list[Score | Unscored | None] = \
        [Unscored(row) if isinstance(row, str) else None for row in rows]
    pending = [i for i, row in enumerate(rows) if not isinstance(row, str)]
    refused = 0
    while pending:
        try:
            predictions = client.predict([rows[i] for i in pending])  # type: ignore[misc]
        except ScoringRejected as exc:
            if exc.index is None or not 0 <= exc.index < len(pending) \
                    or refused == MAX_REFUSED_ROWS:
                _fail(outcomes, pending, exc)
                break
            refused += 1
            outcomes[pending.pop(exc.index)] = Unscored(exc.row_reason())
            log.warning("model API refused one row (%s); scoring the other %d",
                        exc.row_reason(), len(pending))
            continue
        except ScoringUnavailable as exc:
            _fail(outcomes, pending, exc)
            break
        try:
            scores = predictions.scores(threshold)
        except ScoringRejected as exc:  # an answer without verdicts, and no threshold
            _fail(outcomes, pending, exc)
            break
        for i, score in zip(pending, scores, strict=True):
            outcomes[i] = score
        break
    return outcomes  # type: ignore[return-value]


def _fail(outcomes: list[Score | Unscored | None], pending: list[int], exc: Exception) -> None:
    log.error("model API: %d rows not scored: %s", len(pending), exc)
    failed = Unscored(str(exc), api_error=True)
    for i in pending:
        outcomes[i] = failed
