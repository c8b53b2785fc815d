"""Registry: save, load, promote atomically, and refuse tampered artifacts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tickml.loader import load, load_production
from tickml.modeling.register import register_model
from tickml.registry import (
    ARTIFACT,
    METADATA,
    IntegrityError,
    ModelRef,
    ModelRegistry,
    RegistryError,
)


@pytest.fixture
def registry(small_registry: ModelRegistry, tmp_path: Path) -> ModelRegistry:
    """A private copy of the session registry, so tests can tamper with it."""
    shutil.copytree(small_registry.root, tmp_path / "models")
    return ModelRegistry(tmp_path / "models")


def test_production_model_loads_with_full_metadata(registry: ModelRegistry) -> None:
    model = load_production(registry)
    meta = model.metadata
    assert model.ref == ModelRef("fraud-lgbm", 1)
    for key in ("name", "version", "created", "columns", "threshold", "metrics", "params",
                "seed", "data_sha256", "libraries", "artifact"):
        assert key in meta, key
    assert meta["columns"][0] == "Time" and meta["columns"][-1] == "Amount"
    assert meta["libraries"]["lightgbm"] != "not installed"
    assert (registry.path(model.ref) / "pr_curve.png").stat().st_size > 10_000


def test_register_adds_versions_and_promote_switches(registry: ModelRegistry) -> None:
    original = load_production(registry)
    new = register_model(registry, original.pipeline, name="fraud-lgbm", threshold=0.9,
                         metrics={}, params={}, seed=1, data_sha256="x")
    assert new == ModelRef("fraud-lgbm", 2)
    assert registry.production() == ModelRef("fraud-lgbm", 1)
    registry.promote(new)
    assert registry.production() == new
    assert load_production(registry).threshold == 0.9
    assert registry.versions() == [ModelRef("fraud-lgbm", 1), new]


def test_flipped_byte_is_refused_before_unpickling(registry: ModelRegistry) -> None:
    artifact = registry.path(registry.production()) / ARTIFACT
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0x01
    artifact.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="changed or truncated after it was saved"):
        load_production(registry)


def test_truncated_artifact_is_refused(registry: ModelRegistry) -> None:
    artifact = registry.path(registry.production()) / ARTIFACT
    artifact.write_bytes(artifact.read_bytes()[:100])
    with pytest.raises(IntegrityError):
        load_production(registry)


def test_promoting_a_tampered_model_is_refused_and_keeps_the_pointer(registry) -> None:
    ref = registry.production()
    new = registry.register(registry.load_pipeline(ref).pipeline, name="other", threshold=0.5,
                            metrics={}, params={}, seed=1, data_sha256="x")
    (registry.path(new) / ARTIFACT).write_bytes(b"not a model")
    with pytest.raises(IntegrityError):
        registry.promote(new)
    assert registry.production() == ref


def test_checksum_recorded_matches_a_load_even_after_a_metadata_edit(registry) -> None:
    ref = registry.production()
    path = registry.path(ref) / METADATA
    meta = json.loads(path.read_text())
    meta["artifact"]["sha256"] = "0" * 64
    path.write_text(json.dumps(meta))
    with pytest.raises(IntegrityError):
        load(registry, ref)


def test_empty_registry_says_how_to_get_a_model(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="run `tickml train`"):
        load_production(ModelRegistry(tmp_path))


def test_unknown_version_and_bad_names_are_refused(registry: ModelRegistry) -> None:
    with pytest.raises(RegistryError, match="fraud-lgbm v99 is not in the registry"):
        registry.promote(ModelRef("fraud-lgbm", 99))
    with pytest.raises(RegistryError, match=r"model name '\.\./x'"):
        registry.register(object(), name="../x", threshold=0.5, metrics={}, params={},
                          seed=1, data_sha256="x")


def test_extra_metadata_cannot_rename_the_model_or_its_artifact(registry) -> None:
    pipeline = load_production(registry).pipeline
    for key in ("name", "version", "artifact"):
        with pytest.raises(RegistryError, match=f"extra metadata may not set \\['{key}'\\]"):
            registry.register(pipeline, name="fraud-lgbm", threshold=0.5, metrics={},
                              params={}, seed=1, data_sha256="x", extra={key: "other"})
    assert registry.versions() == [ModelRef("fraud-lgbm", 1)]


def test_the_configured_root_may_itself_be_a_link(registry, tmp_path: Path) -> None:
    """Only what lies below the root must be plain; where the root lives is configuration."""
    (tmp_path / "linked-models").symlink_to(registry.root, target_is_directory=True)
    linked = ModelRegistry(tmp_path / "linked-models")
    assert load_production(linked).ref == ModelRef("fraud-lgbm", 1)
