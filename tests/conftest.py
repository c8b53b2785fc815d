"""Fixtures shared by every test: throw-away settings, a small dataset, a small model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickml.config import Settings
from tickml.data.prepare import prepare_dataset
from tickml.modeling.train import train_default_model
from tickml.registry import ModelRegistry

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "compose" / "kapacitor"
SMALL_ROWS = 60_000  # about 100 frauds: enough to learn, fast to train
SMALL_MODEL_PARAMS = {"n_estimators": 80, "learning_rate": 0.1}


def settings_for(root: Path, **overrides) -> Settings:
    """Settings whose data, models and run directories all live under `root`.

    The TICKscripts are the repository's own, wherever `root` is.
    """
    return Settings(root=root, **{"kapacitor_scripts": SCRIPTS, **overrides})


@pytest.fixture
def tmp_settings(tmp_path: Path) -> Settings:
    return settings_for(tmp_path)


@pytest.fixture(scope="session")
def small_project(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A project directory with a prepared small stand-in and a trained, promoted model."""
    settings = settings_for(tmp_path_factory.mktemp("project"))
    prepare_dataset(settings, rows=SMALL_ROWS, seed=7)
    train_default_model(settings, params=SMALL_MODEL_PARAMS, seed=7)
    return settings


@pytest.fixture(scope="session")
def small_registry(small_project: Settings) -> ModelRegistry:
    return ModelRegistry(small_project.models_dir)
