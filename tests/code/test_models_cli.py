"""`tickml models list|promote` on a registry with refused entries: one clear line each."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.code.test_cli import run_tickml
from tickml.config import Settings
from tickml.files import write_json_atomically
from tickml.registry import POINTER, ModelRef, ModelRegistry


def copy_models(small_project: Settings, root: Path) -> ModelRegistry:
    shutil.copytree(small_project.models_dir, root / "models")
    return ModelRegistry(root / "models")


def test_promoting_a_path_is_refused_in_one_line(small_project, tmp_path) -> None:
    registry = copy_models(small_project, tmp_path)
    result = run_tickml("models", "promote", "../elsewhere", "1", root=tmp_path, check=False)
    assert result.returncode == 1
    assert "model name '../elsewhere' is not valid" in result.stderr
    assert "Traceback" not in result.stderr
    assert registry.production() == ModelRef("fraud-lgbm", 1)


def test_list_names_a_copied_version_it_will_not_serve(small_project, tmp_path) -> None:
    registry = copy_models(small_project, tmp_path)
    shutil.copytree(registry.path(ModelRef("fraud-lgbm", 1)), registry.root / "other" / "1")
    result = run_tickml("models", "list", root=tmp_path)
    assert "fraud-lgbm" in result.stdout and "yes" in result.stdout
    assert "not listed: other v1: its sidecar other/1/metadata.json names 'fraud-lgbm'" \
        in result.stderr


def test_list_with_a_linked_pointer_fails_in_one_line(small_project, tmp_path) -> None:
    registry = copy_models(small_project, tmp_path)
    outside = tmp_path / "pointer.json"
    write_json_atomically(outside, {"name": "fraud-lgbm", "version": 1})
    (registry.root / POINTER).unlink()
    (registry.root / POINTER).symlink_to(outside)
    result = run_tickml("models", "list", root=tmp_path, check=False)
    assert result.returncode == 1
    assert "production.json in the registry is a symbolic link" in result.stderr
    assert "Traceback" not in result.stderr
