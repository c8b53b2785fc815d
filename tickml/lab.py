"""JupyterLab on the notebooks, with the tickml package importable.

The server binds 127.0.0.1:10000 by default and always asks for a token (from
`TICKML_LAB_TOKEN`, or a fresh random one). The token reaches Jupyter only through its
environment (`JUPYTER_TOKEN`, which jupyter_server reads), never through the command
line, where any local user could read it in the process list; Jupyter then logs its URL
with `?token=...` instead of the token. The kernel runs in this environment, where
tickml is installed, and inherits the `TICKML_*` settings, so the notebooks find the
same data, models and services.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tickml.config import Settings
from tickml.files import open_private

DEFAULT_BIND = "127.0.0.1:10000"
TOKEN_ENV = "TICKML_LAB_TOKEN"  # read through Settings.lab_token
JUPYTER_TOKEN_ENV = "JUPYTER_TOKEN"  # jupyter_server's IdentityProvider.token default


def parse_bind(bind: str) -> tuple[str, int]:
    """HOST:PORT → (host, port).

    Raises:
        ValueError: not HOST:PORT with a port between 1 and 65535.
    """
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--bind {bind!r}: expected HOST:PORT, e.g. {DEFAULT_BIND}")
    return host, int(port)


def notebooks_dir(settings: Settings) -> Path:
    """The notebooks folder of the project."""
    return settings.root / "notebooks"


def lab_command(host: str, port: int, root_dir: Path,
                open_browser: bool = False, allow_root: bool = False) -> list[str]:
    """The argv that starts JupyterLab with this Python (so its kernel imports tickml).

    The token is not part of it: `lab_env` puts it in the environment.

    Args:
        allow_root: let Jupyter run as root (it refuses otherwise), as in a throw-away
            VM or CI runner; the container image runs it as an unprivileged user.
    """
    argv = [
        sys.executable, "-m", "jupyterlab",
        f"--ServerApp.ip={host}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",  # fail loudly rather than drift to another port
        f"--ServerApp.root_dir={root_dir}",
        f"--ServerApp.open_browser={open_browser}",
    ]
    if allow_root:
        argv.append("--ServerApp.allow_root=True")
    return argv


def lab_env(settings: Settings, token: str,
            environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the server and its kernels: the token and the project's root.

    Raises:
        ValueError: an empty token (Jupyter would then ask for none).
    """
    if not token:
        raise ValueError("JupyterLab must not run without a token")
    env = dict(os.environ if environ is None else environ)
    env.setdefault("TICKML_ROOT", str(settings.root))
    env[JUPYTER_TOKEN_ENV] = token
    return env


def save_token(token: str, path: Path) -> None:
    """Write a generated token to `path`, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_private(path) as file:
        file.write(f"{token}\n".encode())
