"""The stream as local processes on free ports, for the tests and the benchmarks.

`local_pipeline` starts the programs of `tickml.stack.programs` as plain
subprocesses (the native stack hands the same list to supervisord), each with
settings that point at the others, and stops them when the block ends.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tickml.config import Settings
from tickml.influx import InfluxClient, influx_for
from tickml.kapacitor import (
    KapacitorClient,
    define_on_every_shard,
    kapacitor_for,
    shard_clients,
)
from tickml.registry import ModelRegistry
from tickml.stack.configs import (
    InfluxConfig,
    KapacitorConfig,
    disabled_handlers,
    write_config,
)
from tickml.stack.process import Service
from tickml.stack.programs import (
    Program,
    TaskOverrides,
    free_port,
    influx_program,
    kapacitor_config_path,
    mlserver_program,
    pipeline_programs,
    port_of,
    shard_name,
    shard_socket,
    short_socket_path,
    tickml_env,
)
from tickml.stack.users import Login, StackLogins, service_settings

__all__ = ["LocalPipeline", "free_port", "local_pipeline", "start_influxd", "start_program"]


def start_program(program: Program, directory: Path, settings: Settings) -> Service:
    """Start `program` with `settings` in its environment; return it once ready."""
    service = Service(program.name, program.command, directory, ready=program.ready,
                      env=tickml_env(settings), url=program.url)
    if program.before_start is not None:
        program.before_start()
    try:
        service.start().wait_ready(program.timeout)
        if program.on_ready is not None:
            program.on_ready()
    except BaseException:
        service.stop()
        raise
    return service


def start_influxd(directory: Path, admin: Login) -> tuple[Service, InfluxConfig]:
    """influxd alone on free ports, its files under `directory`: only `admin`, no database."""
    config = influx_config(directory, free_port())
    write_config(directory / "influxdb.conf", config.render())
    program = dataclasses.replace(
        influx_program(config, directory / "influxdb.conf", "fraud", StackLogins.generated()),
        on_ready=lambda: InfluxClient(config.url, "").create_first_admin(admin.user,
                                                                         admin.password))
    return start_program(program, directory, Settings(root=directory)), config


def influx_config(directory: Path, http_port: int) -> InfluxConfig:
    """influxd's files under `directory/influxdb`, HTTP on `http_port`, RPC on a free port."""
    return InfluxConfig(directory / "influxdb", http_port=http_port, rpc_port=free_port())


def _running(name: str) -> property:
    """A read-only attribute for the running service of program `name`."""
    return property(lambda pipeline: pipeline.services[name])


@dataclass
class LocalPipeline:
    """A running stream on free ports: influxd → kapacitord → agent → API.

    `settings` point at these services and log in as tickml's services, so a
    tickml command started with `tickml_env(settings)` talks to them; `logins`
    holds every login of this throw-away stack.
    """

    settings: Settings
    directory: Path
    programs: dict[str, Program]
    services: dict[str, Service]
    logins: StackLogins
    task_overrides: TaskOverrides = field(default_factory=dict)
    influx: InfluxClient = field(init=False)
    kapacitor: KapacitorClient = field(init=False)

    def __post_init__(self) -> None:
        # The clients log in as tickml's services do.
        self.influx = influx_for(self.settings)
        self.kapacitor = kapacitor_for(self.settings)

    # The running services by role; `restart` replaces them.
    influxd = _running("influxd")
    api = _running("api")
    agent = _running("udf")
    kapacitord = _running("kapacitord")

    @property
    def alert_log(self) -> Path:
        return Path(self.settings.alert_log)

    def restart(self, name: str) -> None:
        """Start program `name` again with its old settings (after it died or was stopped)."""
        self.services[name] = start_program(self.programs[name], self.directory, self.settings)

    def restart_api(self) -> None:
        """Start the API again on its port (after `api.stop()`)."""
        self.restart("api")

    def restart_agent(self) -> None:
        """Start the agent again on its socket (after it died or was stopped)."""
        self.restart("udf")

    def define_tasks(self, overrides: TaskOverrides | None = None, *,
                     reset: bool = False) -> dict[str, str]:
        """Define tickml's tasks with the pipeline's variables, `overrides` on top
        (`reset`: over the user's edits, and enabled)."""
        clients = shard_clients(self.settings)
        try:
            return define_on_every_shard(clients, self.settings, self.task_overrides,
                                         overrides or {}, reset=reset)
        finally:
            for client in clients:
                client.close()

    def stop(self) -> None:
        """Stop every service, the last started first, and close the clients."""
        for service in reversed(self.services.values()):
            service.stop()
        self.influx.close()
        self.kapacitor.close()


