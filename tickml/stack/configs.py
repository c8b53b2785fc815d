"""Configuration files for a native influxd and kapacitord, bound to 127.0.0.1.

Both require a login on every HTTP request (`tickml.stack.users` creates the users).
"""

from __future__ import annotations

import os
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
  auth-enabled = true
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
    # Kapacitor's InfluxDB login: an admin, as creating subscriptions needs one.
    influx_user: str = ""
    influx_password: str = ""
    # Only to create users: HTTP authentication off, no UDF, subscriptions left alone.
    bootstrap: bool = False
    # Alert handlers no task may use, comma-separated (see `disabled_handlers`).
    disabled_handlers: str = ""
    # One shard of several: tickml's own subscription feeds it, Kapacitor makes none.
    sharded: bool = False
    hostname: str = "127.0.0.1"  # names it in Kapacitor's statistics

    def command(self, kapacitord: Path, config_path: Path) -> list[str]:
        """kapacitord's command line for this config, written at `config_path`."""
        flags = ["-disable-handlers", self.disabled_handlers] if self.disabled_handlers else []
        return [str(kapacitord), "run", "-config", str(config_path), *flags]

    def render(self) -> str:
        d = self.directory
        text = f"""\
hostname = "{self.hostname}"
data_dir = "{d}"
skip-config-overrides = true

[http]
  bind-address = "127.0.0.1:{self.http_port}"
  auth-enabled = {str(not self.bootstrap).lower()}
  log-enabled = false

# Kapacitor's own user store; InfluxDB's subscription logs in with a token it grants.
[auth]
  enabled = true
  cache-expiration = "10m"
  bcrypt-cost = 10

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
  enabled = {str(not self.bootstrap).lower()}
  stats-interval = "10s"
  database = "_kapacitor"
  retention-policy = "autogen"
"""
        return text + self._influxdb_section() + ("" if self.bootstrap else self._udf_section())

    def _influxdb_section(self) -> str:
        # The bootstrap keeps this InfluxDB configured, with its subscriptions left alone:
        # a kapacitord that starts without it revokes the subscription's token, and the
        # real one, seeing a subscription that still names it, keeps it, so InfluxDB's
        # writes are refused ("invalid subscription token") and the stream gets nothing.
        return f"""
[[influxdb]]
  enabled = true
  default = true
  name = "default"
  urls = ["{self.influx_url}"]
  username = "{self.influx_user}"
  password = "{self.influx_password}"
  disable-subscriptions = {str(self.bootstrap or self.sharded).lower()}
  subscription-protocol = "http"
  # influxDBOut writes stay on this machine or network: gzip would only cost CPU.
  compression = "none"
  kapacitor-hostname = "127.0.0.1"
  http-port = {self.http_port}
  # Notice new databases quickly (the default is a minute).
  subscriptions-sync-interval = "{self.subscriptions_sync}"
  startup-timeout = "1m"
"""

    def _udf_section(self) -> str:
        return f"""
# UDFs can only be configured in this file, not through environment variables.
[udf]
[udf.functions]
  [udf.functions.fraud]
    socket = "{self.udf_socket}"
    timeout = "{self.udf_timeout}"
"""


def write_config(path: Path, text: str) -> Path:
    """Write a config file readable by its owner only (it may hold a password)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


def disabled_handlers(scripts_dir: Path) -> str:
    """The alert handlers kapacitord refuses (`-disable-handlers`), comma-separated.

    Read from `disabled-handlers` beside the TICKscripts, which Compose mounts too.
    """
    names = []
    for line in (scripts_dir / "disabled-handlers").read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.append(name)
    return ",".join(names)
