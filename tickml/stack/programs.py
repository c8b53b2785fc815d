"""The programs of the pipeline: how each one is started, checked and followed up.

One list serves every launcher: the native stack hands it to supervisord, the
local pipeline of the tests and benchmarks starts it as plain subprocesses. A
program's command comes from the settings alone, so both launch the same thing
a container runs.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tickml.config import ENV_PREFIX, Settings
from tickml.influx import SUBSCRIPTION_WAIT_SECONDS, InfluxClient
from tickml.kapacitor import (
    KapacitorClient,
    VarValue,
    define_tickml_tasks,
    kapacitor_for,
    shard_task_ids,
)
from tickml.stack.binaries import find_binary
from tickml.stack.configs import InfluxConfig, KapacitorConfig
from tickml.stack.users import StackLogins, provision_influx, provision_kapacitor
from tickml.subscriptions import Dropped, keep_stream_subscription

TaskOverrides = dict[str, dict[str, VarValue]]


def tickml_command() -> str:
    """The `tickml` console script of this environment."""
    beside_python = Path(sys.executable).with_name("tickml")
    return str(beside_python) if beside_python.exists() else shutil.which("tickml") or "tickml"


TICKML = tickml_command()


@dataclass(frozen=True)
class Program:
    """One long-running process: its command, its readiness check, and what follows it.

    Attributes:
        on_ready: run once the program is ready (create the database and the users,
            define the tasks); returns a line worth reporting, or None.
        before_start: run before the program starts (Kapacitor's users).
    """

    name: str
    command: list[str]
    ready: Callable[[], bool]
    timeout: float = 90.0
    on_ready: Callable[[], str | None] | None = None
    url: str = ""  # where an HTTP program answers, when it is one
    before_start: Callable[[], None] | None = None  # run each time before it starts
    env: dict[str, str] = field(default_factory=dict)  # its own variables, beyond the stack's


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_ok(url: str) -> bool:
    """True when `url` answers with a 2xx status within a second."""
    try:
        return requests.get(url, timeout=1).status_code < 300
    except requests.RequestException:
        return False


def socket_accepts(path: Path) -> bool:
    """True when something accepts connections on the unix socket `path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def short_socket_path(directory: Path) -> Path:
    """Unix socket paths are limited to 107 bytes; pytest's tmp paths can be longer."""
    path = directory / "fraud.sock"
    if len(str(path)) < 100:
        return path
    short = Path(f"/tmp/tickml-{os.getpid()}-{free_port()}")
    short.mkdir()
    return short / "fraud.sock"


def port_of(url_or_bind: str) -> int:
    """The port of `http://host:port` or `host:port`."""
    return int(url_or_bind.rstrip("/").rsplit(":", 1)[1])


def influx_program(config: InfluxConfig, config_path: Path, database: str,
                   logins: StackLogins) -> Program:
    """influxd with `config`; once it answers /ping, the admin, `database` and the users exist.

    /ping is the one endpoint InfluxDB answers without a login.
    """
    def provision() -> None:
        provision_influx(config.url, database, logins)

    return Program("influxd", [str(find_binary("influxd")), "run", "-config", str(config_path)],
                   lambda: http_ok(f"{config.url}/ping"), on_ready=provision, url=config.url)


def api_program(settings: Settings, *extra_args: str, ready_path: str = "/ready") -> Program:
    """`tickml serve` on `settings.api_bind`, ready once `ready_path` answers 2xx."""
    command = [TICKML, "serve", "--bind", settings.api_bind,
               "--workers", str(settings.api_workers), *extra_args]
    return Program("api", command, lambda: http_ok(f"{settings.api_url}{ready_path}"),
                   url=settings.api_url)


def mlserver_program(settings: Settings, folder: Path, http_port: int, grpc_port: int,
                     model: str) -> Program:
    """MLServer serving the registry's production model through tickml's runtime
    (`tickml mlserver serve`), ready once it says `model` is ready."""
    url = f"http://127.0.0.1:{http_port}"
    command = [TICKML, "mlserver", "serve", str(folder), "--models-dir",
               str(settings.models_dir), "--http-port", str(http_port), "--grpc-port",
               str(grpc_port)]
    return Program("mlserver", command, lambda: http_ok(f"{url}/v2/models/{model}/ready"),
                   timeout=180, url=url)


def shard_name(name: str, shard: int) -> str:
    """A shard's program or file name: `udf` for the first shard, `udf-2` for the second."""
    return name if shard == 0 else f"{name}-{shard + 1}"


def shard_socket(socket_path: Path, shard: int) -> Path:
    """The agent socket of shard `shard` (0 is the first): fraud.sock, fraud-2.sock, ..."""
    return socket_path.with_name(shard_name(socket_path.stem, shard) + socket_path.suffix)


def udf_program(settings: Settings, shard: int = 0) -> Program:
    """`tickml udf` on the shard's socket, ready once the socket accepts connections."""
    socket_path = shard_socket(settings.udf_socket, shard)
    return Program(shard_name("udf", shard), [TICKML, "udf", "--socket", str(socket_path),
                                              "--api-url", settings.score_url],
                   lambda: socket_accepts(socket_path))


def kapacitor_program(config: KapacitorConfig, config_path: Path, settings: Settings,
                      logins: StackLogins, *overrides: TaskOverrides, shard: int = 0,
                      keeps_subscription: bool = True) -> Program:
    """kapacitord with `config` and its users; once it answers /ping, the shard's tasks are
    defined, and (`keeps_subscription`, the last shard to start) InfluxDB's subscription
    feeding the stream is made or mended.

    `settings` carry the login the readiness check and the task definitions use.
    """
    def create_users() -> None:
        provision_kapacitor(config, logins, config_path.parent, free_port())

    def define() -> str:
        kapacitor = kapacitor_for(settings, config.url)
        try:
            actions = define_tickml_tasks(kapacitor, settings, *overrides,
                                          task_ids=shard_task_ids(shard))
            said = "tasks: " + ", ".join(f"{k} {v}" for k, v in actions.items())
            if keeps_subscription:
                said += "".join(f"; {d.describe()}" for d in keep_subscription(kapacitor))
        finally:
            kapacitor.close()
        return said

    def keep_subscription(kapacitor: KapacitorClient) -> tuple[Dropped, ...]:
        admin = InfluxClient(config.influx_url, settings.influx_db,
                             username=logins.influx_admin.user,
                             password=logins.influx_admin.password)
        try:
            return keep_stream_subscription(admin, settings, kapacitor,
                                            timeout=SUBSCRIPTION_WAIT_SECONDS).dropped
        finally:
            admin.close()

    return Program(shard_name("kapacitord", shard),
                   config.command(find_binary("kapacitord"), config_path),
                   kapacitor_for(settings, config.url).ping, timeout=150, on_ready=define,
                   url=config.url, before_start=create_users)


def pipeline_programs(settings: Settings, logins: StackLogins, influx: InfluxConfig,
                      kapacitors: list[KapacitorConfig], configs_dir: Path,
                      *overrides: TaskOverrides) -> list[Program]:
    """The stream in dependency order: influxd, the API, then each shard's agent and kapacitord.

    An agent comes before its kapacitord, which refuses to start without its socket; the
    database before kapacitord, so it subscribes at startup. `configs_dir` holds
    `influxdb.conf` and `kapacitor.conf` (`kapacitor-2.conf`, ... for more shards);
    `settings` log in as tickml's services.
    """
    programs = [influx_program(influx, configs_dir / "influxdb.conf", settings.influx_db,
                               logins),
                api_program(settings)]
    for shard, kapacitor in enumerate(kapacitors):
        programs += [udf_program(settings, shard),
                     kapacitor_program(kapacitor, kapacitor_config_path(configs_dir, shard),
                                       settings, logins, *overrides, shard=shard,
                                       keeps_subscription=shard == len(kapacitors) - 1)]
    return programs


def kapacitor_config_path(configs_dir: Path, shard: int) -> Path:
    return configs_dir / f"{shard_name('kapacitor', shard)}.conf"


def tickml_env(settings: Settings) -> dict[str, str]:
    """The `TICKML_*` variables that give a tickml subprocess these very settings."""
    env = {}
    for name, value in vars(settings).items():
        if value is not None and value != "":
            env[f"{ENV_PREFIX}{name.upper()}"] = str(value)
    return env
