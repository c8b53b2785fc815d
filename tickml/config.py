"""Settings read once from `TICKML_*` environment variables, then the project's `.env`.

Every default works for the native stack on localhost; containers override them
through the environment (see `.env.example` and `docker-compose.yml`). A tickml
command run by hand against a running stack logs in as the stack's services do
without exporting anything: what a `TICKML_*` variable does not set, the project's
`.env` (the one `./up.sh` writes and Compose reads) gives, by Compose's names:
`INFLUXDB_TICKML_*` and `KAPACITOR_TICKML_*` for the logins, `INFLUXDB_PORT`,
`KAPACITOR_PORT` and `API_PORT` for the addresses. As with Compose, a variable set in
the environment wins over the same one in `.env`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ENV_PREFIX = "TICKML_"
#: Settings `.env` gives by its own (Compose's) variable names, when TICKML_* does not.
DOTENV_NAMES = {"influx_user": "INFLUXDB_TICKML_USER",
                "influx_password": "INFLUXDB_TICKML_PASSWORD",
                "kapacitor_user": "KAPACITOR_TICKML_USER",
                "kapacitor_password": "KAPACITOR_TICKML_PASSWORD",
                "kapacitor_writer_user": "KAPACITOR_WRITER_USER",
                "kapacitor_writer_password": "KAPACITOR_WRITER_PASSWORD",
                "shards": "SHARDS"}
#: URL settings `.env` gives by a port: setting -> (port variable, URL pattern).
DOTENV_PORTS = {"influx_url": ("INFLUXDB_PORT", "http://127.0.0.1:{}"),
                "kapacitor_url": ("KAPACITOR_PORT", "http://127.0.0.1:{}"),
                "api_url": ("API_PORT", "http://127.0.0.1:{}")}


def _default_root() -> Path:
    """The source checkout when running from one, otherwise the working directory."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        return checkout
    return Path.cwd()


