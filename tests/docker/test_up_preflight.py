"""./up.sh against a real engine that does not fit: it names what to install, and starts nothing."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tickml.stack.compose import PORT_VARIABLES
from tickml.stack.programs import free_port

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


def free_ports_env() -> dict[str, str]:
    return {name: str(free_port()) for name in PORT_VARIABLES}


def test_up_sh_names_the_images_it_could_not_pull_and_the_two_ways_out(
    docker_engine: Engine, tmp_path: Path,
) -> None:
    # The upstream images, as a new user's machine without a registry meets them.
    env = {**free_ports_env(), "COMPOSE_PROJECT_NAME": "tickml-pull-test"}
    for name in ("INFLUXDB_IMAGE", "KAPACITOR_IMAGE", "PYTHON_IMAGE"):
        env.pop(name, None)
    result = run_up(minimal_project(tmp_path), **env)
    try:
        assert result.returncode == 1
        message = result.stderr.splitlines()[-1]
        assert message.startswith("up.sh: error: images could not be pulled: "), message
        assert "influxdb:" in message and "(INFLUXDB_IMAGE)" in message, message
        assert "kapacitor:" in message and "(KAPACITOR_IMAGE)" in message, message
        assert "see .env.example" in message and "./up.sh --local" in message, message
        assert "a service did not become healthy" not in result.stderr
    finally:
        docker("compose", "-p", "tickml-pull-test", "-f", str(tmp_path / "docker-compose.yml"),
               "down", "--volumes", "--remove-orphans", check=False)


def test_up_sh_names_a_port_another_program_holds(docker_engine: Engine, tmp_path: Path) -> None:
    env = free_ports_env()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(env["API_PORT"])))
        holder.listen()
        result = run_up(minimal_project(tmp_path), **env)
    assert result.returncode == 1
    assert (f"port {env['API_PORT']} (API_PORT) is already in use by another program: stop "
            "it, or set API_PORT in .env to a free port") in result.stderr
    assert "starting the stack" not in result.stdout, "nothing was started"


def test_up_sh_names_too_little_disk_space_for_docker(docker_engine: Engine,
                                                      tmp_path: Path) -> None:
    result = run_up(minimal_project(tmp_path), **free_ports_env(), TICKML_MIN_FREE_GB="999999")
    assert result.returncode == 1
    assert "GB free for Docker in " in result.stderr
    assert "need about 999999 GB" in result.stderr and "docker system prune" in result.stderr
