"""Starting the pieces of the pipeline as local processes bound to 127.0.0.1.

influxd and kapacitord get rendered configs under the given directory; the model
API (`tickml serve`) and the UDF agent (`tickml udf`) run as the same commands a
container runs. Used by the native stack, the benchmarks and the tests.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tickml.config import Settings
from tickml.influx import InfluxClient
from tickml.kapacitor import KapacitorClient, VarValue, define_tickml_tasks
from tickml.stack.binaries import find_binary
from tickml.stack.configs import InfluxConfig, KapacitorConfig, write_config
from tickml.stack.process import Service


def tickml_command() -> str:
    """The `tickml` console script of this environment."""
    beside_python = Path(sys.executable).with_name("tickml")
    return str(beside_python) if beside_python.exists() else shutil.which("tickml") or "tickml"


TICKML = tickml_command()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code < 300
    except requests.RequestException:
        return False


def socket_accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def tickml_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment that points a tickml subprocess at `settings`' folders."""
    return {"TICKML_ROOT": str(settings.root), "TICKML_MODELS_DIR": str(settings.models_dir),
            "TICKML_DATA_DIR": str(settings.data_dir), **extra}


def start_influxd(directory: Path) -> tuple[Service, InfluxConfig]:
    """influxd on free ports, its files under `directory/influxdb`, once it answers /ping."""
    config = InfluxConfig(directory / "influxdb", http_port=free_port(), rpc_port=free_port())
    path = write_config(directory / "influxdb.conf", config.render())
    service = Service("influxd", [str(find_binary("influxd")), "run", "-config", str(path)],
                      directory, ready=lambda: http_ok(f"{config.url}/ping"), url=config.url)
    return service.start().wait_ready(60), config


def start_api(settings: Settings, directory: Path, port: int | None = None,
              workers: int = 1) -> Service:
    """`tickml serve` for `settings`' registry, once /ready answers (a model is loaded)."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    service = Service(
        "api", [TICKML, "serve", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)],
        directory, ready=lambda: http_ok(f"{url}/ready"),
        env=tickml_env(settings, TICKML_API_RELOAD_INTERVAL="0.5"), url=url,
    )
    return service.start().wait_ready(90)


def start_agent(settings: Settings, directory: Path, socket_path: Path, api_url: str,
                extra_args: list[str] | None = None) -> Service:
    """`tickml udf` on `socket_path`, once the socket accepts connections."""
    socket_path.unlink(missing_ok=True)
    service = Service(
        "udf", [TICKML, "udf", "--socket", str(socket_path), "--api-url", api_url,
                  *(extra_args or [])],
        directory, ready=lambda: socket_accepts(socket_path), env=tickml_env(settings),
    )
    return service.start().wait_ready(60)


def start_kapacitord(directory: Path, influx_url: str, socket_path: Path
                     ) -> tuple[Service, KapacitorConfig]:
    """kapacitord with the `fraud` UDF on `socket_path` (the agent must already listen)."""
    config = KapacitorConfig(directory / "kapacitor", influx_url=influx_url,
                             udf_socket=socket_path, http_port=free_port())
    path = write_config(directory / "kapacitor.conf", config.render())
    service = Service("kapacitord",
                      [str(find_binary("kapacitord")), "run", "-config", str(path)], directory,
                      ready=lambda: http_ok(f"{config.url}/kapacitor/v1/ping"), url=config.url)
    return service.start().wait_ready(120), config


def influx_client(config: InfluxConfig, database: str = "fraud") -> InfluxClient:
    return InfluxClient(config.url, database)


def short_socket_path(directory: Path) -> Path:
    """Unix socket paths are limited to 107 bytes; pytest's tmp paths can be longer."""
    path = directory / "fraud.sock"
    if len(str(path)) < 100:
        return path
    short = Path(f"/tmp/tickml-{os.getpid()}-{free_port()}")
    short.mkdir()
    return short / "fraud.sock"


@dataclass
class LocalPipeline:
    """A running stream on free ports: influxd → kapacitord → agent → API."""

    settings: Settings
    directory: Path
    influxd: Service
    api: Service
    agent: Service
    kapacitord: Service
    influx: InfluxClient
    kapacitor: KapacitorClient
    socket_path: Path
    task_overrides: Mapping[str, Mapping[str, VarValue]] = field(default_factory=dict)

    @property
    def alert_log(self) -> Path:
        return Path(self.settings.alert_log)

    def define_tasks(self, overrides: Mapping[str, Mapping[str, VarValue]] | None = None
                     ) -> dict[str, str]:
        """Define tickml's tasks with the pipeline's variables, `overrides` on top."""
        return define_tickml_tasks(self.kapacitor, self.settings, self.task_overrides,
                                   overrides or {})

    def restart_api(self) -> None:
        """Start the API again on its old port (after `api.stop()`)."""
        port = int(self.api.url.rsplit(":", 1)[1])
        self.api = start_api(self.settings, self.directory, port)

    def restart_agent(self) -> None:
        """Start the agent again on its socket (after it died or was stopped)."""
        self.agent = start_agent(self.settings, self.directory, self.socket_path, self.api.url)

    def stop(self) -> None:
        for service in (self.kapacitord, self.agent, self.api, self.influxd):
            service.stop()
        self.influx.close()
        self.kapacitor.close()


@contextmanager
def local_pipeline(
    settings: Settings,
    directory: Path,
    *,
    task_overrides: Mapping[str, Mapping[str, VarValue]] | None = None,
    api_workers: int = 1,
) -> Iterator[LocalPipeline]:
    """Start the whole stream for `settings`' model and define tickml's tasks.

    The tasks come from `settings.kapacitor_scripts` with `task_overrides` on top;
    alerts are logged to `directory/alerts.log`.

    Services start in dependency order (the agent before kapacitord, which needs its
    socket; the database before kapacitord, so it subscribes at startup) and are
    stopped when the block ends, whatever happens inside it.
    """
    settings = dataclasses.replace(settings, alert_log=str(directory / "alerts.log"))
    started: list[Service] = []
    try:
        influxd, influx_config = start_influxd(directory)
        started.append(influxd)
        influx = influx_client(influx_config, settings.influx_db)
        influx.create_database()
        api = start_api(settings, directory, workers=api_workers)
        started.append(api)
        socket_path = short_socket_path(directory)
        agent = start_agent(settings, directory, socket_path, api.url)
        started.append(agent)
        kapacitord, kapacitor_config = start_kapacitord(directory, influx_config.url,
                                                        socket_path)
        started.append(kapacitord)
        pipeline = LocalPipeline(settings, directory, influxd, api, agent, kapacitord, influx,
                                 KapacitorClient(kapacitor_config.url), socket_path,
                                 dict(task_overrides or {}))
        pipeline.define_tasks()
        started.clear()  # from here on the pipeline stops its own, possibly restarted, services
        try:
            yield pipeline
        finally:
            pipeline.stop()
    finally:
        for service in reversed(started):
            service.stop()
