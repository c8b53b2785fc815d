"""A real API says which path serves in `/model`: the compiled scorer for the default
model, the pipeline for an ensemble or when the compiled file is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from lightgbm import LGBMClassifier
from sklearn.ensemble import VotingClassifier

from tests.api.conftest import Server, as_matrix, copy_registry
from tests.api.test_reload import wait_for
from tickml import schema
from tickml.config import Settings
from tickml.data.prepare import load_split
from tickml.files import write_json_atomically
from tickml.modeling.ensembles import as_pipeline
from tickml.modeling.fastpath import TOLERANCE
from tickml.registry import FASTPATH, FASTPATH_KEY, METADATA, ModelRegistry

SERVING = "tickml.api.holder: serving "


def served_probabilities(server: Server, transactions: list[dict]) -> np.ndarray:
    answer = server.post("/predict", {"instances": transactions})
    assert answer.status_code == 200, answer.text
    return np.array([p["probability"] for p in answer.json()["predictions"]])


def both_workers_serve(server: Server) -> None:
    wait_for(lambda: server.log.read_text().count(SERVING) >= 2)


def test_the_default_model_is_served_by_its_compiled_scorer(server: Server) -> None:
    scoring = server.get("/model").json()["scoring"]
    assert scoring["path"] == "compiled" and scoring["source"] == FASTPATH
    assert scoring["compiler"].startswith("lleaves ")
    assert 0 <= scoring["max_abs_difference"] <= TOLERANCE and scoring["rows_verified"] > 0


def test_an_ensemble_is_served_by_its_pipeline_and_says_why(
        small_project: Settings, tmp_path: Path, make_server,
        transactions: list[dict]) -> None:
    train = load_split(small_project, "train")
    members = [(f"lgbm{i}", LGBMClassifier(n_estimators=5, random_state=i, verbose=-1))
               for i in range(2)]
    ensemble = as_pipeline(VotingClassifier(members, voting="soft"))
    ensemble.fit(schema.as_feature_matrix(train), train[schema.LABEL].to_numpy())
    registry = copy_registry(small_project, tmp_path / "models")
    ref = registry.register(ensemble, name="fraud-vote", threshold=0.5, metrics={},
                            params={}, seed=1, data_sha256="small")
    registry.promote(ref)
    assert not (registry.path(ref) / FASTPATH).exists()

    server = make_server(registry, api_workers=1)
    model = server.get("/model").json()
    assert model["name"] == "fraud-vote"
    assert model["scoring"]["path"] == "pipeline"
    assert model["scoring"]["reason"].startswith("VotingClassifier: no compiled form")
    expected = ensemble.predict_proba(as_matrix(transactions))[:, 1]
    np.testing.assert_allclose(served_probabilities(server, transactions), expected,
                               rtol=0, atol=1e-15)


def test_a_changed_compiled_file_is_refused_and_the_pipeline_serves(
        small_project: Settings, tmp_path: Path, make_server, model,
        transactions: list[dict]) -> None:
    registry = copy_registry(small_project, tmp_path / "models")
    artefact = registry.path(registry.production()) / FASTPATH
    data = bytearray(artefact.read_bytes())
    data[len(data) // 3] ^= 0x01
    artefact.write_bytes(bytes(data))

    server = make_server(registry, api_workers=1)
    scoring = server.get("/model").json()["scoring"]
    assert scoring["path"] == "pipeline"
    assert scoring["reason"].startswith(f"{FASTPATH} refused: ")
    assert "does not match its recorded size and sha256" in scoring["reason"]
    expected = model.pipeline_proba(as_matrix(transactions))
    np.testing.assert_allclose(served_probabilities(server, transactions), expected,
                               rtol=0, atol=1e-15)


@pytest.mark.parametrize("recorded", [True, False], ids=["file-deleted", "older-model"])
def test_workers_build_a_missing_compiled_scorer_once_and_share_it(
        small_project: Settings, tmp_path: Path, make_server, model,
        transactions: list[dict], recorded: bool) -> None:
    registry: ModelRegistry = copy_registry(small_project, tmp_path / "models")
    folder = registry.path(registry.production())
    (folder / FASTPATH).unlink()
    if not recorded:
        metadata = json.loads((folder / METADATA).read_text())
        del metadata[FASTPATH_KEY]
        write_json_atomically(folder / METADATA, metadata)

    server = make_server(registry)
    both_workers_serve(server)
    log = server.log.read_text()
    # The lock makes the second worker wait and load what the first one cached.
    assert log.count("compiled path: built at load, cached as fastpath.zip") == 1
    assert log.count(f"compiled path: {FASTPATH})") == 1
    assert (folder / FASTPATH).is_file()
    served = served_probabilities(server, transactions)
    assert np.max(np.abs(served - model.pipeline_proba(as_matrix(transactions)))) <= TOLERANCE


def test_workers_build_in_memory_when_the_lock_is_refused_as_read_only_stand_in(
        small_project: Settings, tmp_path: Path, make_server, model,
        transactions: list[dict]) -> None:
    registry = copy_registry(small_project, tmp_path / "models")
    folder = registry.path(registry.production())
    (folder / FASTPATH).unlink()
    # Tests run as root here, for whom permissions do not make a folder read-only; a
    # link planted as the lock file refuses the lock the same way (it is never followed).
    target = tmp_path / "lock-target"
    (folder / ".fastpath.lock").symlink_to(target)

    server = make_server(registry)
    both_workers_serve(server)
    assert server.get("/model").json()["scoring"]["source"] == "built at load"
    assert not (folder / FASTPATH).exists() and not target.exists()
    served = served_probabilities(server, transactions)
    assert np.max(np.abs(served - model.pipeline_proba(as_matrix(transactions)))) <= TOLERANCE
