"""The stack a soak runs against: the native one under supervisord, in a throw-away folder.

It runs the project's dataset and a copy of its model registry (a promotion during the
soak must not change the user's production model), on free ports, with fresh logins.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import psutil

from tickml import schema
from tickml.bench.faults import SoakTarget
from tickml.config import Settings
from tickml.data.prepare import load_split
from tickml.generator import transaction_lines
from tickml.influx import InfluxClient, InfluxError, WriteRefused, influx_for
from tickml.kapacitor import KapacitorClient, kapacitor_for
from tickml.modeling.train import train_default_model
from tickml.registry import ModelRef, ModelRegistry
from tickml.stack.native import NativeStack, throwaway_environment
from tickml.stack.users import StackLogins

#: Programs whose memory the soak follows, with the processes it samples for each.
PROGRAMS = ("influxd", "kapacitord", "udf", "api", "watchdog", "generator")
#: Bad points of a `write_bad_points` call, each with the reason its scored point carries.
BAD_REASONS = {"string": "non-numeric feature V3", "missing": "missing feature V14",
               "huge": "out-of-range feature Amount"}
#: A tag value of 64 KiB: InfluxDB refuses a series key that long at the write.
LONG_TAG = "x" * 65536


def registry_with_two_models(project: Settings, settings: Settings) -> ModelRegistry:
    """A copy of the project's registry holding at least two versions to promote between."""
    shutil.copytree(project.models_dir, settings.models_dir, dirs_exist_ok=True)
    registry = ModelRegistry(settings.models_dir)
    if registry.production() is None:
        raise RuntimeError(f"no production model in {project.models_dir}: run tickml train")
    if len(registry.versions(registry.production().name)) < 2:
        train_default_model(settings, params={"n_estimators": 40}, promote=False)
    return registry


class SoakStack(SoakTarget, Protocol):
    """A running stack a soak drives: what the faults need, and what the judging reads."""

    bad: dict[str, str]  # every malformed point written so far: id -> its expected reason

    @property
    def settings(self) -> Settings:
        """The stack's settings, logged in as tickml's services."""

    def processes(self, name: str) -> list[psutil.Process]:
        """Program `name`'s processes (with children), as the host sees them."""

    def stop_generator(self) -> None:
        """Stop the generator; it sends what it still holds first."""

    def udf_connections(self) -> int:
        """The UDF connections kapacitord holds now."""

    def collect_logs(self) -> Path:
        """The folder with every program's log, `<program>.log`, up to now."""


class SoakFaults:
    """What the faults do to a stack that knows each program's main pid (`pid`), its
    settings, its registry copy and the rows to write: signals, task requests, promotions
    and malformed points."""

    settings: Settings
    registry: ModelRegistry
    rows: pd.DataFrame
    rng: np.random.Generator
    bad: dict[str, str]

    def pid(self, name: str) -> int:
        raise NotImplementedError

    def kapacitor(self) -> KapacitorClient:
        return kapacitor_for(self.settings)

    def promote_another_model(self) -> str:
        return promote_another_model(self.registry)

    def write_bad_points(self) -> dict[str, str]:
        written = write_bad_points(self.settings, self.rows, self.rng)
        self.bad.update(written)
        return written

    def udf_connections(self) -> int:
        return udf_connections(self.pid("kapacitord"))

    def processes(self, name: str) -> list[psutil.Process]:
        """Program `name`'s process and its children (the API's workers)."""
        try:
            main = psutil.Process(self.pid(name))
            return [main, *main.children(recursive=True)]
        except (psutil.Error, ValueError):
            return []

    def api_worker_pids(self) -> list[int]:
        """The API server's workers: its own children."""
        try:
            return [child.pid for child in psutil.Process(self.pid("api")).children()]
        except (psutil.Error, ValueError):
            return []

    def send(self, name: str, signum: int, with_children: bool = False) -> None:
        targets = self.processes(name) if with_children else self.processes(name)[:1]
        for process in targets:
            with suppress(psutil.NoSuchProcess):  # refused (not ours) is the fault's error
                process.send_signal(signum)


