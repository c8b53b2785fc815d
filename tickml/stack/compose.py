"""Driving a copy of the Compose stack from Python: its project's files, profiles and ports.

Shared by `tickml bench soak --docker` and the Docker end-to-end tests, which both run
the stack in a throw-away copy under a Compose project name of their own, so a user's
`tickml` stack and its data are never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from tickml.stack.programs import free_port

#: Every profile of docker-compose.yml, so `ps`, `exec` and `down` reach every service.
ALL_PROFILES = ("--profile", "dashboards", "--profile", "mlserver", "--profile", "shard-2",
                "--profile", "shard-3", "--profile", "shard-4")
#: The host ports the stack publishes, each from its own variable.
PORT_VARIABLES = ("INFLUXDB_PORT", "KAPACITOR_PORT", "API_PORT", "JUPYTER_PORT",
                  "GRAFANA_PORT", "CHRONOGRAF_PORT")
#: What a copy of the project leaves out at its top: state, and what comes from elsewhere.
NOT_COPIED_AT_TOP = {".git", ".venv", "run", "data", "models", "logs", ".env"}
#: ... and at any depth: caches.
NOT_COPIED_ANYWHERE = ("__pycache__", ".hypothesis", "*.egg-info", ".pytest_cache",
                       ".ruff_cache", "node_modules")


class ComposeUnavailable(RuntimeError):
    """No Docker engine answers, or it has no Compose v2."""


def project_checkout(root: Path) -> Path:
    """The folder with docker-compose.yml and ./up.sh: `root`, else tickml's own checkout."""
    for candidate in (root, Path(__file__).resolve().parents[2]):
        if (candidate / "docker-compose.yml").is_file() and (candidate / "up.sh").is_file():
            return candidate
    raise ComposeUnavailable(f"no docker-compose.yml and up.sh in {root}: run this from "
                             "the tickml checkout")


def copy_project(checkout: Path, destination: Path, data_dir: Path, models_dir: Path) -> Path:
    """The checkout's files in `destination`, with the dataset and models given."""
    caches = shutil.ignore_patterns(*NOT_COPIED_ANYWHERE)

    def left_out(folder: str, names: list[str]) -> set[str]:
        top = NOT_COPIED_AT_TOP if Path(folder) == checkout else set()
        return top.intersection(names) | caches(folder, names)

    shutil.copytree(checkout, destination, ignore=left_out, symlinks=True)
    shutil.copytree(data_dir, destination / "data")
    shutil.copytree(models_dir, destination / "models")
    return destination


def compose_environment(project: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment for ./up.sh in a copy: free ports, a project name of its
    own; the caller's image choices (`*_IMAGE`) stay, its tickml and Compose settings go."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TICKML_", "COMPOSE_")) and k not in PORT_VARIABLES}
    env.update({name: str(free_port()) for name in PORT_VARIABLES})
    # Replicas of the API publish the next ports from API_PORT on.
    env["API_PORT_LAST"] = str(min(int(env["API_PORT"]) + 9, 65535))
    env["COMPOSE_PROJECT_NAME"] = project
    env.update(extra or {})
    return env


def check_compose() -> None:
    """Raise ComposeUnavailable with the reason when `docker compose` cannot run a stack."""
    if shutil.which("docker") is None:
        raise ComposeUnavailable("docker is not installed: run scripts/install-docker.sh")
    for command, what in ((["docker", "info", "--format", "{{.ServerVersion}}"],
                           "no Docker engine answers (start dockerd)"),
                          (["docker", "compose", "version"], "docker compose v2 is missing")):
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise ComposeUnavailable(f"{what}: {(result.stderr or result.stdout).strip()}")


def compose(directory: Path, env: Mapping[str, str], *args: str, timeout: float = 300,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    """`docker compose` with every profile, in `directory`, with `env`."""
    result = subprocess.run(["docker", "compose", *ALL_PROFILES, *args], cwd=directory,
                            env=dict(env), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker compose {' '.join(args)}: {result.stdout}{result.stderr}")
    return result


def services(directory: Path, env: Mapping[str, str]) -> dict[str, dict]:
    """`docker compose ps --all` by service: State, Health, ExitCode, ID."""
    out = compose(directory, env, "ps", "--all", "--format", "json").stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {row["Service"]: row for row in rows}


def container_pid(container: str) -> int:
    """The host pid of a container's main process; 0 when it is not running."""
    out = subprocess.run(["docker", "inspect", "--format", "{{.State.Pid}}", container],
                         capture_output=True, text=True, timeout=60)
    return int(out.stdout.strip() or 0) if out.returncode == 0 else 0
