"""Scoring one micro-batch of Kapacitor points: features out, scored points back."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tickml.udf import udf_pb2
from tickml.udf.client import PredictClient, Score, Unscored, score_rows
from tickml.udf.framing import encode_varint
from tickml.udf.points import read_features, result_response


@dataclass
class ConnectionStats:
    """What one connection has done so far."""

    points_in: int = 0
    scored: int = 0
    unscored: int = 0
    batches: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: Score | Unscored) -> None:
        if isinstance(outcome, Score):
            self.scored += 1
            return
        self.unscored += 1
        self.reasons[outcome.reason] = self.reasons.get(outcome.reason, 0) + 1


class BatchScorer:
    """Turns a batch of points into response points, scored or marked with a reason.

    Args:
        threshold: the task's `.threshold()`; None keeps the model's own.
        keep_features: the task's `.keepFeatures()`: scored points carry the features too.
    """

    def __init__(self, client: PredictClient, threshold: float | None,
                 stats: ConnectionStats | None = None, keep_features: bool = False) -> None:
        self.client = client
        self.threshold = threshold
        self.stats = stats or ConnectionStats()
        self.keep_features = keep_features

    def score(self, batch: list[udf_pb2.Point]) -> bytes:
        """The framed Responses, one per point in the order given, from one API call.

        The points' fields are emptied on the way (see `result_response`).
        """
        outcomes = score_rows(self.client, [read_features(p) for p in batch], self.threshold)
        now = time.time_ns()
        self.stats.batches += 1
        for outcome in outcomes:
            self.stats.count(outcome)
        keep = self.keep_features
        frames = []
        for point, outcome in zip(batch, outcomes, strict=True):
            response = result_response(point, outcome.fields(), now, keep)
            frames += (encode_varint(len(response)), response)
        return b"".join(frames)
