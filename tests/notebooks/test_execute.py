"""All six notebooks, in order, with a real Jupyter kernel against real services.

Sample mode keeps the run short; notebooks 05 and 06 talk to the influxd,
kapacitord, UDF agent and model API that the `notebook_env` fixture started, and
notebook 04's promoted model must be the one the API serves afterwards.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import requests
from nbclient import NotebookClient

from tickml.config import Settings
from tickml.modeling.ensembles import REGISTRY_NAMES
from tickml.modeling.zoo import FAMILIES, registered_zoo
from tickml.registry import ModelRegistry

from .conftest import NOTEBOOKS

ORDER = [
    "01-problem-and-exploration",
    "02-dataset-preparation",
    "03-hyperparameter-optimization",
    "04-ensembles",
    "05-rest-api",
    "06-real-time-deployment",
]
pytestmark = pytest.mark.notebooks


def execute(name: str, env: dict[str, str], out_dir: Path) -> nbformat.NotebookNode:
    """Run one notebook top to bottom; any cell error fails with the cell's traceback."""
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    try:
        client.execute(env=env)
    finally:  # keep what ran, for reading after a failure
        nbformat.write(notebook, out_dir / f"{name}.ipynb")
    return notebook


def text_outputs(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_the_six_notebooks_exist_in_order() -> None:
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == ORDER


@pytest.mark.parametrize("name", ORDER)
def test_notebook_runs(name: str, notebook_env: dict[str, str], tmp_path: Path) -> None:
    notebook = execute(name, notebook_env, tmp_path)
    assert "run mode: sample" in text_outputs(notebook)
    errors = [o for cell in notebook.cells for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    if name == "03-hyperparameter-optimization":
        check_the_zoo_is_registered_unpromoted(notebook_env)
    if name == "04-ensembles":
        check_the_api_serves_the_promoted_model(notebook_env)


def check_the_zoo_is_registered_unpromoted(env: dict[str, str]) -> None:
    settings = Settings(root=Path(env["TICKML_ROOT"]))
    registry = ModelRegistry(settings.models_dir)
    found = registered_zoo(registry)
    assert set(found) == set(FAMILIES)
    assert all(meta["notebook"] == "03-hyperparameter-optimization"
               for _, meta in found.values())
    assert registry.production() not in {ref for ref, _ in found.values()}
    summary = pd.read_csv(settings.models_dir / "model_summary.csv")
    assert set(summary["model"]) == {*FAMILIES, "DummyClassifier (baseline)"}
    assert {"average_precision", "roc_auc", "precision", "recall", "f1", "fit_seconds",
            "predict_us_per_row"} <= set(summary.columns)


def check_the_api_serves_the_promoted_model(env: dict[str, str]) -> None:
    registry = ModelRegistry(Settings(root=Path(env["TICKML_ROOT"])).models_dir)
    promoted = registry.production()
    assert promoted is not None and promoted.name in REGISTRY_NAMES.values()
    assert registry.metadata(promoted)["notebook"] == "04-ensembles"
    deadline = time.monotonic() + 20
    served = None
    while time.monotonic() < deadline:
        served = requests.get(f"{env['TICKML_API_URL']}/model", timeout=5).json()
        if (served["name"], served["version"]) == (promoted.name, promoted.version):
            break
        time.sleep(0.5)
    assert served is not None
    assert (served["name"], served["version"]) == (promoted.name, promoted.version)
    predicted = requests.post(f"{env['TICKML_API_URL']}/predict",
                              json={"instances": [dict.fromkeys(served["columns"], 0.0)]},
                              timeout=5).json()
    assert predicted["model"]["name"] == promoted.name
