"""A real `tickml serve` (gunicorn) on a free port, serving a copy of the small model."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests

from tickml import schema
from tickml.api.process import free_port, start_server, stop_server, wait_until_up
from tickml.config import Settings
from tickml.data.prepare import load_split
from tickml.registry import LoadedModel, ModelRegistry

MAX_INSTANCES = 200
MAX_BODY_BYTES = 256 * 1024
RELOAD_INTERVAL = 0.2


@dataclass(frozen=True)
class Server:
    """A running API: its base URL, the registry it serves and its log file."""

    url: str
    registry: ModelRegistry
    log: Path

    def post(self, path: str, payload: object, **kwargs) -> requests.Response:
        return requests.post(self.url + path, json=payload, timeout=30, **kwargs)

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, timeout=30)


def copy_registry(small_project: Settings, destination: Path) -> ModelRegistry:
    """A private copy of the session's registry, safe to promote into."""
    shutil.copytree(small_project.models_dir, destination)
    return ModelRegistry(destination)


@pytest.fixture(scope="module")
def make_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Start `tickml serve` processes on free ports; stop them after the module."""
    started = []

    def make(registry: ModelRegistry, *args: str) -> Server:
        port = free_port()
        log = tmp_path_factory.mktemp("server") / "serve.log"
        process = start_server(
            port, log_path=log, args=("--workers", "2", "--threads", "4", *args),
            env={"TICKML_MODELS_DIR": str(registry.root),
                 "TICKML_API_RELOAD_INTERVAL": str(RELOAD_INTERVAL),
                 "TICKML_API_MAX_INSTANCES": str(MAX_INSTANCES),
                 "TICKML_API_MAX_BODY_BYTES": str(MAX_BODY_BYTES)})
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url, process, timeout=120)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"{exc}; log:\n{log.read_text()}") from None
        return Server(url, registry, log)

    yield make
    for process in started:
        stop_server(process)


@pytest.fixture(scope="session")
def server(small_project: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One API for the read-only tests of the session (nobody promotes into it)."""
    registry = copy_registry(small_project, tmp_path_factory.mktemp("api") / "models")
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "serve.log"
    process = start_server(port, log_path=log, args=("--workers", "2", "--threads", "4"),
                           env={"TICKML_MODELS_DIR": str(registry.root),
                                "TICKML_API_MAX_INSTANCES": str(MAX_INSTANCES),
                                "TICKML_API_MAX_BODY_BYTES": str(MAX_BODY_BYTES)})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process, timeout=120, path="/ready")
        yield Server(url, registry, log)
    finally:
        stop_server(process)


@pytest.fixture(scope="session")
def model(server: Server) -> LoadedModel:
    """The served model, loaded in the test process through the registry."""
    return server.registry.load_production()


@pytest.fixture(scope="session")
def transactions(small_project: Settings) -> list[dict]:
    """Test-split transactions as the UDF agent sends them: with `Class` and an id."""
    frame = load_split(small_project, "test")
    frauds = frame[frame[schema.LABEL] == 1].head(10)
    rows = frame.head(90)
    picked = list(frauds.to_dict("records")) + list(rows.to_dict("records"))
    return [{**row, "id": f"tx-{i}"} for i, row in enumerate(picked)]


def as_matrix(rows: list[dict]) -> np.ndarray:
    """Rows as a schema-order float64 matrix."""
    return np.array([[row[name] for name in schema.FEATURES] for row in rows], dtype=np.float64)
