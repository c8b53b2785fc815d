"""`tickml lab`: JupyterLab on the notebooks, on 127.0.0.1, behind a token."""

from __future__ import annotations

import secrets
import stat
import sys
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from tickml.cli import app
from tickml.config import Settings
from tickml.lab import DEFAULT_BIND, lab_command, lab_env, notebooks_dir, parse_bind, save_token
from tickml.stack.process import Service
from tickml.stack.programs import TICKML, free_port, http_ok

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


def test_lab_command_binds_on_the_notebooks_without_the_token(tmp_path: Path) -> None:
    argv = lab_command("127.0.0.1", 10000, tmp_path)
    assert argv[:3] == [sys.executable, "-m", "jupyterlab"]
    assert "--ServerApp.ip=127.0.0.1" in argv
    assert "--ServerApp.port=10000" in argv
    assert f"--ServerApp.root_dir={tmp_path}" in argv
    assert "--ServerApp.open_browser=False" in argv
    assert not any("token" in arg.lower() for arg in argv)
    assert not any("allow_root" in arg for arg in argv)
    assert "--ServerApp.allow_root=True" in lab_command("127.0.0.1", 1, tmp_path,
                                                        allow_root=True)


def test_lab_env_carries_the_token_and_refuses_an_empty_one(tmp_path: Path) -> None:
    assert lab_env(Settings(root=tmp_path), "secret", {})["JUPYTER_TOKEN"] == "secret"
    with pytest.raises(ValueError, match="token"):
        lab_env(Settings(root=tmp_path), "", {})


def test_lab_env_points_kernels_at_the_project(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path)
    assert lab_env(settings, "t", {})["TICKML_ROOT"] == str(tmp_path)
    assert lab_env(settings, "t", {"TICKML_ROOT": "/x"})["TICKML_ROOT"] == "/x"
    assert notebooks_dir(Settings(root=ROOT)) == ROOT / "notebooks"


def test_a_generated_token_is_saved_private(tmp_path: Path) -> None:
    save_token("abc", tmp_path / "run" / "lab-token")
    saved = tmp_path / "run" / "lab-token"
    assert saved.read_text() == "abc\n"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600


def test_cli_refuses_a_bad_bind() -> None:
    result = CliRunner().invoke(app, ["lab", "--bind", "nonsense"])
    assert result.exit_code == 1
    assert "HOST:PORT" in result.output


@pytest.mark.integration
def test_lab_serves_the_notebooks_behind_a_token_kept_out_of_argv_and_log(
        tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    token = secrets.token_hex(16)
    lab = Service("lab", [TICKML, "lab", "--bind", f"127.0.0.1:{port}"], tmp_path / "run",
                  ready=lambda: http_ok(f"{url}/api"),
                  env={"TICKML_ROOT": str(ROOT), "TICKML_LAB_TOKEN": token,
                       "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
                       "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
                       "JUPYTER_DATA_DIR": str(tmp_path / "d")})
    try:
        lab.start().wait_ready(timeout=120)
        assert requests.get(f"{url}/api/contents", timeout=5).status_code == 403
        auth = {"Authorization": f"token {token}"}
        listing = requests.get(f"{url}/api/contents", timeout=5, headers=auth)
        assert listing.status_code == 200
        names = {item["name"] for item in listing.json()["content"]}
        assert {"01-problem-and-exploration.ipynb", "06-real-time-deployment.ipynb"} <= names
        kernels = requests.get(f"{url}/api/kernelspecs", timeout=5, headers=auth).json()
        assert "python3" in kernels["kernelspecs"]
        # `tickml lab` execs Jupyter in place: this pid is the server itself
        cmdline = Path(f"/proc/{lab.process.pid}/cmdline").read_bytes()
        assert b"jupyterlab" in cmdline and token.encode() not in cmdline
        log = lab.log_path.read_text()
        assert f":{port}/" in log  # Jupyter logged its URL ...
        assert token not in log  # ... without the token
        assert stat.S_IMODE(lab.log_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(lab.pid_path.stat().st_mode) == 0o600
    finally:
        lab.stop()