@dataclass
class NativeSoakStack(SoakFaults):
    """The native stack of a soak, and what the faults do to it."""

    stack: NativeStack
    logins: StackLogins
    registry: ModelRegistry
    rows: pd.DataFrame
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    # Every malformed point written so far: transaction id -> the reason it must carry.
    bad: dict[str, str] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        """The stack's settings, logged in as tickml's services."""
        return self.stack.service_settings

    def collect_logs(self) -> Path:
        return self.stack.logs

    def pid(self, name: str) -> int:
        return int(self.stack.call("getProcessInfo", name)["pid"])

    def up_again(self) -> None:
        self.stack.up(report=lambda _: None)

    def stop_generator(self) -> None:
        """Stop the generator; it sends what it still holds first."""
        self.stack.call("stopProcess", "generator")


def promote_another_model(registry: ModelRegistry) -> str:
    """Promote the newest version of the production model's name that is not production."""
    current = registry.production()
    others = [ref for ref in registry.versions(current.name) if ref != current]
    chosen: ModelRef = others[-1]
    registry.promote(chosen)
    return f"{chosen.name} v{chosen.version}"


def write_bad_points(settings: Settings, rows: pd.DataFrame,
                     rng: np.random.Generator) -> dict[str, str]:
    """Twenty good transactions with one of each malformed kind among them.

    Returns the expected reason of each malformed one that InfluxDB accepted or
    forwarded, by transaction id; the 64 KiB tag value is refused at the write (its
    writer hears it) and so never becomes a transaction.
    """
    sample = rows.sample(24, random_state=int(rng.integers(1 << 31)))
    lines = transaction_lines(sample, time.time_ns(), tags={"source": "soak-bad"},
                              spacing_ns=1000)
    ids = [line.split(f'{schema.TRANSACTION_ID}="', 1)[1].split('"', 1)[0] for line in lines]
    lines[3] = _with_field(lines[3], "V3", '"abc"')
    lines[7] = _with_field(lines[7], "V14", None)
    lines[11] = _with_field(lines[11], "Amount", repr(float(np.finfo(np.float64).max)))
    lines[15] = lines[15].replace("source=soak-bad", "source=soak-bad,card=sparse", 1)
    lines[19] = lines[19].replace("source=soak-bad", f"source=soak-bad,note={LONG_TAG}", 1)
    influx = influx_for(settings)
    try:
        write_through_outage(influx, lines)
    finally:
        influx.close()
    return {ids[3]: BAD_REASONS["string"], ids[7]: BAD_REASONS["missing"],
            ids[11]: BAD_REASONS["huge"]}


def write_through_outage(influx: InfluxClient, lines: list[str], patience: float = 60.0) -> None:
    """Write `lines`, waiting out an InfluxDB that is down (another fault) as a writer would.

    A refusal of some lines (400) is the malformed points' due: InfluxDB stored the
    others, and its subscription forwards what it parsed.
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            influx.write_lines(lines)
            return
        except WriteRefused:
            return
        except InfluxError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def _with_field(line: str, name: str, literal: str | None) -> str:
    """A transaction line with field `name` (never the first) set to `literal`, or removed."""
    head, rest = line.split(f",{name}=", 1)
    tail = rest.split(",", 1)[1]
    return f"{head},{tail}" if literal is None else f"{head},{name}={literal},{tail}"


@contextmanager
def native_soak_stack(project: Settings, directory: Path, rate: float
                      ) -> Iterator[NativeSoakStack]:
    """The native stack in `directory`, its generator at `rate`, stopped when the block ends."""
    logins = StackLogins.generated()
    environment = throwaway_environment(directory, project, logins,
                                        models_dir=directory / "models")
    saved = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)  # supervisord and its programs inherit them
    try:
        settings = Settings.from_env(dotenv=False)
        registry = registry_with_two_models(project, settings)
        stack = NativeStack(settings, generator_rate=rate, fraud_share=0.02, logins=logins)
        try:
            stack.up(report=lambda _: None)
            yield NativeSoakStack(stack, logins, registry, load_split(project, "test"))
        finally:
            stack.down()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def admin_influx(soak: NativeSoakStack) -> InfluxClient:
    admin = soak.logins.influx_admin
    return InfluxClient(soak.settings.influx_url, soak.settings.influx_db,
                        username=admin.user, password=admin.password)


def udf_connections(kapacitord_pid: int) -> int:
    """Unix-domain sockets kapacitord holds: one per UDF node of a running task. Read from
    its own network namespace, which in a container is not the caller's."""
    table = Path(f"/proc/{kapacitord_pid}/net/unix")
    inodes = {line.split()[6] for line in table.read_text().splitlines()[1:]}
    count = 0
    for descriptor in Path(f"/proc/{kapacitord_pid}/fd").iterdir():
        try:
            target = descriptor.readlink().name
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            count += 1
    return count
