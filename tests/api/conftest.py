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
from tickml.config import Settings
from tickml.data.prepare import load_split
from tickml.loader import LoadedModel, load_production
from tickml.registry import ModelRegistry
from tickml.stack.process import Service
from tickml.stack.programs import api_program, free_port
from tickml.stack.services import start_program

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


def start_api(registry: ModelRegistry, directory: Path, *args: str, ready_path: str,
              **settings: object) -> tuple[Service, Server]:
    """`tickml serve` (2 workers, 4 threads unless `settings` say) for `registry`, once ready."""
    port = free_port()
    defaults = {"api_workers": 2, "api_threads": 4, "api_max_instances": MAX_INSTANCES,
                "api_max_body_bytes": MAX_BODY_BYTES}
    config = Settings(root=directory, models_dir=registry.root, api_bind=f"127.0.0.1:{port}",
                      api_url=f"http://127.0.0.1:{port}", **{**defaults, **settings})
    service = start_program(api_program(config, *args, ready_path=ready_path), directory,
                            config)
    return service, Server(config.api_url, registry, service.log_path)


@pytest.fixture(scope="module")
def make_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Start `tickml serve` processes on free ports; stop them after the module."""
    started = []

    def make(registry: ModelRegistry, *args: str, **settings: object) -> Server:
        service, server = start_api(registry, tmp_path_factory.mktemp("server"), *args,
                                    ready_path="/health",
                                    **{"api_reload_interval": RELOAD_INTERVAL, **settings})
        started.append(service)
        return server

    yield make
    for service in started:
        service.stop()


@pytest.fixture(scope="session")
def server(small_project: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One API for the read-only tests of the session (nobody promotes into it)."""
    registry = copy_registry(small_project, tmp_path_factory.mktemp("api") / "models")
    service, server = start_api(registry, tmp_path_factory.mktemp("server"), ready_path="/ready")
    try:
        yield server
    finally:
        service.stop()


@pytest.fixture(scope="session")
def model(server: Server) -> LoadedModel:
    """The served model, loaded in the test process through the loader."""
    return load_production(server.registry)


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
