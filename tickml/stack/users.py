"""The stack's logins, and creating them in InfluxDB and Kapacitor.

Both servers run with authentication on. Each tickml service logs in with the
least privilege it needs:

- `INFLUXDB_ADMIN_*`: everything; Kapacitor's connection (subscriptions need an admin).
- `INFLUXDB_TICKML_*`: read and write `fraud` (scoring, rescore, watchdog, notebooks).
- `INFLUXDB_GENERATOR_*`: write `fraud` (the mock publisher).
- `INFLUXDB_READER_*`: read `fraud`, `_kapacitor` and `chronograf` (Grafana, Chronograf).
- `KAPACITOR_ADMIN_*`: everything in Kapacitor, its users included.
- `KAPACITOR_TICKML_*`: Kapacitor's task API, its `api` permission (tickml, Chronograf).
- `KAPACITOR_WRITER_*`: writing points only (`write_points`): InfluxDB's sharded
  subscription logs in to each Kapacitor shard with it.

InfluxDB creates its first admin without a login while it has no user; the
other users come from that admin. Kapacitor has no such first-user rule: its
users are created by a kapacitord started once with HTTP authentication off on a
free port, then stopped (`provision_kapacitor`; compose does the same in
`compose/kapacitor/start.sh`, inside the container's own network).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from tickml.config import Settings
from tickml.influx import InfluxClient
from tickml.kapacitor import KapacitorClient
from tickml.stack.binaries import find_binary
from tickml.stack.configs import KapacitorConfig, write_config
from tickml.stack.process import Service

#: The databases the reader may read: tickml's, Kapacitor's statistics, the alert history.
READER_DATABASES = ("_kapacitor", "chronograf")
#: Kapacitor's permission for the task endpoints.
KAPACITOR_API = ("api",)
#: Kapacitor's permission to write points, and nothing else.
KAPACITOR_WRITE = ("write_points",)
_ALPHABET = string.ascii_letters + string.digits


class ProvisionError(RuntimeError):
    """A server's users could not be created as asked."""


@dataclass(frozen=True)
class Login:
    user: str
    password: str


@dataclass(frozen=True)
class StackLogins:
    """Every login of the stack; each field is read from `<PREFIX>_USER`/`_PASSWORD`."""

    influx_admin: Login
    influx_tickml: Login
    influx_generator: Login
    influx_reader: Login
    kapacitor_admin: Login
    kapacitor_tickml: Login
    kapacitor_writer: Login

    #: field -> the `.env` prefix of its two variables
    PREFIXES: ClassVar[dict[str, str]] = {
        "influx_admin": "INFLUXDB_ADMIN", "influx_tickml": "INFLUXDB_TICKML",
        "influx_generator": "INFLUXDB_GENERATOR", "influx_reader": "INFLUXDB_READER",
        "kapacitor_admin": "KAPACITOR_ADMIN", "kapacitor_tickml": "KAPACITOR_TICKML",
        "kapacitor_writer": "KAPACITOR_WRITER",
    }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StackLogins:
        """The logins `./up.sh` wrote into `.env`; a clear error names a missing one."""
        environ = os.environ if environ is None else environ
        values, missing = {}, []
        for name, prefix in cls.PREFIXES.items():
            user, password = environ.get(f"{prefix}_USER"), environ.get(f"{prefix}_PASSWORD")
            if not user or not password or password == "change-me":
                missing.append(f"{prefix}_USER/{prefix}_PASSWORD")
                continue
            values[name] = Login(user, password)
        if missing:
            raise ProvisionError("set in .env (./up.sh generates them): " + ", ".join(missing))
        return cls(**values)

    @classmethod
    def generated(cls) -> StackLogins:
        """Fresh logins with random passwords (a throw-away stack's)."""
        def login(user: str) -> Login:
            return Login(user, "".join(secrets.choice(_ALPHABET) for _ in range(24)))

        return cls(login("admin"), login("tickml"), login("generator"), login("reader"),
                   login("admin"), login("tickml"), login("writer"))

    def environment(self) -> dict[str, str]:
        """The `.env` variables for these logins."""
        env = {}
        for name, prefix in self.PREFIXES.items():
            login: Login = getattr(self, name)
            env[f"{prefix}_USER"], env[f"{prefix}_PASSWORD"] = login.user, login.password
        return env


