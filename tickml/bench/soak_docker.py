"""The Compose stack a soak runs against: a throw-away copy of the project, started by its
own ./up.sh under the Compose project `tickml-soak`, on free ports, removed afterwards.

The copy holds the project's dataset and a copy of its model registry (a promotion during
the soak must not change the user's production model). Faults reach the containers'
processes from the host, by their host pids, as a crash or a freeze would; Compose's
restart policy brings a killed service back.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from tickml.config import Settings
from tickml.data.prepare import load_split
from tickml.registry import ModelRegistry
from tickml.stack.compose import (
    check_compose,
    compose,
    compose_environment,
    container_pid,
    copy_project,
    project_checkout,
    services,
)

from .soak_stack import (
    SoakFaults,
    registry_with_two_models,
)

#: The Compose project of a soak, so a user's own `tickml` stack is never touched.
SOAK_PROJECT = "tickml-soak"
#: The service each program of the soak runs in.
SERVICES = {"influxd": "influxdb", "kapacitord": "kapacitor", "udf": "udf", "api": "api",
            "watchdog": "watchdog", "generator": "generator"}
UP_TIMEOUT = 1800.0
#: How long the services' pids are taken as known (the memory sampler asks often).
PID_CACHE_SECONDS = 1.0


@dataclass
class DockerSoakStack(SoakFaults):
    """The Compose stack of a soak, and what the faults do to it."""

    directory: Path
    env: dict[str, str]
    registry: ModelRegistry
    rows: pd.DataFrame
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    bad: dict[str, str] = field(default_factory=dict)

    # (when, {service: its main process's host pid}), asked of Compose at most once a second.
    _pids: tuple[float, dict[str, int]] = field(default=(0.0, {}), init=False, repr=False)

    @cached_property
    def settings(self) -> Settings:
        """The published stack, logged in as tickml's services: the copy's .env, and the
        ports its ./up.sh was given."""
        return Settings.from_env({**self.env, "TICKML_ROOT": str(self.directory)})

    def pid(self, name: str) -> int:
        asked, pids = self._pids
        if time.monotonic() - asked > PID_CACHE_SECONDS:
            pids = {service: container_pid(row["ID"])
                    for service, row in services(self.directory, self.env).items()
                    if row.get("State") == "running"}
            self._pids = (time.monotonic(), pids)
        return pids.get(SERVICES[name], 0)

    def up_again(self) -> None:
        up_sh(self.directory, self.env)

    def stop_generator(self) -> None:
        compose(self.directory, self.env, "stop", "generator", timeout=120)

    def collect_logs(self) -> Path:
        """Each program's container log, in `logs/<program>.log` of the copy."""
        logs = self.directory / "logs"
        logs.mkdir(exist_ok=True)
        for program, service in SERVICES.items():
            out = compose(self.directory, self.env, "logs", "--no-log-prefix", service,
                          check=False, timeout=300)
            (logs / f"{program}.log").write_text(out.stdout + out.stderr)
        return logs


def up_sh(directory: Path, env: dict[str, str]) -> None:
    """./up.sh in the copy, as a user runs it; its output in the error when it fails."""
    result = subprocess.run(["./up.sh", "--without-dashboards"], cwd=directory, env=env,
                            capture_output=True, text=True, timeout=UP_TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"./up.sh failed ({result.returncode}): "
                           f"{(result.stdout + result.stderr)[-3000:]}")


@contextmanager
def docker_soak_stack(project: Settings, directory: Path, rate: float
                      ) -> Iterator[DockerSoakStack]:
    """The Compose stack in a copy of the project in `directory`, its generator at `rate`;
    its containers and volumes removed when the block ends."""
    check_compose()
    copy = copy_project(project_checkout(project.root), directory / "tickml",
                        project.data_dir, project.models_dir)
    registry = registry_with_two_models(project, Settings(root=copy))
    env = compose_environment(SOAK_PROJECT, {"GENERATOR_RATE": f"{rate:g}",
                                             "GENERATOR_FRAUD_SHARE": "0.02"})
    try:
        up_sh(copy, env)
        yield DockerSoakStack(copy, env, registry, load_split(project, "test"))
    finally:
        compose(copy, env, "down", "--volumes", "--remove-orphans", "--timeout", "20",
                check=False, timeout=300)
