"""A small InfluxDB 1.x client: line protocol writes and InfluxQL queries over HTTP."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from tickml.config import Settings

FieldValue = float | int | bool | str
_KEY_ESCAPES = str.maketrans({",": "\\,", " ": "\\ ", "=": "\\="})
_BACKSLASH_BEFORE_SPECIAL = re.compile(r"\\[, =]")
#: Kapacitor syncs its subscriptions every 10 s by default; allow three rounds.
SUBSCRIPTION_WAIT_SECONDS = 30


class InfluxError(RuntimeError):
    """InfluxDB refused a request or could not be reached."""


class LoginRefused(InfluxError):
    """InfluxDB answered 401: no login, or one it does not accept."""


#: What to set when a login is refused: the variable, or `.env`'s (see tickml.config).
LOGIN_HINT = ("set TICKML_INFLUX_USER and TICKML_INFLUX_PASSWORD, or INFLUXDB_TICKML_USER "
              "and INFLUXDB_TICKML_PASSWORD in the project's .env (./up.sh writes them)")


class DatabaseNotFound(InfluxError):
    """A write named a database that does not exist (yet)."""


class WriteRefused(InfluxError):
    """InfluxDB answered 400 to a write: a line it cannot parse or a field type conflict.

    InfluxDB 1.x still stores the lines it could take; sending the same lines again
    stores nothing twice.
    """


def escape_key(text: str) -> str:
    """Escape a measurement, tag key/value or field key for line protocol.

    InfluxDB 1.x unescapes only `\\,`, `\\ ` and `\\=` there and keeps every other
    backslash as it is, so a backslash is written unchanged: doubling it would store
    two. What line protocol cannot carry at all raises.

    Raises:
        ValueError: the text holds a line break, ends in a backslash, or has a backslash
            right before a comma, space or equals sign.
    """
    if "\n" in text or text.endswith("\\") or _BACKSLASH_BEFORE_SPECIAL.search(text):
        raise ValueError(f"line protocol cannot carry the name or tag {text!r}")
    return text.translate(_KEY_ESCAPES)


def format_field(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"line protocol cannot carry {value!r}")
        return repr(value)
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def to_line(
    measurement: str,
    fields: Mapping[str, FieldValue],
    time_ns: int,
    tags: Mapping[str, str] | None = None,
) -> str:
    """One point in line protocol (tags sorted, as InfluxDB prefers; empty tags left out).

    Raises:
        ValueError: the point has no field, or a name, tag or value line protocol
            cannot carry (see `escape_key` and `format_field`).
    """
    if not fields:
        raise ValueError("a point needs at least one field")
    body = ",".join(f"{escape_key(k)}={format_field(v)}" for k, v in fields.items())
    return f"{line_head(measurement, tags)} {body} {time_ns}"


def line_head(measurement: str, tags: Mapping[str, str] | None = None) -> str:
    """The measurement and sorted tags that start a line-protocol point.

    A tag with an empty value is left out: InfluxDB refuses `key=` and stores no empty
    tag, so a series read back with `GROUP BY *` names a tag it lacks with "", and the
    point without it is that same series.
    """
    head = escape_key(measurement)
    for key in sorted(tags or {}):
        if key and tags[key]:
            head += f",{escape_key(key)}={escape_key(tags[key])}"
    return head


@dataclass(frozen=True)
class Series:
    """One series of a query result: its name, tags, columns and rows."""

    name: str
    tags: dict[str, str]
    columns: list[str]
    values: list[list[Any]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.values]


class InfluxClient:
    """Talks to one InfluxDB 1.x server."""

    def __init__(self, url: str, database: str, *, username: str = "", password: str = "",
                 timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.timeout = timeout
        self.username = username
        self.session = requests.Session()
        if username:
            self.session.auth = (username, password)

    def _refused(self, response: requests.Response, what: str) -> InfluxError:
        """The error for a refused request; a refused login names the user it tried."""
        detail = f"{what} refused ({response.status_code}): {response.text.strip()}"
        if response.status_code != 401:
            return InfluxError(detail)
        tried = f"as {self.username!r}" if self.username else "without a login"
        return LoginRefused(f"{detail}. InfluxDB at {self.url} refused tickml's request "
                            f"{tried}: {LOGIN_HINT}")

    def ping(self) -> bool:
        """True when the server answers /ping."""
        try:
            return self.session.get(f"{self.url}/ping", timeout=2).status_code in (200, 204)
        except requests.RequestException:
            return False

    def create_database(self, name: str | None = None) -> None:
        """Create a database (this client's by default); a no-op when it exists.

        With authentication on, only an admin may: InfluxDB answers 403.
        """
        self.query(f'CREATE DATABASE "{_identifier(name or self.database)}"', method="POST")

    def users(self) -> dict[str, bool]:
        """Every InfluxDB user and whether it is an admin (an admin's query)."""
        return {row["user"]: bool(row["admin"]) for row in self.records("SHOW USERS")}

    def put_user(self, name: str, password: str, grants: Mapping[str, str] | None = None,
                 *, admin: bool = False) -> None:
        """Create user `name` or set its password; then give it exactly `grants`.

        Args:
            grants: database -> READ, WRITE or ALL; every other privilege is revoked.
            admin: an admin has every privilege on every database.
        """
        user, secret = _identifier(name), _string(password)
        if name in self.users():
            self.query(f"SET PASSWORD FOR \"{user}\" = '{secret}'", method="POST")
        else:
            self.query(f"CREATE USER \"{user}\" WITH PASSWORD '{secret}'", method="POST")
        if admin:
            self.query(f'GRANT ALL PRIVILEGES TO "{user}"', method="POST")
            return
        self.query(f'REVOKE ALL PRIVILEGES FROM "{user}"', method="POST")
        for database, privilege in (grants or {}).items():
            if privilege not in ("READ", "WRITE", "ALL"):
                raise ValueError(f"unknown privilege {privilege!r} for {name} on {database}")
            self.query(f'GRANT {privilege} ON "{_identifier(database)}" TO "{user}"',
                       method="POST")

    def create_first_admin(self, name: str, password: str) -> bool:
        """Create the first admin of a server that has no user yet.

        InfluxDB accepts this one statement without a login while it has no user;
        returns False when it already has users (the login then decides).
        """
        anonymous = InfluxClient(self.url, self.database, timeout=self.timeout)
        statement = (f"CREATE USER \"{_identifier(name)}\" WITH PASSWORD "
                     f"'{_string(password)}' WITH ALL PRIVILEGES")
        try:
            anonymous.query(statement, method="POST")
        except InfluxError as exc:
            if "unable to parse authentication credentials" in str(exc):
                return False  # users exist already
            raise
        finally:
            anonymous.close()
        return True

    def subscriptions(self) -> list[dict[str, Any]]:
        """The subscriptions on this database (Kapacitor's among them, once it synced)."""
        statement = "SHOW SUBSCRIPTIONS"
        return [row for series in self.query(statement) if series.name == self.database
                for row in series.records()]

    def wait_for_subscription(self, timeout: float, poll: float = 0.5) -> bool:
        """Wait until some subscriber (Kapacitor) receives this database's writes.

        Kapacitor subscribes to a new database on its next sync (every 10 s by
        default); points written before that never reach its stream tasks.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.subscriptions():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)

    def write_lines(self, lines: Iterable[str]) -> None:
        """Write line-protocol lines (nanosecond timestamps) in one request."""
        body = "\n".join(lines).encode()
        if not body:
            return
        try:
            response = self.session.post(f"{self.url}/write",
                                         params={"db": self.database, "precision": "ns"},
                                         data=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise InfluxError(f"InfluxDB at {self.url} unreachable: {exc}") from exc
        if response.status_code == 404 and "database not found" in response.text:
            raise DatabaseNotFound(f"database {self.database!r} does not exist on {self.url}")
        if response.status_code == 400:
            raise WriteRefused(f"write refused (400): {response.text.strip()}")
        if response.status_code != 204:
            raise self._refused(response, "write")

    def query(self, statement: str, method: str = "GET", epoch: str = "ns") -> list[Series]:
        """Run InfluxQL; return every series of every statement's result."""
        params = {"db": self.database, "q": statement, "epoch": epoch}
        try:
            response = self.session.request(method, f"{self.url}/query", params=params,
                                            timeout=self.timeout)
        except requests.RequestException as exc:
            raise InfluxError(f"InfluxDB at {self.url} unreachable: {exc}") from exc
        if response.status_code != 200:
            raise self._refused(response, "query")
        series = []
        for result in response.json().get("results", []):
            if "error" in result:
                raise InfluxError(f"query failed: {result['error']} ({statement})")
            for item in result.get("series", []):
                series.append(Series(item.get("name", ""), item.get("tags") or {},
                                     item["columns"], item.get("values", [])))
        return series

    def records(self, statement: str) -> list[dict[str, Any]]:
        """All rows of a query as dicts (series concatenated)."""
        return [row for series in self.query(statement) for row in series.records()]

    def count(self, measurement: str, field: str, where: str = "") -> int:
        """`count(field)` over a measurement, 0 when it has no points."""
        clause = f" WHERE {where}" if where else ""
        rows = self.records(f'SELECT count("{field}") FROM "{measurement}"{clause}')
        return int(rows[0]["count"]) if rows else 0

    def close(self) -> None:
        self.session.close()


def _identifier(name: str) -> str:
    """`name` for use inside double quotes in InfluxQL."""
    if not name or '"' in name or "\\" in name or "\n" in name:
        raise ValueError(f"{name!r} cannot be an InfluxDB name (empty, or a quote or backslash)")
    return name


def _string(text: str) -> str:
    """`text` for use inside single quotes in InfluxQL."""
    if not text or "'" in text or "\\" in text or "\n" in text:
        raise ValueError("an InfluxDB password must be non-empty, without quotes or backslashes")
    return text


def influx_for(settings: Settings) -> InfluxClient:
    """A client for the settings' server, database and credentials."""
    return InfluxClient(settings.influx_url, settings.influx_db,
                        username=settings.influx_user, password=settings.influx_password)
