"""InfluxDB's subscriptions: does the Kapacitor each one names accept its writes, and mending it.

InfluxDB forwards every write on a database to the destinations of its subscriptions.
Kapacitor creates its own, `kapacitor-<cluster id>`, whose destination carries a token
Kapacitor granted: `http://~subscriber:TOKEN@host:9092`. A token Kapacitor has since
revoked makes it refuse every forwarded write, while the subscription itself looks
sound to Kapacitor's own sync, which never replaces it: the stream tasks then receive
nothing. Reading and dropping subscriptions takes InfluxDB's admin.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import requests

from tickml.config import Settings
from tickml.influx import InfluxClient
from tickml.kapacitor import KapacitorClient

log = logging.getLogger(__name__)
#: Seconds to wait for a destination's answer.
CHECK_TIMEOUT = 5.0
#: The measurement of the point a destination check writes: no task reads it.
CHECK_MEASUREMENT = "tickml_subscription_check"
#: The name of the subscription tickml keeps when the stream runs on several Kapacitor
#: shards begins so (a digest of its destinations follows), and the retention policy
#: the stream's tasks read.
SHARDED_SUBSCRIPTION = "tickml-"
STREAM_RETENTION_POLICY = "autogen"
#: Seconds for InfluxDB's subscriber to let go of a dropped subscription: it keeps the
#: writer of a subscription whose name it still holds, so one dropped and made again
#: under the same name at once would go on sending to the old destinations.
FORGET_SECONDS = 1.0


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
    """Ask the Kapacitor at `destination` whether it accepts what InfluxDB forwards there.

    The check writes, with the login the destination carries, one point of a
    measurement no task reads (CHECK_MEASUREMENT) to the subscription's database: the
    very permission a forwarded write needs.
    """
    parts = urlsplit(destination)
    safe = without_credentials(destination)
    if parts.scheme not in ("http", "https"):
        return DestinationCheck(subscription, safe, Answer.NOT_HTTP)
    auth = (unquote(parts.username or ""), unquote(parts.password or "")) \
        if parts.username else None
    write = urlunsplit((parts.scheme, urlsplit(safe).netloc, "/write", "", ""))
    try:
        response = requests.post(write, auth=auth, timeout=timeout,
                                 data=f"{CHECK_MEASUREMENT} ok=true",
                                 params={"db": subscription.database,
                                         "rp": subscription.retention_policy})
    except requests.RequestException as exc:
        return DestinationCheck(subscription, safe, Answer.UNREACHABLE, type(exc).__name__)
    if response.status_code in (401, 403):
        return DestinationCheck(subscription, safe, Answer.REFUSED, _error_of(response))
    if response.status_code in (200, 204):
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
            for destination in dict.fromkeys(subscription.destinations)]  # each one once


#: Why a subscription was dropped.
REFUSED = "Kapacitor refused its writes (a revoked token)"
SHARDS_GONE = "it sent to Kapacitor shards no longer run"
BESIDE_SHARDS = "it sent the stream to a shard besides tickml's sharded subscription"
STALE_SHARDS = "its shards or their login changed"


@dataclass(frozen=True)
class Dropped:
    subscription: Subscription
    reason: str

    def describe(self) -> str:
        return (f"dropped InfluxDB's subscription {self.subscription.name} on "
                f"{self.subscription.database}: {self.reason}")


@dataclass(frozen=True)
class Mending:
    """What keeping a subscription found and did."""

    checks: tuple[DestinationCheck, ...]
    dropped: tuple[Dropped, ...]

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
        _drop(admin, subscription)
    if refused:
        time.sleep(FORGET_SECONDS)  # Kapacitor makes the new one under the same name
        kapacitor.link_subscriptions()
        checks = check_database(admin, database)
    return Mending(tuple(checks), tuple(Dropped(subscription, REFUSED)
                                        for subscription in sorted(refused,
                                                                   key=lambda s: s.name)))


def ensure_subscribed(admin: InfluxClient, kapacitor: KapacitorClient, database: str,
                      timeout: float) -> Mending:
    """One Kapacitor: wait (up to `timeout` s) for its own subscription on `database`,
    then mend a refused one; the sharded subscription, if one is left, goes.

    Kapacitor subscribes to a new database at its next sync; a subscription left from
    an earlier run may carry a token Kapacitor has since revoked.
    """
    retired = tuple(Dropped(s, SHARDS_GONE) for s in retire_sharded(admin, database))
    if retired:
        time.sleep(FORGET_SECONDS)
        kapacitor.link_subscriptions()
    admin.wait_for_subscription(timeout=timeout)
    mending = mend_refused(admin, kapacitor, database)
    return Mending(mending.checks, (*retired, *mending.dropped))


def shard_destination(shard_url: str, user: str, password: str) -> str:
    """Where InfluxDB forwards to reach the shard at `shard_url`, logged in as `user`."""
    parts = urlsplit(shard_url)
    userinfo = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return urlunsplit((parts.scheme, f"{userinfo}@{parts.netloc}", "", "", ""))


def _address(destination: str) -> str:
    return urlsplit(destination).netloc.rsplit("@", 1)[-1]


def _drop(admin: InfluxClient, subscription: Subscription) -> None:
    admin.query(f'DROP SUBSCRIPTION "{subscription.name}" ON '
                f'"{subscription.database}"."{subscription.retention_policy}"', method="POST")


def sharded_destinations(destinations: list[str]) -> list[str]:
    """The destination list of the sharded subscription: each shard twice in a row.

    `ANY` sends each write request to the next destination in turn, and each write of
    transactions a shard scores brings back one write of scored points, which takes the
    next turn. With each shard listed once, two shards and one writer, the transactions
    would then all go to the same shard; listed twice, a shard's own scored points take
    its second turn and the next write of transactions goes to the next shard.
    """
    return [destination for destination in destinations for _ in range(2)]


def sharded_name(destinations: list[str]) -> str:
    """The subscription's name: a digest of its destinations, so changed ones get a new
    name (InfluxDB's subscriber would keep the old writer under the old one)."""
    digest = hashlib.sha256("\n".join(destinations).encode()).hexdigest()[:12]
    return SHARDED_SUBSCRIPTION + digest


def ensure_sharded(admin: InfluxClient, database: str, retention_policy: str,
                   destinations: list[str]) -> Mending:
    """Several Kapacitor shards: one `ANY` subscription sends each write on `database` to
    one of `destinations`, and no other subscription on it sends to a shard.

    Each shard's own subscription management is off; a subscription one of them made
    before (`kapacitor-<cluster id>`) would send it every write a second time, so it
    goes, as does a sharded subscription with other destinations (a shard count or
    login changed). Returns the checks of the destinations and what was dropped.
    """
    listed = sharded_destinations(destinations)
    name = sharded_name(listed)
    shards = {_address(d) for d in destinations}
    dropped, current = [], None
    for subscription in list_subscriptions(admin):
        if subscription.database != database:
            continue
        if (subscription.name, subscription.retention_policy) == (name, retention_policy):
            current = subscription
        elif subscription.name.startswith(SHARDED_SUBSCRIPTION):
            _drop(admin, subscription)
            dropped.append(Dropped(subscription, STALE_SHARDS))
        elif any(_address(d) in shards for d in subscription.destinations):
            _drop(admin, subscription)
            dropped.append(Dropped(subscription, BESIDE_SHARDS))
    if current is None:
        quoted = ", ".join(f"'{d}'" for d in listed)
        admin.query(f'CREATE SUBSCRIPTION "{name}" ON "{database}"."{retention_policy}" '
                    f"DESTINATIONS ANY {quoted}", method="POST")
    return Mending(tuple(check_database(admin, database)), tuple(dropped))


def retire_sharded(admin: InfluxClient, database: str) -> tuple[Subscription, ...]:
    """Drop the sharded subscription on `database` (back to one Kapacitor)."""
    retired = tuple(s for s in list_subscriptions(admin)
                    if s.database == database and s.name.startswith(SHARDED_SUBSCRIPTION))
    for subscription in retired:
        _drop(admin, subscription)
    return retired


def keep_stream_subscription(admin: InfluxClient, settings: Settings,
                             kapacitor: KapacitorClient, timeout: float) -> Mending:
    """The subscription the stream needs: Kapacitor's own with one shard, tickml's `ANY`
    one over several (each destination logging in with the writer login).

    Raises:
        ValueError: several shards but no writer login in the settings.
    """
    if not settings.sharded:
        return ensure_subscribed(admin, kapacitor, settings.influx_db, timeout)
    if not settings.kapacitor_writer_user:
        raise ValueError("several Kapacitor shards need the login InfluxDB's subscription "
                         "sends them: set KAPACITOR_WRITER_USER and KAPACITOR_WRITER_PASSWORD")
    destinations = [shard_destination(url, settings.kapacitor_writer_user,
                                      settings.kapacitor_writer_password)
                    for url in settings.kapacitor_urls]
    return ensure_sharded(admin, settings.influx_db, STREAM_RETENTION_POLICY, destinations)
