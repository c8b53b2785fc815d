"""The model API as the agent sees it: one `/predict` call per micro-batch, with retries."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import orjson
import requests

from tickml import schema

log = logging.getLogger(__name__)
FIRST_BACKOFF = 0.1
MAX_BACKOFF = 1.0
_JSON = {"Content-Type": "application/json"}


class ScoringUnavailable(RuntimeError):
    """The API could not score a batch within the retry budget (the reason says why)."""


class ScoringRejected(RuntimeError):
    """The API refused the batch as invalid; retrying would not help."""


@dataclass(frozen=True)
class Predictions:
    """The API's answer for one batch, in input order."""

    probabilities: list[float]
    verdicts: list[bool]
    model: str
    version: int
    threshold: float


class PredictClient:
    """Posts batches to `{url}/predict`, retrying transient failures with backoff."""

    def __init__(self, url: str, timeout: float, retry_for: float) -> None:
        self.endpoint = url.rstrip("/") + "/predict"
        self.timeout = timeout
        self.retry_for = retry_for
        self.session = requests.Session()

    def predict(self, rows: list[list[float]]) -> Predictions:
        """Score `rows` (features in schema order).

        Raises:
            ScoringUnavailable: unreachable, timing out or answering 5xx for longer
                than `retry_for` seconds.
            ScoringRejected: the API answered 4xx.
        """
        # orjson: the stdlib encoder was a fifth of the agent's scoring thread
        payload = orjson.dumps(
            {"instances": [dict(zip(schema.FEATURES, row, strict=True)) for row in rows]})
        deadline = time.monotonic() + self.retry_for
        backoff = FIRST_BACKOFF
        while True:
            reason = self._attempt(payload, len(rows))
            if isinstance(reason, Predictions):
                return reason
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ScoringUnavailable(reason)
            log.warning("model API: %s; retrying for another %.1fs", reason, remaining)
            time.sleep(min(backoff, remaining))
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _attempt(self, payload: bytes, rows: int) -> Predictions | str:
        """Predictions, or a short reason the attempt failed transiently."""
        try:
            response = self.session.post(self.endpoint, data=payload, headers=_JSON,
                                         timeout=self.timeout)
        except requests.Timeout:
            return f"api timeout after {self.timeout:g}s"
        except requests.ConnectionError:
            return "api unreachable"
        if response.status_code >= 500:
            return f"api error {response.status_code}"
        if response.status_code >= 400:
            raise ScoringRejected(f"api rejected the batch: {_error_message(response)}")
        try:
            return _parse(orjson.loads(response.content), rows)
        except (ValueError, KeyError, TypeError) as exc:  # a 200 that is not our API's answer
            raise ScoringRejected(f"api answered an unreadable body: {exc}") from None

    def close(self) -> None:
        self.session.close()


def _error_message(response: requests.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"status {response.status_code}"


def _parse(body: dict, expected: int) -> Predictions:
    predictions = body["predictions"]
    if len(predictions) != expected:
        raise ScoringRejected(f"api answered {len(predictions)} predictions for {expected} rows")
    model = body["model"]
    return Predictions(
        probabilities=[float(p["probability"]) for p in predictions],
        verdicts=[bool(p["fraud"]) for p in predictions],
        model=str(model["name"]),
        version=int(model["version"]),
        threshold=float(model["threshold"]),
    )
