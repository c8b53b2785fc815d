"""`tickml up` / `tickml down`: the whole stack as local processes under supervisord.

supervisord (a well-kept process manager) owns every process: it gives each a
log file under `run/logs/`, keeps its pid, and restarts it when it dies, as
compose's restart policy would. `tickml up` starts the programs one by one in
dependency order and waits until each is ready before starting the next:
influxd, then the model API, the UDF agent (kapacitord refuses to start without
its socket), kapacitord, the task definitions, the watchdog and the generator.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from supervisor.xmlrpc import SupervisorTransport

from tickml.config import ENV_PREFIX, Settings
from tickml.stack.configs import (
    InfluxConfig,
    KapacitorConfig,
    disabled_handlers,
    write_config,
)
from tickml.stack.programs import (
    TICKML,
    Program,
    free_port,
    http_ok,
    kapacitor_config_path,
    pipeline_programs,
    port_of,
    shard_name,
    shard_socket,
    short_socket_path,
    tickml_env,
)
from tickml.stack.users import StackLogins, service_settings

STATE_DIRS = ("influxdb", "kapacitor")
#: Process states in which supervisord runs a program or is (re)starting it by itself
#: (after it died, say): `tickml up` then waits for it rather than starting it again.
SUPERVISED = frozenset({"RUNNING", "STARTING", "BACKOFF"})
#: supervisord's XML-RPC fault for starting a program that is already started.
ALREADY_STARTED = 60


class StackError(RuntimeError):
    """The stack could not start or stop; the message names the service and its log."""


@dataclass(frozen=True)
class NativeStack:
    """The native stack for one project folder (`settings.run_dir` holds its state)."""

    settings: Settings
    generator_rate: float = 5.0
    fraud_share: float = 0.02
    with_jupyter: bool = False
    jupyter_port: int = 10000
    # The stack's logins; None reads them from the environment (.env, via ./up.sh).
    logins: StackLogins | None = None

    def stack_logins(self) -> StackLogins:
        return self.logins or StackLogins.from_env()

    @property
    def service_settings(self) -> Settings:
        """The settings, logged in as tickml's services."""
        return service_settings(self.settings, self.stack_logins())

    # -- paths and ports -------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return self.settings.run_dir

    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"

    @property
    def control_socket(self) -> Path:
        return self.run_dir / "supervisor.sock"

    @property
    def influx(self) -> InfluxConfig:
        port = urlparse(self.settings.influx_url).port or 8086
        return InfluxConfig(self.run_dir / "influxdb", http_port=port, rpc_port=port + 2)

    @property
    def kapacitors(self) -> list[KapacitorConfig]:
        """Each Kapacitor shard's config: its folder, port and agent socket."""
        admin = self.stack_logins().influx_admin
        handlers = disabled_handlers(self.settings.kapacitor_scripts)
        urls = self.settings.kapacitor_urls
        return [KapacitorConfig(self.run_dir / shard_name("kapacitor", shard),
                                influx_url=self.influx.url,
                                udf_socket=shard_socket(self.settings.udf_socket, shard),
                                http_port=urlparse(url).port or 9092,
                                influx_user=admin.user, influx_password=admin.password,
                                disabled_handlers=handlers, sharded=len(urls) > 1,
                                hostname="127.0.0.1" if shard == 0 else f"shard-{shard + 1}")
                for shard, url in enumerate(urls)]

    def ports(self) -> dict[str, int]:
        ports = {"influxd": self.influx.http_port, "api": port_of(self.settings.api_bind),
                 **{shard_name("kapacitord", shard): config.http_port
                    for shard, config in enumerate(self.kapacitors)}}
        if self.with_jupyter:
            ports["jupyter"] = self.jupyter_port
        return ports

    # -- programs --------------------------------------------------------------------
    def programs(self) -> list[Program]:
        """The pipeline's programs, then the watchdog, the generator and maybe JupyterLab."""
        jupyter = f"127.0.0.1:{self.jupyter_port}"
        programs = [
            *pipeline_programs(self.service_settings, self.stack_logins(), self.influx,
                               self.kapacitors, self.run_dir),
            Program("watchdog", [TICKML, "watchdog"], lambda: True,
                    env=self._watchdog_environment()),
            Program("generator", [TICKML, "generate", "--rate", str(self.generator_rate),
                                  "--fraud-share", str(self.fraud_share)], lambda: True),
        ]
        if self.with_jupyter:
            programs.append(Program("jupyter", [TICKML, "lab", "--bind", jupyter],
                                    lambda: http_ok(f"http://{jupyter}/api")))
        return programs

    def supervisord_conf(self) -> str:
        sections = [f"""\
[unix_http_server]
file = {self.control_socket}
chmod = 0700

[supervisord]
logfile = {self.logs / 'supervisord.log'}
; logs, pid files and what the programs create: readable by this user only
umask = 077
pidfile = {self.run_dir / 'supervisord.pid'}
childlogdir = {self.logs}
directory = {self.settings.root}
environment = {self._login_environment()}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl = unix://{self.control_socket}
"""]
        for program in self.programs():
            environment = ",".join(f'{k}="{v}"' for k, v in program.env.items())
            sections.append(f"""
[program:{program.name}]
command = {' '.join(program.command)}
{f"environment = {environment}" if environment else ""}
autostart = false
autorestart = true
startsecs = 1
stopwaitsecs = 20
stopasgroup = true
killasgroup = true
redirect_stderr = true
stdout_logfile = {self.logs / (program.name + '.log')}
stdout_logfile_maxbytes = 10MB
stdout_logfile_backups = 2
""")
        return "".join(sections)

    def _watchdog_environment(self) -> dict[str, str]:
        """InfluxDB's admin, for the watchdog alone: it mends a refused subscription."""
        admin = self.stack_logins().influx_admin
        return {f"{ENV_PREFIX}INFLUX_ADMIN_USER": admin.user,
                f"{ENV_PREFIX}INFLUX_ADMIN_PASSWORD": admin.password}

    def _login_environment(self) -> str:
        """supervisord's `environment`: every program logs in as tickml's services, and
        knows the Kapacitor shards."""
        env = tickml_env(self.service_settings)
        names = ("INFLUX_USER", "INFLUX_PASSWORD", "KAPACITOR_USER", "KAPACITOR_PASSWORD",
                 "KAPACITOR_WRITER_USER", "KAPACITOR_WRITER_PASSWORD")
        values = {ENV_PREFIX + name: env[ENV_PREFIX + name] for name in names}
        values[f"{ENV_PREFIX}KAPACITOR_SHARD_URLS"] = ",".join(self.settings.kapacitor_urls)
        return ",".join(f'{name}="{value}"' for name, value in values.items())

    def running_shards(self) -> int:
        """How many Kapacitor shards the running stack has (0 when it is down)."""
        return sum(1 for name in self.status() if name.startswith("kapacitord"))

    # -- control ---------------------------------------------------------------------
    def call(self, method: str, *args: object) -> object:
        """Call one of supervisord's XML-RPC methods, e.g. call("stopProcess", "api")."""
        transport = SupervisorTransport(None, None, f"unix://{self.control_socket}")
        with xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport) as proxy:
            return getattr(proxy.supervisor, method)(*args)

    def supervisor_running(self) -> bool:
        if not self.control_socket.exists():
            return False
        try:
            return self.call("getState")["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Fault):
            return False

    def up(self, report: Callable[[str], None] = print) -> None:
        """Start everything that is not running yet; harmless when already up.

        Raises:
            StackError: the stack runs with another number of shards.
        """
        running = self.running_shards()
        if running and running != len(self.settings.kapacitor_urls):
            raise StackError(f"the native stack runs {running} Kapacitor shard(s), not "
                             f"{len(self.settings.kapacitor_urls)}: stop it (./down.sh) and "
                             "start it again with the new count")
        if not self.supervisor_running():
            self._check_ports_free()
            self._write_configs()
            self._start_supervisord()
        for program in self.programs():
            state = self.call("getProcessInfo", program.name)["statename"]
            if state not in SUPERVISED:  # supervisord is not already (re)starting it
                if program.before_start is not None:
                    program.before_start()
                self._start(program.name)
            self._wait_ready(program)
            report(f"{program.name}: ready")
            followed_up = program.on_ready() if program.on_ready is not None else None
            if followed_up:
                report(followed_up)

    def _start(self, name: str) -> None:
        """Have supervisord start program `name`; one it started meanwhile is as good."""
        try:
            self.call("startProcess", name, False)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode != ALREADY_STARTED:
                raise

    def _check_ports_free(self) -> None:
        for name, port in self.ports().items():
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    raise StackError(f"port {port} ({name}) is already in use: stop what "
                                     f"listens there or set another port in .env")

    def _write_configs(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.settings.udf_socket.parent.mkdir(parents=True, exist_ok=True)
        write_config(self.run_dir / "influxdb.conf", self.influx.render())
        for shard, config in enumerate(self.kapacitors):
            write_config(kapacitor_config_path(self.run_dir, shard), config.render())
        write_config(self.run_dir / "supervisord.conf", self.supervisord_conf())

    def _start_supervisord(self) -> None:
        subprocess.run([sys.executable, "-m", "supervisor.supervisord", "-c",
                        str(self.run_dir / "supervisord.conf")], check=True)
        deadline = time.monotonic() + 20
        while not self.supervisor_running():
            if time.monotonic() > deadline:
                raise StackError(f"supervisord did not start; see {self.logs / 'supervisord.log'}")
            time.sleep(0.1)

    def _wait_ready(self, program: Program) -> None:
        deadline = time.monotonic() + program.timeout
        while time.monotonic() < deadline:
            state = self.call("getProcessInfo", program.name)["statename"]
            if state == "FATAL":  # supervisord gave up restarting it
                break
            if state == "RUNNING" and program.ready():
                return
            time.sleep(0.2)
        raise StackError(f"{program.name} is not healthy; read {self.logs / program.name}.log")

    def status(self) -> dict[str, str]:
        """Each program's supervisor state, or an empty dict when the stack is down."""
        if not self.supervisor_running():
            return {}
        infos = self.call("getAllProcessInfo")
        return {info["name"]: info["statename"] for info in infos}

    def down(self, wipe: bool = False) -> None:
        """Stop every process `up` started (keeping data unless `wipe`)."""
        pid_file = self.run_dir / "supervisord.pid"
        if self.supervisor_running():
            pid = int(pid_file.read_text())
            with contextlib.suppress(OSError, xmlrpc.client.Fault):
                self.call("shutdown")
            _wait_for_exit(pid, timeout=60)
        if wipe:
            for name in (*STATE_DIRS, "logs"):
                shutil.rmtree(self.run_dir / name, ignore_errors=True)


def _wait_for_exit(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise StackError(f"supervisord (pid {pid}) did not exit within {timeout:.0f}s")


def throwaway_environment(directory: Path, project: Settings, logins: StackLogins, *,
                          models_dir: Path | None = None) -> dict[str, str]:
    """TICKML_* variables for a native stack in `directory` on free ports, with fresh
    `logins`, reusing `project`'s dataset and TICKscripts (and its models, unless
    `models_dir` says otherwise)."""
    influx, kapacitor, api = free_port(), free_port(), free_port()
    return {
        "TICKML_ROOT": str(directory),
        "TICKML_DATA_DIR": str(project.data_dir),
        "TICKML_MODELS_DIR": str(models_dir or project.models_dir),
        "TICKML_KAPACITOR_SCRIPTS": str(project.kapacitor_scripts),
        "TICKML_INFLUX_URL": f"http://127.0.0.1:{influx}",
        "TICKML_KAPACITOR_URL": f"http://127.0.0.1:{kapacitor}",
        "TICKML_API_BIND": f"127.0.0.1:{api}",
        "TICKML_API_URL": f"http://127.0.0.1:{api}",
        "TICKML_UDF_SOCKET": str(short_socket_path(directory)),
        "TICKML_ALERT_LOG": str(directory / "alerts.log"),
        **logins.environment(),  # as ./up.sh exports .env's logins
    }
