"""`tickml lab`: JupyterLab on the notebooks, on 127.0.0.1, behind a token."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from tickml.cli import app
from tickml.config import Settings
from tickml.lab import DEFAULT_BIND, lab_command, lab_env, notebooks_dir, parse_bind
from tickml.stack.programs import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("bind", "expected"), [
    (DEFAULT_BIND, ("127.0.0.1", 10000)),
    ("0.0.0.0:8888", ("0.0.0.0", 8888)),
])
def test_parse_bind(bind, expected) -> None:
    assert parse_bind(bind) == expected


@pytest.mark.parametrize("bind", ["10000", ":10000", "localhost:", "host:port", "h:70000"])
def test_parse_bind_refuses(bind) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_bind(bind)


def test_lab_command_binds_with_a_token_on_the_notebooks(tmp_path: Path) -> None:
    argv = lab_command("127.0.0.1", 10000, "secret", tmp_path)
    assert argv[:3] == [sys.executable, "-m", "jupyterlab"]
    assert "--ServerApp.ip=127.0.0.1" in argv
    assert "--ServerApp.port=10000" in argv
    assert "--IdentityProvider.token=secret" in argv
    assert f"--ServerApp.root_dir={tmp_path}" in argv
    assert "--ServerApp.open_browser=False" in argv
    assert not any("allow_root" in arg for arg in argv)
    assert "--ServerApp.allow_root=True" in lab_command("127.0.0.1", 1, "t", tmp_path,
                                                        allow_root=True)


def test_lab_command_refuses_an_empty_token(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="token"):
        lab_command("127.0.0.1", 10000, "", tmp_path)


def test_lab_env_points_kernels_at_the_project(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path)
    assert lab_env(settings, {})["TICKML_ROOT"] == str(tmp_path)
    assert lab_env(settings, {"TICKML_ROOT": "/x"})["TICKML_ROOT"] == "/x"
    assert notebooks_dir(Settings(root=ROOT)) == ROOT / "notebooks"


def test_cli_refuses_a_bad_bind() -> None:
    result = CliRunner().invoke(app, ["lab", "--bind", "nonsense"])
    assert result.exit_code == 1
    assert "HOST:PORT" in result.output


@pytest.mark.integration
def test_lab_serves_the_notebooks_behind_its_token(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    tickml = Path(sys.executable).with_name("tickml")
    env = {**os.environ, "TICKML_ROOT": str(ROOT), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"), "JUPYTER_DATA_DIR": str(tmp_path / "d")}
    with (tmp_path / "lab.log").open("wb") as log:
        process = subprocess.Popen([str(tickml), "lab", "--bind", f"127.0.0.1:{port}",
                                    "--token", "test-token"], stdout=log,
                                   stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "lab.log").read_text()
            try:
                if requests.get(f"{url}/api/status", timeout=1).status_code in (200, 403):
                    break
            except requests.RequestException:
                time.sleep(0.3)
        else:
            pytest.fail("JupyterLab did not answer:\n" + (tmp_path / "lab.log").read_text())
        assert requests.get(f"{url}/api/contents", timeout=5).status_code == 403
        listing = requests.get(f"{url}/api/contents", timeout=5,
                               headers={"Authorization": "token test-token"})
        assert listing.status_code == 200
        names = {item["name"] for item in listing.json()["content"]}
        assert {"01-problem-and-exploration.ipynb", "06-real-time-deployment.ipynb"} <= names
        kernels = requests.get(f"{url}/api/kernelspecs", timeout=5,
                               headers={"Authorization": "token test-token"}).json()
        assert "python3" in kernels["kernelspecs"]
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
