"""The chaos soak as CI runs it: five minutes at 200 transactions/s on the native stack,
every fault kind at least once, judged by `tickml bench soak` itself."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.soak_checks import assert_the_soak_passed
from tickml.config import Settings
from tickml.stack.programs import TICKML

pytestmark = pytest.mark.timeout(1500)
MINUTES, RATE, SEED = 5, 200, 7


def test_a_five_minute_soak_with_every_fault_loses_nothing_and_stays_live(
        small_project: Settings, tmp_path: Path) -> None:
    output = tmp_path / "soak.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKML_")}
    env.update(TICKML_ROOT=str(tmp_path), TICKML_DATA_DIR=str(small_project.data_dir),
               TICKML_MODELS_DIR=str(small_project.models_dir),
               TICKML_KAPACITOR_SCRIPTS=str(small_project.kapacitor_scripts))
    run = subprocess.run([TICKML, "bench", "soak", "--minutes", str(MINUTES), "--rate",
                          str(RATE), "--seed", str(SEED), "--output", str(output)],
                         env=env, capture_output=True, text=True, timeout=1400)
    print(run.stdout[-4000:])  # the summary, for the CI log
    results = json.loads(output.read_text())
    assert_the_soak_passed(results, MINUTES, RATE)
    assert run.returncode == 0, run.stderr[-3000:]
