"""Real services for tests: influxd, kapacitord, the model API and the UDF agent.

Each runs as a subprocess bound to 127.0.0.1 on a free port, logs into the test's
directory and is stopped by the fixture that started it.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import requests

from tickml.config import Settings
from tickml.influx import InfluxClient
from tickml.kapacitor import KapacitorClient
from tickml.stack.binaries import find_binary
from tickml.stack.configs import InfluxConfig, KapacitorConfig, write_config
from tickml.stack.process import Service

TICKML = shutil.which("tickml") or "tickml"


def free_port() -> int:
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
    return {"TICKML_ROOT": str(settings.root), "TICKML_MODELS_DIR": str(settings.models_dir),
            "TICKML_DATA_DIR": str(settings.data_dir), **extra}


def start_influxd(directory: Path) -> tuple[Service, InfluxConfig]:
    config = InfluxConfig(directory / "influxdb", http_port=free_port(), rpc_port=free_port())
    path = write_config(directory / "influxdb.conf", config.render())
    service = Service("influxd", [str(find_binary("influxd")), "run", "-config", str(path)],
                      directory, ready=lambda: http_ok(f"{config.url}/ping"))
    return service.start().wait_ready(60), config


def start_api(settings: Settings, directory: Path, port: int | None = None) -> Service:
    port = port or free_port()
    service = Service(
        "api", [TICKML, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        directory, ready=lambda: http_ok(f"http://127.0.0.1:{port}/ready"),
        env=tickml_env(settings, TICKML_API_RELOAD_INTERVAL="0.5"),
    )
    service.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return service.start().wait_ready(90)


def start_agent(settings: Settings, directory: Path, socket_path: Path, api_url: str) -> Service:
    socket_path.unlink(missing_ok=True)
    service = Service(
        "udf", [TICKML, "udf", "--socket", str(socket_path), "--api-url", api_url],
        directory, ready=lambda: socket_accepts(socket_path), env=tickml_env(settings),
    )
    return service.start().wait_ready(60)


def start_kapacitord(directory: Path, influx_url: str, socket_path: Path
                     ) -> tuple[Service, KapacitorConfig]:
    config = KapacitorConfig(directory / "kapacitor", influx_url=influx_url,
                             udf_socket=socket_path, http_port=free_port())
    path = write_config(directory / "kapacitor.conf", config.render())
    service = Service("kapacitord",
                      [str(find_binary("kapacitord")), "run", "-config", str(path)], directory,
                      ready=lambda: KapacitorClient(config.url).ping())
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