def service_settings(settings: Settings, logins: StackLogins) -> Settings:
    """`settings` logged in as tickml's services: `INFLUXDB_TICKML`, `KAPACITOR_TICKML`, and
    the writer login InfluxDB's sharded subscription sends (`KAPACITOR_WRITER`)."""
    return dataclasses.replace(
        settings,
        influx_user=logins.influx_tickml.user, influx_password=logins.influx_tickml.password,
        kapacitor_user=logins.kapacitor_tickml.user,
        kapacitor_password=logins.kapacitor_tickml.password,
        kapacitor_writer_user=logins.kapacitor_writer.user,
        kapacitor_writer_password=logins.kapacitor_writer.password)


def admin_settings(settings: Settings, logins: StackLogins) -> Settings:
    """`settings` with InfluxDB's admin login (creating databases, reading subscriptions)."""
    return dataclasses.replace(settings, influx_user=logins.influx_admin.user,
                               influx_password=logins.influx_admin.password)


def provision_influx(url: str, database: str, logins: StackLogins) -> None:
    """The admin (on a server with no user yet), the databases, and each user's grants."""
    admin = InfluxClient(url, database, username=logins.influx_admin.user,
                         password=logins.influx_admin.password)
    try:
        admin.create_first_admin(logins.influx_admin.user, logins.influx_admin.password)
        for name in (database, *READER_DATABASES):
            admin.create_database(name)
        admin.put_user(logins.influx_tickml.user, logins.influx_tickml.password,
                       {database: "ALL"})
        admin.put_user(logins.influx_generator.user, logins.influx_generator.password,
                       {database: "WRITE"})
        admin.put_user(logins.influx_reader.user, logins.influx_reader.password,
                       {name: "READ" for name in (database, *READER_DATABASES)})
    finally:
        admin.close()


def kapacitor_users(client: KapacitorClient, logins: StackLogins) -> None:
    """Kapacitor's admin and tickml's task login, created or updated through `client`."""
    client.put_user(logins.kapacitor_admin.user, logins.kapacitor_admin.password, admin=True)
    client.put_user(logins.kapacitor_tickml.user, logins.kapacitor_tickml.password,
                    permissions=KAPACITOR_API)
    client.put_user(logins.kapacitor_writer.user, logins.kapacitor_writer.password,
                    permissions=KAPACITOR_WRITE)


def provision_kapacitor(config: KapacitorConfig, logins: StackLogins, directory: Path,
                        port: int) -> None:
    """Create Kapacitor's users in `config`'s store, with kapacitord not running.

    A kapacitord with HTTP authentication off, no InfluxDB and no UDF runs on
    127.0.0.1:`port` just long enough to create them. On a fresh store, anything
    else it then holds (another user, a task) was put there by someone else in
    that moment: refused.
    """
    bootstrap = dataclasses.replace(config, http_port=port, bootstrap=True)
    path = write_config(directory / "kapacitor-users.conf", bootstrap.render())
    client = KapacitorClient(bootstrap.url)
    service = Service("kapacitord-users", bootstrap.command(find_binary("kapacitord"), path),
                      directory, ready=client.ping)
    try:
        service.start().wait_ready(120)
        fresh = not client.users()
        kapacitor_users(client, logins)
        if fresh:
            _check_only_ours(client, logins)
    finally:
        service.stop()
        client.close()


def _check_only_ours(client: KapacitorClient, logins: StackLogins) -> None:
    expected = {logins.kapacitor_admin.user, logins.kapacitor_tickml.user,
                logins.kapacitor_writer.user}
    users, tasks = set(client.users()), client.task_ids()
    if users != expected or tasks:
        raise ProvisionError(f"Kapacitor's new store holds users {sorted(users)} and tasks "
                             f"{tasks} that tickml did not create: refusing to start")
