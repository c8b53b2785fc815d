"""The model API's replicas behind one host name, each with its own kept-alive connection.

A scaled Compose service answers its name with the address of every replica (Docker's
embedded DNS does so for `docker compose up --scale api=3`), and so does a headless
Kubernetes service. `ReplicaPool` keeps one HTTP connection per address and hands the
replicas out in turn, one batch each (round robin). A replica that failed (refused,
reset, timed out, 5xx) goes to the back of the line for a while (`FIRST_DOWN_SECONDS`,
doubling with each further failure up to `MAX_DOWN_SECONDS`), so the batches after it
go to the others without waiting; it is tried again when that time is up, or sooner
when every other replica fails too.

The name is looked up again every `resolve_interval` seconds, so a replica that starts
gets batches within that time and one that is removed is dropped with its connection.
An answer that fails or is empty keeps the replicas known so far. An address literal
is one replica and is never looked up; so is a name with one address, as before
replicas existed, except that its address is looked up again when due.

Each connection goes to its replica's address while the request names the host
(`Host:`, and for HTTPS the server name and the certificate checked), as one
connection to the name would.
"""

from __future__ import annotations

import http.client
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Mapping, Sequence

log = logging.getLogger(__name__)
#: Seconds a failed replica waits behind the others; doubles with each failure in a row.
FIRST_DOWN_SECONDS = 1.0
MAX_DOWN_SECONDS = 30.0
#: Seconds between two look-ups of the API's host name, unless set otherwise.
RESOLVE_INTERVAL = 5.0

#: Every address a host name stands for, in the resolver's order (a function from host
#: to addresses: `resolve_host`, or a stand-in in tests).
Resolver = Callable[[str], list[str]]


