"""Model changes without downtime: swap on promotion, refuse a model that will not load."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.api.conftest import Server, copy_registry
from tickml.config import Settings
from tickml.files import write_json_atomically
from tickml.loader import load
from tickml.modeling.register import register_model
from tickml.registry import ARTIFACT, POINTER, ModelRef, ModelRegistry


class RequestStream:
    """Clients posting /predict in a loop, recording every status and model version."""

    def __init__(self, server: Server, row: dict, clients: int = 3) -> None:
        self.server, self.row = server, row
        self.statuses: Counter[int] = Counter()
        self.versions: list[int] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(clients)]

    def __enter__(self) -> RequestStream:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    response = session.post(self.server.url + "/predict", json=self.row,
                                            timeout=30)
                except requests.RequestException:
                    self.statuses[-1] += 1  # a refused or dropped connection is a failure
                    continue
                self.statuses[response.status_code] += 1
                if response.status_code == 200:
                    self.versions.append(response.json()["model"]["version"])


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def reload_server(small_project: Settings, tmp_path_factory: pytest.TempPathFactory,
                  make_server) -> Server:
    """One server for the swap tests, on a registry they may promote into.

    The tests run in file order on it; each starts from whatever model it serves.
    """
    return make_server(copy_registry(small_project, tmp_path_factory.mktemp("r") / "models"))


def serving(server: Server) -> ModelRef:
    """The model the server answers with now."""
    model = server.get("/model").json()
    return ModelRef(model["name"], model["version"])


def register_copy(registry: ModelRegistry, source: ModelRef, threshold: float) -> ModelRef:
    """A new version: the pipeline of `source` under a different threshold."""
    current = load(registry, source)
    return register_model(registry, current.pipeline, name=current.ref.name,
                          threshold=threshold, metrics=current.metadata["metrics"], params={},
                          seed=0, data_sha256=current.metadata["data_sha256"])


def versions_seen_by_ready(server: Server, polls: int = 12) -> set[int]:
    """Model versions reported by /ready (each worker answers for itself)."""
    return {server.get("/ready").json()["model"]["version"] for _ in range(polls)}


def test_promotion_swaps_models_under_load_without_a_failed_request(
        reload_server: Server, transactions: list[dict]) -> None:
    server, registry = reload_server, reload_server.registry
    old = serving(server)
    new = register_copy(registry, old, threshold=0.5)
    with RequestStream(server, transactions[0]) as stream:
        wait_for(lambda: len(stream.versions) > 20)
        registry.promote(new)
        wait_for(lambda: versions_seen_by_ready(server) == {new.version})
        served = len(stream.versions)
        wait_for(lambda: len(stream.versions) > served + 20)
    assert set(stream.statuses) == {200}, stream.statuses
    assert stream.versions[0] == old.version and stream.versions[-1] == new.version
    assert server.get("/model").json()["threshold"] == 0.5


def test_a_model_that_does_not_load_is_refused_and_the_old_one_serves_on(
        reload_server: Server, transactions: list[dict]) -> None:
    server, registry = reload_server, reload_server.registry
    old = serving(server)
    not_a_model = registry.register({"weights": [1, 2, 3]}, name=old.name, threshold=0.5,
                                    metrics={}, params={}, seed=0, data_sha256="")
    with RequestStream(server, transactions[0]) as stream:
        wait_for(lambda: len(stream.versions) > 10)
        registry.promote(not_a_model)  # its checksum is right; it is just not a classifier
        wait_for(lambda: all((r["refused"] or {}).get("model") == str(not_a_model)
                             for r in _ready_bodies(server)))
        served = len(stream.versions)
        wait_for(lambda: len(stream.versions) > served + 20)
    assert set(stream.statuses) == {200}, stream.statuses
    assert set(stream.versions) == {old.version}
    ready = server.get("/ready")
    assert ready.status_code == 200
    refused = ready.json()["refused"]
    assert refused["model"] == str(not_a_model)
    assert "not a classifier" in refused["reason"]
    assert f"refused {not_a_model}" in server.log.read_text()


def test_a_tampered_artifact_is_refused(reload_server: Server,
                                        transactions: list[dict]) -> None:
    server, registry = reload_server, reload_server.registry
    old = serving(server)
    tampered = register_copy(registry, old, threshold=0.3)
    with (registry.path(tampered) / ARTIFACT).open("ab") as artifact:
        artifact.write(b"tampered")
    # `promote` would refuse it, so point production at it by hand, as a broken copy of
    # the registry or a file changed after promotion would.
    write_json_atomically(registry.root / POINTER,
                          {"name": tampered.name, "version": tampered.version})
    wait_for(lambda: all((r["refused"] or {}).get("model") == str(tampered)
                         for r in _ready_bodies(server)))
    refused = server.get("/ready").json()["refused"]
    assert "sha256" in refused["reason"] and "not loaded" in refused["reason"]
    assert server.post("/predict", transactions[0]).json()["model"]["version"] == old.version


def test_the_api_starts_without_a_model_and_picks_one_up(
        small_project: Settings, tmp_path: Path, make_server, transactions: list[dict]) -> None:
    registry = copy_registry(small_project, tmp_path / "models")
    pointer = registry.root / "production.json"
    ref = registry.production()
    pointer.unlink()
    server = make_server(registry)
    not_ready = server.get("/ready")
    assert not_ready.status_code == 503
    assert "no production model" in not_ready.json()["reason"]
    unavailable = server.post("/predict", transactions[0])
    assert unavailable.status_code == 503
    assert unavailable.json()["error"]["code"] == "model_unavailable"
    assert server.get("/v2/health/ready").status_code == 503
    registry.promote(ref)
    wait_for(lambda: all(r.get("model") for r in _ready_bodies(server)))
    assert server.post("/predict", transactions[0]).status_code == 200


def _ready_bodies(server: Server, polls: int = 8) -> list[dict]:
    return [server.get("/ready").json() for _ in range(polls)]
