"""A throw-away copy of the repository and its Docker Compose stack, driven as a user would."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tickml.influx import InfluxClient
from tickml.stack.compose import (
    compose,
    compose_environment,
    container_pid,
    services,
)

ROOT = Path(__file__).resolve().parents[2]
#: A project name of its own, so the tests never touch a user's `tickml` stack.
PROJECT = "tickml-e2e"
#: Services that run once and exit 0; every other one keeps running.
ONE_SHOT = {"users", "trainer", "tasks"}


def copy_repository(destination: Path) -> Path:
    """The repository's files as a fresh clone would have them (working-tree state)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def stack_environment(images: dict[str, str], uid: int, gid: int,
                      generator_rate: float) -> dict[str, str]:
    """The caller's environment for ./up.sh: stand-in images, free ports, the host user."""
    return compose_environment(PROJECT, {**images, "HOST_UID": str(uid), "HOST_GID": str(gid),
                                         "GENERATOR_RATE": str(generator_rate)})


@dataclass
class ComposeStack:
    """The stack in `directory`, started with `env` as the caller's environment."""

    directory: Path
    env: dict[str, str]
    # Untagged tickml images there were before ./up.sh (earlier runs may leave some).
    dangling_before: set[str] = field(default_factory=set)
    up_output: str = ""  # what the first ./up.sh printed

    def script(self, name: str, *args: str, timeout: float = 600,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run ./up.sh or ./down.sh as a user would."""
        return subprocess.run([f"./{name}", *args], cwd=self.directory, env=env or self.env,
                              capture_output=True, text=True, timeout=timeout)

    def compose(self, *args: str, timeout: float = 300,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        return compose(self.directory, self.env, *args, timeout=timeout, check=check)

    def services(self) -> dict[str, dict]:
        """`docker compose ps --all` by service: State, Health, ExitCode, ID."""
        return services(self.directory, self.env)

    def containers(self) -> list[str]:
        """Every container of the project, running or not, whoever started it."""
        out = subprocess.run(["docker", "ps", "--all", "--quiet", "--filter",
                              f"label=com.docker.compose.project={PROJECT}"],
                             capture_output=True, text=True, check=True, timeout=60).stdout
        return out.split()

    def volumes(self) -> list[str]:
        out = subprocess.run(["docker", "volume", "ls", "--quiet", "--filter",
                              f"label=com.docker.compose.project={PROJECT}"],
                             capture_output=True, text=True, check=True, timeout=60).stdout
        return out.split()

    def containers_of(self, service: str) -> list[str]:
        """The running containers of `service` (its replicas), by id, in replica order."""
        out = self.compose("ps", "--format", "{{.ID}}", service).stdout
        return out.split()

    def exec_python(self, service: str, code: str, index: int = 1) -> str:
        """Run Python code in replica `index` of a tickml service; its output."""
        return self.compose("exec", "-T", "--index", str(index), service, "python", "-c",
                            code).stdout

    def main_pid(self, service: str, container: str | None = None) -> int:
        """The host pid of a service container's main process (its first, by default)."""
        return container_pid(container or self.services()[service]["ID"])

    def url(self, port_variable: str) -> str:
        return f"http://127.0.0.1:{self.env[port_variable]}"

    def dotenv(self) -> dict[str, str]:
        """The .env ./up.sh wrote: its KEY=VALUE lines."""
        lines = (self.directory / ".env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines
                    if "=" in line and not line.lstrip().startswith("#"))

    def login(self, prefix: str) -> tuple[str, str]:
        """(user, password) of one of .env's logins, e.g. "INFLUXDB_TICKML"."""
        env = self.dotenv()
        return env[f"{prefix}_USER"], env[f"{prefix}_PASSWORD"]

    def influx(self, login: str = "INFLUXDB_TICKML", database: str = "fraud") -> InfluxClient:
        """A client of the published InfluxDB, logged in as tickml's services (by default)."""
        user, password = self.login(login)
        return InfluxClient(self.url("INFLUXDB_PORT"), database, username=user,
                            password=password)

    def remove(self) -> None:
        """Containers, networks and volumes of the project, whatever state the tests left."""
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "20", check=False,
                     timeout=300)
