"""The chaos soak on the Docker Compose stack: `tickml bench soak --docker`, every fault
kind at least once against the containers, judged as the native soak is."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.soak_checks import assert_the_soak_passed
from tickml.config import Settings
from tickml.stack.programs import TICKML

from .engine import Engine

pytestmark = [pytest.mark.docker, pytest.mark.integration, pytest.mark.timeout(2400)]
MINUTES, RATE, SEED = 4, 100, 11


def test_a_docker_soak_with_every_fault_loses_nothing_and_stays_live(
        docker_engine: Engine, standin_images: dict[str, str], small_project: Settings,
        tmp_path: Path) -> None:
    output = tmp_path / "soak.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKML_")}
    env.update(standin_images)
    env.update(TICKML_ROOT=str(tmp_path), TICKML_DATA_DIR=str(small_project.data_dir),
               TICKML_MODELS_DIR=str(small_project.models_dir))
    run = subprocess.run([TICKML, "bench", "soak", "--docker", "--minutes", str(MINUTES),
                          "--rate", str(RATE), "--seed", str(SEED), "--output", str(output)],
                         env=env, capture_output=True, text=True, timeout=2300)
    print(run.stdout[-4000:])  # the summary, for the CI log
    assert output.is_file(), run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads(output.read_text())
    assert results["stack"] == "docker"
    assert_the_soak_passed(results, MINUTES, RATE)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "tickml-soak" not in subprocess.run(
        ["docker", "ps", "--all", "--format", "{{.Names}}"], capture_output=True, text=True,
        check=True).stdout, "the soak removes its containers"
