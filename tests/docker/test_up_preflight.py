"""./up.sh against a real engine that does not fit: it names what to install, and starts nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .engine import Engine, docker

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.docker, pytest.mark.integration]


def minimal_project(directory: Path) -> Path:
    for name in ("up.sh", ".env.example", "docker-compose.yml"):
        shutil.copy2(ROOT / name, directory / name)
    return directory


def run_up(directory: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["./up.sh", "--without-dashboards"], cwd=directory,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120)


def test_up_sh_names_compose_v1_when_the_v2_plugin_is_missing(
    docker_engine: Engine, tmp_path: Path,
) -> None:
    assert shutil.which("docker-compose"), "scripts/install-docker.sh installs Compose v1"
    no_plugins = tmp_path / "docker-config"  # a Docker config folder without cli-plugins
    no_plugins.mkdir()
    result = run_up(minimal_project(tmp_path), DOCKER_CONFIG=str(no_plugins))
    assert result.returncode == 1
    assert "only Compose v1 (1." in result.stderr
    assert "install docker-compose-plugin" in result.stderr and "--local" in result.stderr


def test_up_sh_names_an_engine_older_than_the_minimum(docker_engine: Engine,
                                                      tmp_path: Path) -> None:
    engine = docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    result = run_up(minimal_project(tmp_path), TICKML_MIN_DOCKER_ENGINE="99.0")
    assert result.returncode == 1
    assert f"Docker Engine {engine} is too old: install Docker Engine 99.0 or newer" \
        in result.stderr


def test_up_sh_names_a_compose_older_than_the_minimum(docker_engine: Engine,
                                                      tmp_path: Path) -> None:
    compose = docker("compose", "version", "--short").stdout.strip()
    result = run_up(minimal_project(tmp_path), TICKML_MIN_DOCKER_COMPOSE="99.0")
    assert result.returncode == 1
    assert f"Docker Compose {compose} is too old: install Compose 99.0 or newer" in result.stderr