def local_settings(settings: Settings, directory: Path, api_workers: int,
                   shards: int = 1) -> Settings:
    """`settings` moved onto free ports and files under `directory`."""
    api_port = free_port()
    kapacitors = [f"http://127.0.0.1:{free_port()}" for _ in range(shards)]
    return dataclasses.replace(
        settings,
        influx_url=f"http://127.0.0.1:{free_port()}",
        kapacitor_url=kapacitors[0],
        shards=shards,
        kapacitor_shard_urls=",".join(kapacitors) if shards > 1 else "",
        api_bind=f"127.0.0.1:{api_port}",
        api_url=f"http://127.0.0.1:{api_port}",
        api_workers=api_workers,
        api_reload_interval=0.5,
        udf_socket=short_socket_path(directory),
        alert_log=str(directory / "alerts.log"),
    )


def mlserver_backend(settings: Settings, directory: Path) -> tuple[Program, Settings]:
    """MLServer on free ports for `settings`' registry, and the settings scoring there."""
    model = ModelRegistry(settings.models_dir).require_production().name
    program = mlserver_program(settings, directory / "mlserver", free_port(), free_port(),
                               model)
    return program, dataclasses.replace(
        settings, scoring_url=f"{program.url}/v2/models/{model}/infer")


@contextmanager
def local_pipeline(
    settings: Settings,
    directory: Path,
    *,
    task_overrides: TaskOverrides | None = None,
    api_workers: int = 1,
    allowed_api_paths: Iterable[str] = (),
    shards: int = 1,
    backend: str = "tickml",
) -> Iterator[LocalPipeline]:
    """Start the whole stream for `settings`' model and define tickml's tasks.

    The tasks come from `settings.kapacitor_scripts` with `task_overrides` on top;
    alerts are logged to `directory/alerts.log`. A task's `.url()` may name the
    pipeline's API, or that API's URL followed by one of `allowed_api_paths` (such as
    its V2 endpoint, `/v2/models/<name>/infer`), which join TICKML_UDF_ALLOWED_URLS.
    With `shards` above 1 the stream runs on that many Kapacitor + agent pairs, fed by
    tickml's ANY subscription. With `backend` "mlserver" the agents and rescore score
    against MLServer's V2 endpoint (the API runs too). Services start in dependency order
    and are stopped when the block ends, whatever happens inside it.
    """
    logins = StackLogins.generated()
    settings = service_settings(local_settings(settings, directory, api_workers, shards),
                                logins)
    allowed = [settings.udf_allowed_urls] if settings.udf_allowed_urls else []
    allowed += [settings.api_url + path for path in allowed_api_paths]
    settings = dataclasses.replace(settings, udf_allowed_urls=",".join(allowed))
    overrides = dict(task_overrides or {})
    influx = influx_config(directory, port_of(settings.influx_url))
    kapacitors = [KapacitorConfig(directory / shard_name("kapacitor", shard),
                                  influx_url=influx.url,
                                  udf_socket=shard_socket(settings.udf_socket, shard),
                                  http_port=port_of(url),
                                  influx_user=logins.influx_admin.user,
                                  influx_password=logins.influx_admin.password,
                                  disabled_handlers=disabled_handlers(settings.kapacitor_scripts),
                                  sharded=shards > 1,
                                  hostname="127.0.0.1" if shard == 0 else f"shard-{shard + 1}")
                  for shard, url in enumerate(settings.kapacitor_urls)]
    write_config(directory / "influxdb.conf", influx.render())
    for shard, kapacitor in enumerate(kapacitors):
        write_config(kapacitor_config_path(directory, shard), kapacitor.render())
        kapacitor.udf_socket.unlink(missing_ok=True)
    model_server = None
    if backend == "mlserver":
        model_server, settings = mlserver_backend(settings, directory)
    programs = {}
    for program in pipeline_programs(settings, logins, influx, kapacitors, directory,
                                     overrides):
        programs[program.name] = program
        if program.name == "api" and model_server is not None:
            programs[model_server.name] = model_server
    pipeline = LocalPipeline(settings, directory, programs, {}, logins, overrides)
    try:
        for name in programs:
            pipeline.restart(name)
        yield pipeline
    finally:
        pipeline.stop()
