"""./up.sh on bad set-ups: the secrets it writes and the .env it refuses (no engine needed)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: What up.sh needs before it looks for Docker or make; python3 is deliberately absent.
BASIC_TOOLS = ("bash", "cat", "dirname", "head", "id", "mktemp", "mv", "rm", "sed", "sort", "tr")


def project_without_python(directory: Path) -> tuple[Path, dict[str, str]]:
    """up.sh and .env.example in `directory`, and a PATH with only the basic tools."""
    for name in ("up.sh", ".env.example"):
        shutil.copy2(ROOT / name, directory / name)
    tools = directory / "bin"
    tools.mkdir()
    for tool in BASIC_TOOLS:
        (tools / tool).symlink_to(shutil.which(tool))
    return directory, {"PATH": str(tools), "HOME": str(directory)}


def run_up(directory: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(directory / "bin" / "bash"), "up.sh", *args], cwd=directory,
                          env=env, capture_output=True, text=True, timeout=60)


def env_values(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^([A-Z_]+)=(.*)$", path.read_text(), re.MULTILINE))


def test_up_sh_without_python3_writes_real_private_secrets(tmp_path: Path) -> None:
    directory, env = project_without_python(tmp_path)
    result = run_up(directory, env, "--local")
    assert result.returncode == 1
    assert "make is missing" in result.stderr, "it stops at the first missing tool, named"
    values = env_values(directory / ".env")
    secrets = [values["GRAFANA_ADMIN_PASSWORD"], values["JUPYTER_TOKEN"]]
    assert all(re.fullmatch(r"[A-Za-z0-9]{24}", s) for s in secrets), secrets
    assert secrets[0] != secrets[1]
    assert stat.S_IMODE((directory / ".env").stat().st_mode) == 0o600
    assert not list(directory.glob(".env.*[!e]")), "no temporary file is left behind"


def test_up_sh_refuses_an_env_that_still_holds_change_me(tmp_path: Path) -> None:
    directory, env = project_without_python(tmp_path)
    shutil.copy2(directory / ".env.example", directory / ".env")
    result = run_up(directory, env, "--local")
    assert result.returncode == 1
    assert "GRAFANA_ADMIN_PASSWORD in .env is 'change-me'" in result.stderr
    assert "delete .env and run ./up.sh again" in result.stderr


def test_up_sh_keeps_an_existing_env_as_it_is(tmp_path: Path) -> None:
    directory, env = project_without_python(tmp_path)
    text = (directory / ".env.example").read_text().replace("change-me", "a-secret-of-mine")
    (directory / ".env").write_text(text)
    run_up(directory, env, "--local")
    assert (directory / ".env").read_text() == text


def test_up_sh_and_down_sh_are_executable() -> None:
    assert os.access(ROOT / "up.sh", os.X_OK) and os.access(ROOT / "down.sh", os.X_OK)
