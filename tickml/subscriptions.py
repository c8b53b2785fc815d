"""InfluxDB's subscriptions: does the Kapacitor each one names accept its writes, and mending it.

InfluxDB forwards every write on a database to the destinations of its subscriptions.
Kapacitor creates its own, `kapacitor-<cluster id>`, whose destination carries a token
Kapacitor granted: `http://~subscriber:TOKEN@host:9092`. A token Kapacitor has since
revoked makes it refuse every forwarded write, while the subscription itself looks
sound to Kapacitor's own sync, which never replaces it: the stream tasks then receive
nothing. Reading and dropping subscriptions takes InfluxDB's admin.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit

import requests

from tickml.influx import InfluxClient
from tickml.kapacitor import KapacitorClient

log = logging.getLogger(__name__)
#: Seconds to wait for a destination's answer.
CHECK_TIMEOUT = 5.0


@dataclass(frozen=True)
class Subscription:
    """One InfluxDB subscription as `SHOW SUBSCRIPTIONS` lists it."""

    database: str
    retention_policy: str
    name: str
    mode: str
    destinations: tuple[str, ...]


class Answer(StrEnum):
    """How a destination answers the login the subscription sends it."""

    ACCEPTED = "accepted"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"
    NOT_HTTP = "not checked (not HTTP)"


@dataclass(frozen=True)
class DestinationCheck:
    subscription: Subscription
    destination: str  # without its credentials: safe to log
    answer: Answer
    detail: str = ""


def list_subscriptions(admin: InfluxClient) -> list[Subscription]:
    """Every subscription on every database (an admin's query)."""
    found = []
    for series in admin.query("SHOW SUBSCRIPTIONS"):
        for row in series.records():
            found.append(Subscription(series.name, row["retention_policy"], row["name"],
                                      row["mode"], tuple(row["destinations"] or ())))
    return found


def without_credentials(destination: str) -> str:
    """`destination` with any user and password taken out, for messages and logs."""
    parts = urlsplit(destination)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def check_destination(subscription: Subscription, destination: str,
                      timeout: float = CHECK_TIMEOUT) -> DestinationCheck:
    """Ask the Kapacitor at `destination` whether it accepts the login the destination carries.

    Kapacitor answers `/kapacitor/v1/ping` to a subscription's token exactly when it
    would accept that token's writes.
    """
    parts = urlsplit(destination)
    safe = without_credentials(destination)
    if parts.scheme not in ("http", "https"):
        return DestinationCheck(subscription, safe, Answer.NOT_HTTP)
    auth = (parts.username or "", parts.password or "") if parts.username else None
    ping = urlunsplit((parts.scheme, urlsplit(safe).netloc, "/kapacitor/v1/ping", "", ""))
    try:
        response = requests.get(ping, auth=auth, timeout=timeout)
    except requests.RequestException as exc:
        return DestinationCheck(subscription, safe, Answer.UNREACHABLE, type(exc).__name__)
    if response.status_code in (401, 403):
        return DestinationCheck(subscription, safe, Answer.REFUSED, _error_of(response))
    if response.status_code == 204:
        return DestinationCheck(subscription, safe, Answer.ACCEPTED)
    return DestinationCheck(subscription, safe, Answer.UNREACHABLE,
                            f"HTTP {response.status_code}")


def _error_of(response: requests.Response) -> str:
    try:
        return str(response.json().get("error", "")) or response.text.strip()
    except ValueError:
        return response.text.strip()


def check_database(admin: InfluxClient, database: str) -> list[DestinationCheck]:
    """Every destination of every subscription on `database`, checked."""
    return [check_destination(subscription, destination)
            for subscription in list_subscriptions(admin) if subscription.database == database
            for destination in subscription.destinations]


@dataclass(frozen=True)
class Mending:
    """What `mend_refused` found and did."""

    checks: tuple[DestinationCheck, ...]
    dropped: tuple[Subscription, ...]

    @property
    def subscribed(self) -> bool:
        """True when some destination accepts this database's writes."""
        return any(check.answer is Answer.ACCEPTED for check in self.checks)


def mend_refused(admin: InfluxClient, kapacitor: KapacitorClient, database: str) -> Mending:
    """Drop every subscription on `database` that a destination refuses; Kapacitor makes anew.

    A subscription is Kapacitor's to make: once the refused one is gone, Kapacitor is
    asked to link its subscriptions at once (instead of at its next sync), and creates
    a new one with a token it holds.
    """
    checks = check_database(admin, database)
    refused = {check.subscription for check in checks if check.answer is Answer.REFUSED}
    for subscription in refused:
        log.warning("InfluxDB's subscription %s on %s.%s is refused by %s: dropping it so "
                    "Kapacitor makes a new one", subscription.name, subscription.database,
                    subscription.retention_policy,
                    ", ".join(c.destination for c in checks if c.subscription == subscription))
        admin.query(f'DROP SUBSCRIPTION "{subscription.name}" ON '
                    f'"{subscription.database}"."{subscription.retention_policy}"', method="POST")
    if refused:
        kapacitor.link_subscriptions()
        checks = check_database(admin, database)
    return Mending(tuple(checks), tuple(sorted(refused, key=lambda s: s.name)))


def ensure_subscribed(admin: InfluxClient, kapacitor: KapacitorClient, database: str,
                      timeout: float) -> Mending:
    """Wait (up to `timeout` s) for a subscription on `database`, then mend a refused one.

    Kapacitor subscribes to a new database at its next sync; a subscription left from
    an earlier run may carry a token Kapacitor has since revoked.
    """
    admin.wait_for_subscription(timeout=timeout)
    return mend_refused(admin, kapacitor, database)
