"""Configuration files for a native influxd and kapacitord, bound to 127.0.0.1."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class LocalServer:
    """A server bound to 127.0.0.1 on `http_port`."""

    http_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


@dataclass(frozen=True)
class InfluxConfig(LocalServer):
    """Where one influxd keeps its files and which ports it binds."""

    directory: Path
    http_port: int = 8086
    rpc_port: int = 8088

    def render(self) -> str:
        d = self.directory
        return f"""\
reporting-enabled = false
bind-address = "127.0.0.1:{self.rpc_port}"

[meta]
  dir = "{d / 'meta'}"

[data]
  dir = "{d / 'data'}"
  wal-dir = "{d / 'wal'}"
  query-log-enabled = false

[http]
  bind-address = "127.0.0.1:{self.http_port}"
  log-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = true

[logging]
  level = "warn"
  suppress-logo = true
"""


@dataclass(frozen=True)
class KapacitorConfig(LocalServer):
    """Where one kapacitord keeps its files, its port, its InfluxDB and the UDF socket."""

    directory: Path
    influx_url: str
    udf_socket: Path
    http_port: int = 9092
    udf_timeout: str = "10s"
    subscriptions_sync: str = "10s"

    def render(self) -> str:
        d = self.directory
        return f"""\
hostname = "127.0.0.1"
data_dir = "{d}"
skip-config-overrides = true

[http]
  bind-address = "127.0.0.1:{self.http_port}"
  log-enabled = false

[replay]
  dir = "{d / 'replay'}"

[storage]
  boltdb = "{d / 'kapacitor.db'}"

[task]
  dir = "{d / 'tasks'}"

[load]
  enabled = false
  dir = "{d / 'load'}"

[logging]
  file = "STDERR"
  level = "INFO"

[reporting]
  enabled = false

[stats]
  enabled = true
  stats-interval = "10s"
  database = "_kapacitor"
  retention-policy = "autogen"

[[influxdb]]
  enabled = true
  default = true
  name = "default"
  urls = ["{self.influx_url}"]
  subscription-protocol = "http"
  # influxDBOut writes stay on this machine or network: gzip would only cost CPU.
  compression = "none"
  kapacitor-hostname = "127.0.0.1"
  http-port = {self.http_port}
  # Notice new databases quickly (the default is a minute).
  subscriptions-sync-interval = "{self.subscriptions_sync}"
  startup-timeout = "1m"

# UDFs can only be configured in this file, not through environment variables.
[udf]
[udf.functions]
  [udf.functions.fraud]
    socket = "{self.udf_socket}"
    timeout = "{self.udf_timeout}"
"""


def write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
