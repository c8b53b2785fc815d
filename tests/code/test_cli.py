"""The `tickml` console script: help on every command, clear errors, the whole path."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tickml.data.prepare import REAL_FILE
from tickml.data.synthetic import generate_transactions
from tickml.data.transactions import write_transactions
from tickml.kapacitor import TASKS
from tickml.loader import load_production
from tickml.registry import ModelRegistry

TICKML = shutil.which("tickml")


def run_tickml(*args: str, root: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "TICKML_ROOT": str(root), "COLUMNS": "120"}
    result = subprocess.run([TICKML, *args], env=env, capture_output=True, text=True,
                            timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ((), ["data", "train", "models"]),
        (("data", "prepare"), ["--rows", "--seed", "--split", "--test-size", "creditcard.csv"]),
        (("train",), ["--seed", "--precision-target", "--promote", "--name"]),
        (("models", "promote"), ["name", "version", "fraud-lgbm"]),
        (("tasks", "define"), ["--reset", "TASK", "edited"]),
        (("udf",), ["--api-url", "/predict", "/v2/models/NAME/infer", "--resolve-interval",
                    "TICKML_API_RESOLVE_INTERVAL", "replicas"]),
    ],
)
def test_help_explains_every_option(tmp_path: Path, command: tuple, expected: list[str]) -> None:
    out = run_tickml(*command, "--help", root=tmp_path).stdout
    for word in expected:
        assert word in out


def test_defining_an_unknown_task_names_the_known_ones(tmp_path: Path) -> None:
    result = run_tickml("tasks", "define", "--reset", "fraud_alert", root=tmp_path, check=False)
    assert result.returncode == 2
    assert "unknown task fraud_alert" in result.stderr
    assert all(task in result.stderr for task in TASKS), result.stderr


def test_prepare_then_train_leaves_a_loadable_production_model(tmp_path: Path) -> None:
    prepared = run_tickml("data", "prepare", "--rows", "30000", "--seed", "5", root=tmp_path)
    assert "train" in prepared.stdout and "test" in prepared.stdout
    trained = run_tickml("train", "--seed", "5", root=tmp_path)
    assert "average_precision" in trained.stdout
    assert "is now the production model" in trained.stderr
    model = load_production(ModelRegistry(tmp_path / "models"))
    assert model.ref.name == "fraud-lgbm"
    listed = run_tickml("models", "list", root=tmp_path).stdout
    assert "fraud-lgbm" in listed and "yes" in listed


def test_bad_real_file_gives_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    real = tmp_path / "data" / REAL_FILE
    write_transactions(generate_transactions(50, seed=1), real)
    real.write_text(real.read_text().replace('"Amount"', '"Amt"'))
    result = run_tickml("data", "prepare", root=tmp_path, check=False)
    assert result.returncode == 1
    assert "wrong header: missing columns ['Amount']" in result.stderr
    assert "Traceback" not in result.stderr


def test_train_before_prepare_says_what_to_run(tmp_path: Path) -> None:
    result = run_tickml("train", root=tmp_path, check=False)
    assert result.returncode == 1
    assert "run `tickml data prepare` first" in result.stderr


def test_promoting_an_unknown_version_fails_cleanly(tmp_path: Path) -> None:
    result = run_tickml("models", "promote", "fraud-lgbm", "3", root=tmp_path, check=False)
    assert result.returncode == 1
    assert "fraud-lgbm v3 is not in the registry" in result.stderr
