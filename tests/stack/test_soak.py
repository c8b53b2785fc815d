"""The chaos soak as CI runs it: five minutes at 200 transactions/s on the native stack,
every fault kind at least once, judged by `tickml bench soak` itself."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tickml.bench.faults import FAULTS
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
    assert {f["kind"] for f in results["faults"] if not f["error"]} == set(FAULTS), \
        [f for f in results["faults"] if f["error"]]
    assert results["transactions"] > MINUTES * 60 * RATE * 0.8
    assert (results["missing_count"], results["doubled_count"], results["unscored_count"]) \
        == (0, 0, 0), results["missing"]
    assert results["bad_points"]["wrong"] == {}
    assert results["live_share_outside_faults"]["share"] >= 0.99, \
        results["live_share_outside_faults"]
    assert results["udf_connections"] == 1
    assert results["log_problems"] == {}
    assert results["verdict"]["passed"], results["verdict"]["failures"]
    assert run.returncode == 0, run.stderr[-3000:]
