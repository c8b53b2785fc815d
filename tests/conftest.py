"""Fixtures shared by every test: throw-away settings, a small dataset, a small model.

Tests live by area (api, udf, model, data, stack, ...). Those that start real
services (influxd, kapacitord, gunicorn, Jupyter, the whole stack) are marked
`integration` here, by the fixture that starts them or by module, so `make test-fast`
can leave them out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tickml.config import Settings
from tickml.data.prepare import prepare_dataset
from tickml.modeling.train import train_default_model
from tickml.registry import ModelRegistry

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "compose" / "kapacitor"
#: Fixtures that start real services: a test that uses one is an integration test.
SERVICE_FIXTURES = frozenset({"server", "make_server", "stream", "native", "dashboard_run",
                              "notebook_env", "sharded", "api_replicas",
                              "mlserver_stream", "half_swept"})
#: Modules whose tests start services themselves.
SERVICE_MODULES = frozenset({"test_up_down.py", "test_bench.py", "test_soak.py",
                             "test_mlserver.py"})
#: Folders whose every test starts services (the Docker stack's end-to-end tests).
SERVICE_FOLDERS = frozenset({"docker"})
SMALL_ROWS = 60_000  # about 100 frauds: enough to learn, fast to train
SMALL_MODEL_PARAMS = {"n_estimators": 80, "learning_rate": 0.1}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if starts_services(item):
            item.add_marker(pytest.mark.integration)


def starts_services(item: pytest.Item) -> bool:
    """True when the test uses a service fixture or sits in a module or folder that does."""
    folders = item.path.parent.relative_to(ROOT / "tests").parts \
        if item.path.is_relative_to(ROOT / "tests") else ()
    return bool(SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))
                or item.path.name in SERVICE_MODULES or SERVICE_FOLDERS & set(folders))


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


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The recovery time to live scoring each fault test measured."""
    from tests.liveness import RECOVERIES

    if RECOVERIES:
        terminalreporter.write_sep("-", "seconds from a fault to live scoring again")
    for test, fault, seconds in RECOVERIES:
        shown = "never" if seconds is None else f"{seconds:5.1f} s"
        terminalreporter.write_line(f"{shown}  {fault}  ({test})")