@dataclass(frozen=True)
class Settings:
    """tickml's configuration. Each field `x` is read from `TICKML_X`."""

    root: Path = field(default_factory=_default_root)
    data_dir: Path | None = None
    models_dir: Path | None = None
    run_dir: Path | None = None
    seed: int = 42

    influx_url: str = "http://127.0.0.1:8086"
    influx_db: str = "fraud"
    # This process's own logins (the stacks run with authentication on).
    influx_user: str = ""
    influx_password: str = ""
    # InfluxDB's admin, given to the watchdog only: it checks InfluxDB's subscriptions and
    # has a refused one made anew (reading and dropping subscriptions takes an admin).
    influx_admin_user: str = ""
    influx_admin_password: str = ""
    kapacitor_url: str = "http://127.0.0.1:9092"
    kapacitor_user: str = ""
    kapacitor_password: str = ""
    # Kapacitor + agent pairs the stream is spread over (InfluxDB's ANY subscription); the
    # shards' task API URLs, comma-separated, when they are not kapacitor_url's port + i;
    # the login that may only write points, which InfluxDB's subscription sends them.
    shards: int = 1
    kapacitor_shard_urls: str = ""
    kapacitor_writer_user: str = ""
    kapacitor_writer_password: str = ""
    kapacitor_scripts: Path | None = None  # folder of the TICKscripts
    alert_log: str = ""  # where fraud_alerts logs; empty keeps the TICKscript's default
    watchdog_interval: float = 2.0
    # The watchdog rescores transactions still unscored this many seconds after
    # they were written, every sweep interval.
    watchdog_sweep_interval: float = 30.0
    watchdog_sweep_grace: float = 15.0

    # The model API its clients (the agent, rescore) call: tickml's API, or an Open
    # Inference Protocol endpoint .../v2/models/<name>/infer.
    api_url: str = "http://127.0.0.1:5000"
    # What the agent and rescore score against: tickml's API (empty: api_url), or any
    # Open Inference Protocol V2 endpoint, e.g. MLServer's .../v2/models/<name>/infer.
    scoring_url: str = ""
    # Seconds between the clients' look-ups of api_url's host name, whose every address
    # (each replica of a scaled service) gets batches in turn.
    api_resolve_interval: float = 5.0
    api_bind: str = "127.0.0.1:5000"
    api_workers: int = 2
    api_threads: int = 4
    api_timeout: int = 30
    # gevent: one greenlet per connection, so slow clients cannot hold every worker;
    # gthread and sync remain selectable for comparison (`tickml bench abuse`).
    api_worker_class: str = "gevent"
    api_max_instances: int = 10_000
    # 10,000 rows of 24-character numbers fit; a realistic 10,000-row batch is 7.1 MiB.
    api_max_body_bytes: int = 10 * 1024 * 1024
    # Bodies above api_large_body_bytes (or chunked) parse api_large_bodies at a time
    # per worker; others get 503 with Retry-After, which bounds a worker's memory.
    api_large_body_bytes: int = 1024 * 1024
    api_large_bodies: int = 1
    api_reload_interval: float = 2.0
    api_graceful_timeout: int = 10
    # Origins (comma-separated, or *) whose browser pages may call the API; empty: CORS off.
    api_cors_origins: str = ""

    udf_socket: Path | None = None
    udf_max_connections: int = 8  # Kapacitor connections the agent serves at once
    udf_allowed_urls: str = ""  # comma-separated API URLs a task's .url() may name
    udf_socket_group: str = ""  # group (name or gid) given the socket, shared with Kapacitor
    lab_token: str = ""  # JupyterLab access token (`tickml lab`)
    notebook_sample: str = ""  # yes/no: notebooks run a small, quick configuration
    cache: Path = field(default_factory=lambda: Path.home() / ".cache" / "tickml")  # builds

    def __post_init__(self) -> None:
        # Paths left unset derive from `root`, so one variable moves everything.
        defaults = {"data_dir": "data", "models_dir": "models", "run_dir": "run"}
        for name, sub in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, self.root / sub)
        if self.kapacitor_scripts is None:
            object.__setattr__(self, "kapacitor_scripts", self.root / "compose" / "kapacitor")
        if self.udf_socket is None:
            object.__setattr__(self, "udf_socket", self.run_dir / "fraud.sock")

    @property
    def score_url(self) -> str:
        """The URL the agent and rescore score transactions at."""
        return self.scoring_url or self.api_url

    @property
    def sharded(self) -> bool:
        """True when the stream runs on several Kapacitor shards."""
        return len(self.kapacitor_urls) > 1

    @property
    def kapacitor_urls(self) -> list[str]:
        """The task API URL of every Kapacitor shard, the first being `kapacitor_url`."""
        if self.kapacitor_shard_urls:
            return [url.strip() for url in self.kapacitor_shard_urls.split(",") if url.strip()]
        scheme, rest = self.kapacitor_url.rstrip("/").split("://", 1)
        host, port = rest.rsplit(":", 1)
        return [self.kapacitor_url] + [f"{scheme}://{host}:{int(port) + i}"
                                       for i in range(1, self.shards)]

    @property
    def processed_dir(self) -> Path:
        return self.data_dir / "processed"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *,
                 dotenv: bool = True) -> Settings:
        """Build settings from `TICKML_*` variables, then (with `dotenv`) the project's `.env`.

        Unknown variables are ignored. The `.env` is the one in the settings' root.
        """
        environ = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _convert(f.name, raw, f.type)
        settings = cls(**values)
        if not dotenv:
            return settings
        compose_vars = {**read_dotenv(settings.root / ".env"), **environ}
        return dataclasses.replace(settings, **_compose_values(compose_vars, set(values)))


def read_dotenv(path: Path) -> dict[str, str]:
    """The KEY=VALUE pairs of a `.env` file (empty when there is none)."""
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {key: value for key, value in dotenv_values(path).items() if value is not None}


def _compose_values(variables: Mapping[str, str], already: set[str]) -> dict[str, str]:
    """Settings from Compose's variable names, for those TICKML_* did not set."""
    values = {}
    for name, variable in DOTENV_NAMES.items():
        if name not in already and variables.get(variable):
            values[name] = int(variables[variable]) if name == "shards" else variables[variable]
    for name, (variable, pattern) in DOTENV_PORTS.items():
        port = variables.get(variable, "")
        if name not in already and port.isdigit():
            values[name] = pattern.format(port)
    return values


def _convert(name: str, raw: str, annotation: str) -> object:
    try:
        if annotation == "int":
            return int(raw)
        if annotation == "float":
            return float(raw)
        if "Path" in annotation:
            return Path(raw).expanduser()
        return raw
    except ValueError:
        raise ValueError(
            f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {annotation}"
        ) from None


def get_settings() -> Settings:
    """Settings for this process, read from the environment."""
    return Settings.from_env()
