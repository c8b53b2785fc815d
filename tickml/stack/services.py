"""Starting the pieces of the pipeline as local processes bound to 127.0.0.1.

influxd and kapacitord get rendered configs under the given directory; the model
API (`tickml serve`) and the UDF agent (`tickml udf`) run as the same commands a
container runs. Used by the native stack, the benchmarks and the tests.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

import requests

from tickml.config import Settings
from tickml.influx import InfluxClient
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
