"""A real API refuses a production pointer that leads outside the registry or through a
link, says why in `/ready` as a message, and serves on with the model it had."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.api.conftest import Server, copy_registry
from tests.api.test_reload import wait_for
from tests.model.test_registry_attacks import link_version_folder, plant
from tickml.config import Settings
from tickml.files import write_json_atomically
from tickml.registry import POINTER, ModelRegistry


def traversal(registry: ModelRegistry, marker: Path) -> dict:
    plant(registry.root.parent, "elsewhere", marker)
    return {"name": "../elsewhere", "version": 1}


def linked_version(registry: ModelRegistry, marker: Path) -> dict:
    link_version_folder(registry, plant(registry.root.parent / "outside", "fraud-lgbm", marker))
    return {"name": "fraud-lgbm", "version": 2}


@pytest.mark.parametrize(
    ("attack", "model", "reason"),
    [
        (traversal, "production pointer",
         "the production pointer production.json is refused: model name '../elsewhere' is "
         "not valid"),
        (linked_version, "fraud-lgbm v2",
         "fraud-lgbm/2 in the registry is a symbolic link; the registry follows none"),
    ],
)
def test_ready_names_the_refused_pointer_and_the_old_model_serves_on(
        small_project: Settings, tmp_path: Path, make_server, transactions: list[dict],
        attack: Callable[[ModelRegistry, Path], dict], model: str, reason: str) -> None:
    registry = copy_registry(small_project, tmp_path / "models")
    served = registry.production()
    server: Server = make_server(registry)
    # Each of the two workers loads the model for itself as it boots (one may boot after
    # the first answers): attack only once both have logged that they serve it.
    wait_for(lambda: server.log.read_text().count("tickml.api.holder: serving ") >= 2)
    marker = tmp_path / "code-ran"
    write_json_atomically(registry.root / POINTER, attack(registry, marker))
    # Each worker answers for itself: poll until every one of them has refused it.
    wait_for(lambda: all(server.get("/ready").json()["refused"] for _ in range(8)))
    ready = server.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["refused"]["model"] == model
    assert reason in ready.json()["refused"]["reason"]
    assert "Traceback" not in server.log.read_text()
    answer = server.post("/predict", transactions[0])
    assert answer.status_code == 200 and answer.json()["model"]["version"] == served.version
    assert not marker.exists()
