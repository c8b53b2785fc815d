"""A throw-away project and the real native services the notebooks talk to.

`notebook_env` prepares a small dataset in a temporary TICKML_ROOT, trains and
promotes a first model (so the API is ready before notebook 04 promotes its own),
starts influxd, the model API, the UDF agent and kapacitord with tickml's tasks, and
returns the environment that points a Jupyter kernel at all of them, in sample mode.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import SCRIPTS, settings_for
from tickml.data.prepare import prepare_dataset
from tickml.modeling.train import train_default_model
from tickml.notebook import SAMPLE_ENV
from tickml.stack.services import local_pipeline

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
#: Rows of the sample dataset: about 70 frauds, enough for every notebook to say something.
SAMPLE_ROWS = 40_000
FIRST_MODEL_PARAMS = {"n_estimators": 60, "learning_rate": 0.1}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "notebooks: executes the notebooks with a real Jupyter kernel "
                   "(select with -m notebooks)")


@contextmanager
def notebook_stack(root: Path, rows: int = SAMPLE_ROWS, seed: int = 11
                   ) -> Iterator[dict[str, str]]:
    """Prepare a project under `root`, start the services, yield the kernel's variables."""
    settings = settings_for(root)
    prepare_dataset(settings, rows=rows, seed=seed)
    train_default_model(settings, params=FIRST_MODEL_PARAMS, seed=seed)
    with local_pipeline(settings, root / "services") as pipeline:
        yield {
            SAMPLE_ENV: "1",
            "TICKML_ROOT": str(root),
            "TICKML_SEED": str(seed),
            "TICKML_INFLUX_URL": pipeline.influx.url,
            "TICKML_KAPACITOR_URL": pipeline.kapacitor.url,
            "TICKML_KAPACITOR_SCRIPTS": str(SCRIPTS),
            "TICKML_ALERT_LOG": str(pipeline.alert_log),
            "TICKML_API_URL": pipeline.api.url,
            # The logins the jupyter service gets in compose.
            "TICKML_INFLUX_USER": pipeline.settings.influx_user,
            "TICKML_INFLUX_PASSWORD": pipeline.settings.influx_password,
            "TICKML_KAPACITOR_USER": pipeline.settings.kapacitor_user,
            "TICKML_KAPACITOR_PASSWORD": pipeline.settings.kapacitor_password,
            "JUPYTER_PLATFORM_DIRS": "1",
        }


@pytest.fixture(scope="module")
def notebook_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with notebook_stack(tmp_path_factory.mktemp("notebooks")) as env:
        yield {**os.environ, **env}
