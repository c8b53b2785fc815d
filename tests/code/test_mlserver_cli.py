"""`tickml mlserver write`: the files MLServer reads, written without MLServer running.

tests/api/test_mlserver.py starts MLServer from these files; here they are checked as
files, and tickml is shown to import and write them without mlserver installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.code.test_cli import run_tickml
from tickml.config import Settings

IMPLEMENTATION = "tickml.serving.mlserver.TickmlRuntime"


def copy_models(small_project: Settings, root: Path) -> Path:
    shutil.copytree(small_project.models_dir, root / "models")
    return root / "models"


def test_write_prints_the_start_command_and_defaults_to_a_local_quiet_server(
        small_project: Settings, tmp_path: Path) -> None:
    models = copy_models(small_project, tmp_path)
    result = run_tickml("mlserver", "write", root=tmp_path)
    folder = tmp_path / "run" / "mlserver"
    assert result.stdout.strip().endswith(f"mlserver start {folder}")
    server = json.loads((folder / "settings.json").read_text())
    assert server == {"server_name": "tickml-mlserver", "host": "127.0.0.1",
                      "http_port": 8080, "grpc_port": 8081, "parallel_workers": 0,
                      "debug": False, "load_models_at_startup": True,
                      "metrics_endpoint": None}
    model = json.loads((folder / "fraud-lgbm" / "model-settings.json").read_text())
    assert model["name"] == "fraud-lgbm" and model["implementation"] == IMPLEMENTATION
    assert model["parameters"]["uri"] == str(models) and model["parameters"]["version"] == "1"
    assert model["parameters"]["extra"] == {"max_instances": 10_000}
    assert [o["name"] for o in model["outputs"]] == ["probability", "fraud"]


def test_metrics_are_served_only_on_a_port_given(small_project: Settings,
                                                 tmp_path: Path) -> None:
    copy_models(small_project, tmp_path)
    run_tickml("mlserver", "write", str(tmp_path / "ms"), "--host", "0.0.0.0",
               "--metrics-port", "9500", root=tmp_path)
    server = json.loads((tmp_path / "ms" / "settings.json").read_text())
    assert server["host"] == "0.0.0.0"
    assert (server["metrics_endpoint"], server["metrics_port"]) == ("/metrics", 9500)
    refused = run_tickml("mlserver", "write", str(tmp_path / "ms"), "--grpc-port", "8080",
                         root=tmp_path, check=False)
    assert refused.returncode == 1 and "ports must differ" in refused.stderr


def test_settings_written_for_an_earlier_model_are_removed(small_project: Settings,
                                                          tmp_path: Path) -> None:
    copy_models(small_project, tmp_path)
    stale = tmp_path / "ms" / "fraud-old" / "model-settings.json"
    foreign = tmp_path / "ms" / "other" / "model-settings.json"
    for path, implementation in ((stale, IMPLEMENTATION),
                                 (foreign, "mlserver_sklearn.SKLearnModel")):
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"name": path.parent.name, "implementation": implementation}))
    run_tickml("mlserver", "write", str(tmp_path / "ms"), root=tmp_path)
    assert not stale.exists() and foreign.exists()


def test_without_a_production_model_nothing_is_written(tmp_path: Path) -> None:
    result = run_tickml("mlserver", "write", str(tmp_path / "ms"), root=tmp_path, check=False)
    assert result.returncode == 1 and "run `tickml train`" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "ms").exists()


#: Runs `tickml mlserver write` with every `mlserver` module made unimportable.
WITHOUT_MLSERVER = """
import sys

class Hidden:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "mlserver":
            raise ImportError("mlserver is not installed")

sys.meta_path.insert(0, Hidden())
from tickml.cli import app
try:
    app(["mlserver", "write", sys.argv[1]])
finally:
    assert not [m for m in sys.modules if m.split(".")[0] == "mlserver"]
"""


def test_tickml_imports_and_writes_the_settings_without_mlserver(
        small_project: Settings, tmp_path: Path) -> None:
    copy_models(small_project, tmp_path)
    result = subprocess.run([sys.executable, "-c", WITHOUT_MLSERVER, str(tmp_path / "ms")],
                            env={"TICKML_ROOT": str(tmp_path), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ms" / "fraud-lgbm" / "model-settings.json").is_file()
