"""Prometheus metrics of the API.

Under gunicorn every worker is a process, so `tickml serve` sets
`PROMETHEUS_MULTIPROC_DIR` before any worker imports prometheus_client and `/metrics`
merges the workers' files. Without it (Flask's test client, a plain `flask run`) the
metrics live in this app's own registry.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

from tickml.api import MULTIPROC_ENV
from tickml.loader import LoadedModel

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25,
                   0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The API's counters, histogram and gauge, registered in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tickml_api_requests", "HTTP requests by route, method and status.",
            ["endpoint", "method", "status"], registry=self.registry)
        self.latency = Histogram(
            "tickml_api_request_duration_seconds", "Time spent answering a request.",
            ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.rows_scored = Counter(
            "tickml_api_rows_scored", "Transactions scored.", registry=self.registry)
        self.frauds_flagged = Counter(
            "tickml_api_frauds_flagged", "Transactions whose probability reached the threshold.",
            registry=self.registry)
        self.model_version = Gauge(
            "tickml_api_model_version", "Version of the production model each worker serves.",
            ["name"], multiprocess_mode="liveall", registry=self.registry)
        self.model_reloads = Counter(
            "tickml_api_model_loads", "Production models loaded (accepted) or refused.",
            ["outcome"], registry=self.registry)
        self._served_names: set[str] = set()

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_scores(self, rows: int, frauds: int) -> None:
        """Count scored rows and the frauds among them."""
        self.rows_scored.inc(rows)
        self.frauds_flagged.inc(frauds)

    def model_loaded(self, model: LoadedModel) -> None:
        """Record that this worker now serves `model`."""
        for name in self._served_names - {model.ref.name}:
            # A cleared child would linger in the multiprocess files: zero means "not served".
            self.model_version.labels(name).set(0)
        self._served_names.add(model.ref.name)
        self.model_version.labels(model.ref.name).set(model.ref.version)
        self.model_reloads.labels("loaded").inc()

    def model_refused(self) -> None:
        """Record a production model this worker refused to load."""
        self.model_reloads.labels("refused").inc()

    def exposition(self) -> bytes:
        """The text every scrape gets: all workers' metrics when running under gunicorn."""
        if os.environ.get(MULTIPROC_ENV):
            merged = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)