def resolve_host(host: str) -> list[str]:
    """Every TCP address `host` resolves to, in the system resolver's order, once each.

    Raises:
        OSError: the name cannot be resolved (socket.gaierror).
    """
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_address(host: str) -> bool:
    """True when `host` is an IPv4 or IPv6 address literal, not a name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Replica:
    """One address of the API's host: its kept-alive connection and its recent failures."""

    __slots__ = ("_connect", "_connection", "address", "down_until", "failures")

    def __init__(self, address: str, connect: Callable[[], http.client.HTTPConnection]) -> None:
        self.address = address
        self._connect = connect
        self._connection: http.client.HTTPConnection | None = None
        self.down_until = 0.0  # clock time before which others go first
        self.failures = 0  # failures in a row

    def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """The status and body of one POST; a kept-alive connection the server has
        closed meanwhile is replaced once, at once, as requests' pool does.

        Raises:
            OSError, http.client.HTTPException: no answer (TimeoutError on a timeout).
        """
        reused = self._connection is not None
        try:
            return self._exchange(path, body, headers)
        except (ConnectionError, http.client.BadStatusLine):
            if not reused:
                raise
        return self._exchange(path, body, headers)

    def _exchange(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        if self._connection is None:
            self._connection = self._connect()
        try:
            self._connection.request("POST", path, body=body, headers=headers)
            response = self._connection.getresponse()
            answer = response.read()
        except BaseException:
            self.close()
            raise
        if response.will_close:
            self.close()
        return response.status, answer

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __repr__(self) -> str:
        return f"Replica({self.address!r}, failures={self.failures})"


class ReplicaPool:
    """The replicas of `host`, handed out in turn; see the module's docstring.

    Args:
        host: the URL's host: a name, or an address literal (never looked up).
        port: the port every replica listens on.
        https: connect with TLS, checking the certificate against `host`.
        timeout: seconds per connect and per read.
        resolve: host → addresses; the system resolver unless a test gives a stand-in.
        resolve_interval: seconds between look-ups of `host` (0: before every batch).
        clock: monotonic seconds (tests give a fake one).
    """

    def __init__(self, host: str, port: int, *, https: bool = False, timeout: float = 2.0,
                 resolve: Resolver = resolve_host, resolve_interval: float = RESOLVE_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.host = host
        self.port = port
        self.https = https
        self.timeout = timeout
        self.resolve_interval = resolve_interval
        self._resolve = resolve
        self._clock = clock
        self._next = 0  # where the next turn starts
        self._replicas: tuple[Replica, ...] = ()
        self._lookup_problem = ""  # why the last look-up failed, logged once
        if is_address(host):
            self._replicas = (Replica(host, self._connection_to_host),)
            self._resolve_at = float("inf")
        else:
            self._resolve_at = clock()  # at the first turn, not in the constructor

    @property
    def replicas(self) -> tuple[Replica, ...]:
        """The replicas known now, in the resolver's order."""
        return self._replicas

    def turn(self) -> Sequence[Replica]:
        """The replicas to try for the next batch, in order: those in good standing from
        the next in turn, then those that failed lately, the soonest back first.

        Looks the name up again first when it is due. Empty when the name has never
        resolved.
        """
        now = self._clock()
        if now >= self._resolve_at:
            self._refresh(now)
        replicas = self._replicas
        if len(replicas) < 2:
            return replicas
        count = len(replicas)
        start = self._next % count
        ready: list[Replica] = []
        resting: list[Replica] = []
        for offset in range(count):
            replica = replicas[(start + offset) % count]
            (ready if replica.down_until <= now else resting).append(replica)
        if ready:
            self._next = replicas.index(ready[0]) + 1
        resting.sort(key=lambda replica: replica.down_until)
        return ready + resting

    def failed(self, replica: Replica, reason: str) -> None:
        """`replica` did not answer (or answered 5xx): the others go first for a while."""
        replica.failures += 1
        rest = min(FIRST_DOWN_SECONDS * 2 ** (replica.failures - 1), MAX_DOWN_SECONDS)
        replica.down_until = self._clock() + rest
        if replica.failures == 1 and len(self._replicas) > 1:
            log.warning("model API replica %s of %s: %s; the other replicas take its batches",
                        replica.address, self.host, reason)

    def succeeded(self, replica: Replica) -> None:
        """`replica` answered (anything below 500)."""
        if replica.failures:
            if len(self._replicas) > 1:
                log.info("model API replica %s of %s answers again", replica.address, self.host)
            replica.failures = 0
            replica.down_until = 0.0

    def close(self) -> None:
        """Close every replica's connection; the pool stays usable."""
        for replica in self._replicas:
            replica.close()

    def _refresh(self, now: float) -> None:
        """Look the host up again: new addresses join, vanished ones are dropped."""
        try:
            addresses = list(dict.fromkeys(self._resolve(self.host)))
            problem = "" if addresses else "no addresses"
        except OSError as exc:
            addresses, problem = [], str(exc) or type(exc).__name__
        if problem:
            # Keep what is known; with nothing known, look again at the next batch.
            self._resolve_at = now + self.resolve_interval if self._replicas else now
            if problem != self._lookup_problem:  # once, not at every retry
                log.warning("model API: cannot look up %s (%s)%s", self.host, problem,
                            f"; keeping its {len(self._replicas)} known address(es)"
                            if self._replicas else "")
            self._lookup_problem = problem
            return
        if self._lookup_problem:
            log.info("model API: %s is looked up again", self.host)
            self._lookup_problem = ""
        self._resolve_at = now + self.resolve_interval
        known = {replica.address: replica for replica in self._replicas}
        if list(known) == addresses:
            return
        replicas = tuple(known.pop(address, None) or self._new_replica(address)
                         for address in addresses)
        for gone in known.values():
            gone.close()
        if self._replicas or len(replicas) > 1:
            log.info("model API: %s has %d replica(s): %s", self.host, len(replicas),
                     ", ".join(addresses))
        self._replicas = replicas

    def _new_replica(self, address: str) -> Replica:
        return Replica(address, lambda: self._connection_to(address))

    def _connection_kind(self) -> type[http.client.HTTPConnection]:
        return http.client.HTTPSConnection if self.https else http.client.HTTPConnection

    def _connection_to_host(self) -> http.client.HTTPConnection:
        return self._connection_kind()(self.host, self.port, timeout=self.timeout)

    def _connection_to(self, address: str) -> http.client.HTTPConnection:
        """A connection to `address` that names `self.host` in its requests (and TLS)."""
        connection = self._connection_to_host()
        # http.client opens its socket through this attribute with (host, port): send it
        # to the replica's address instead, keeping the name for Host: and for TLS.
        connection._create_connection = (  # type: ignore[attr-defined]
            lambda where, *args, **kwargs: socket.create_connection(
                (address, where[1]), *args, **kwargs))
        return connection
