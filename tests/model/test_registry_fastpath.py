"""The registry's compiled scorer: built at register, loaded only when it is the one
recorded, built at load when missing, and never trusted when anything differs."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.model.test_fastpath import built_by_another_llvmlite
from tickml import schema
from tickml.config import Settings
from tickml.data.prepare import load_split
from tickml.files import write_json_atomically
from tickml.loader import LoadedModel, load_production
from tickml.modeling.fastpath import TOLERANCE
from tickml.registry import FASTPATH, FASTPATH_KEY, METADATA, ModelRegistry


@pytest.fixture(scope="module")
def test_split(small_project: Settings) -> np.ndarray:
    return schema.as_feature_matrix(load_split(small_project, "test"))


@pytest.fixture
def registry(small_registry: ModelRegistry, tmp_path: Path) -> ModelRegistry:
    """A private copy of the session registry, so tests can tamper with it."""
    shutil.copytree(small_registry.root, tmp_path / "models")
    return ModelRegistry(tmp_path / "models")


def version_folder(registry: ModelRegistry) -> Path:
    return registry.path(registry.production())


def sidecar(registry: ModelRegistry) -> dict:
    return json.loads((version_folder(registry) / METADATA).read_text())


def assert_serves_like_the_pipeline(model: LoadedModel, rows: np.ndarray) -> None:
    served, expected = model.predict_proba(rows), model.pipeline_proba(rows)
    assert np.max(np.abs(served - expected)) <= TOLERANCE
    assert np.array_equal(served >= model.threshold, expected >= model.threshold)


def test_the_trained_model_serves_compiled_and_equal_on_the_whole_test_split(
        small_registry: ModelRegistry, test_split: np.ndarray) -> None:
    model = load_production(small_registry)
    assert model.scoring["path"] == "compiled" and model.scoring["source"] == FASTPATH
    assert model.scoring["rows_verified"] == len(test_split)
    served, expected = model.predict_proba(test_split), model.pipeline_proba(test_split)
    assert np.max(np.abs(served - expected)) <= TOLERANCE
    verdicts = served >= model.threshold
    assert np.array_equal(verdicts, expected >= model.threshold) and verdicts.any()


def test_the_sidecar_records_the_file_the_compiler_and_the_comparison(
        small_registry: ModelRegistry, test_split: np.ndarray) -> None:
    folder = small_registry.path(small_registry.production())
    record = json.loads((folder / METADATA).read_text())[FASTPATH_KEY]
    data = (folder / FASTPATH).read_bytes()
    assert record["file"] == FASTPATH and record["bytes"] == len(data)
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["compiler"].startswith("lleaves ") and record["libraries"]["llvmlite"]
    assert record["verification"]["rows"] == len(test_split)
    assert record["verification"]["max_abs_difference"] <= TOLERANCE
    assert record["verification"]["verdict_differences"] == 0


def test_a_changed_fastpath_file_is_refused_and_the_pipeline_serves(
        registry: ModelRegistry, test_split: np.ndarray) -> None:
    artefact = version_folder(registry) / FASTPATH
    data = bytearray(artefact.read_bytes())
    data[len(data) // 2] ^= 0x01
    artefact.write_bytes(bytes(data))
    model = load_production(registry)
    assert model.fast is None and model.scoring["path"] == "pipeline"
    assert "does not match its recorded size and sha256" in model.scoring["reason"]
    assert np.array_equal(model.predict_proba(test_split), model.pipeline_proba(test_split))


def test_a_symlinked_fastpath_file_is_not_followed(registry: ModelRegistry,
                                                   tmp_path: Path) -> None:
    artefact = version_folder(registry) / FASTPATH
    elsewhere = tmp_path / "elsewhere.zip"
    shutil.move(artefact, elsewhere)  # the very bytes recorded, but behind a link
    artefact.symlink_to(elsewhere)
    model = load_production(registry)
    assert model.fast is None and "symbolic link" in model.scoring["reason"]
    assert model.check() is None


def test_a_fastpath_file_built_by_another_compiler_is_refused(
        registry: ModelRegistry) -> None:
    folder = version_folder(registry)
    data = built_by_another_llvmlite((folder / FASTPATH).read_bytes())
    (folder / FASTPATH).write_bytes(data)
    metadata = sidecar(registry)  # recorded as if registered so: only the version differs
    metadata[FASTPATH_KEY].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    write_json_atomically(folder / METADATA, metadata)
    model = load_production(registry)
    assert model.fast is None and "rebuild it" in model.scoring["reason"]


def test_an_older_model_builds_its_scorer_at_first_load_and_caches_it(
        registry: ModelRegistry, test_split: np.ndarray) -> None:
    folder = version_folder(registry)
    (folder / FASTPATH).unlink()
    metadata = sidecar(registry)
    del metadata[FASTPATH_KEY]  # as registered before the compiled path existed
    write_json_atomically(folder / METADATA, metadata)

    first = load_production(registry)
    assert first.scoring["path"] == "compiled"
    assert first.scoring["source"] == f"built at load, cached as {FASTPATH}"
    assert_serves_like_the_pipeline(first, test_split)
    assert (folder / FASTPATH).is_file() and FASTPATH_KEY in sidecar(registry)

    again = load_production(registry)
    assert again.scoring["source"] == FASTPATH
    assert np.array_equal(again.predict_proba(test_split), first.predict_proba(test_split))


def test_a_missing_fastpath_file_is_rebuilt_from_the_pipeline(
        registry: ModelRegistry, test_split: np.ndarray) -> None:
    (version_folder(registry) / FASTPATH).unlink()
    model = load_production(registry)
    assert model.scoring["path"] == "compiled" and "built at load" in model.scoring["source"]
    assert_serves_like_the_pipeline(model, test_split)


def test_the_first_load_build_checks_on_the_test_split_when_given(
        registry: ModelRegistry, small_project: Settings, test_split: np.ndarray) -> None:
    (version_folder(registry) / FASTPATH).unlink()
    split = small_project.processed_dir / "test.parquet"
    model = load_production(registry, verification_split=split)
    assert model.scoring["rows_verified"] == len(test_split)


def test_without_a_usable_lock_file_the_scorer_is_built_in_memory_only(
        registry: ModelRegistry, tmp_path: Path, test_split: np.ndarray) -> None:
    folder = version_folder(registry)
    (folder / FASTPATH).unlink()
    # A link planted as the lock is not followed, as a read-only models folder refuses
    # the lock: either way nothing is written and the scorer still serves.
    (folder / ".fastpath.lock").symlink_to(tmp_path / "target")
    model = load_production(registry)
    assert model.scoring["source"] == "built at load"
    assert model.scoring["rows_verified"] == 2_000  # the deterministic rows
    assert_serves_like_the_pipeline(model, test_split)
    assert not (folder / FASTPATH).exists() and not (tmp_path / "target").exists()


def test_a_pipeline_loaded_outside_the_registry_says_so(
        small_registry: ModelRegistry) -> None:
    model = load_production(small_registry)
    bare = LoadedModel(model.pipeline, model.metadata)
    assert bare.scoring["path"] == "pipeline" and bare.fast is None
    assert np.array_equal(bare.predict_proba(np.zeros((3, 30))),
                          model.pipeline_proba(np.zeros((3, 30))))
