"""The replica pool on its own: look-ups, turns, failures, with a stand-in resolver and clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tickml.udf.replicas import (
    FIRST_DOWN_SECONDS,
    MAX_DOWN_SECONDS,
    ReplicaPool,
    is_address,
    resolve_host,
)

from .local_http import QuietHandler, port_free_on, serving

NAME = "api.replicas.test"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Dns:
    """A stand-in resolver: what `answer` holds, or `error` raised; counts its look-ups."""

    def __init__(self, *addresses: str) -> None:
        self.answer = list(addresses)
        self.error: OSError | None = None
        self.lookups = 0

    def __call__(self, host: str) -> list[str]:
        assert host == NAME
        self.lookups += 1
        if self.error is not None:
            raise self.error
        return list(self.answer)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def pool_of(dns: Dns, clock: Clock, interval: float = 5.0) -> ReplicaPool:
    return ReplicaPool(NAME, 5000, resolve=dns, resolve_interval=interval, clock=clock)


def firsts(pool: ReplicaPool, turns: int) -> list[str]:
    """The address each of `turns` batches goes to first."""
    return [pool.turn()[0].address for _ in range(turns)]


@pytest.mark.parametrize(("host", "literal"), [("127.0.0.1", True), ("::1", True),
                                               ("10.0.3.7", True), ("api", False),
                                               ("localhost", False), ("api.replicas.test", False)])
def test_an_address_literal_is_told_from_a_name(host: str, literal: bool) -> None:
    assert is_address(host) is literal


def test_an_address_literal_is_one_replica_and_never_looked_up(clock: Clock) -> None:
    def no_dns(host: str) -> list[str]:
        raise AssertionError(f"looked up {host}")

    pool = ReplicaPool("127.0.0.1", 5000, resolve=no_dns, resolve_interval=0, clock=clock)
    for _ in range(3):
        clock.now += 60
        assert [r.address for r in pool.turn()] == ["127.0.0.1"]


def test_the_system_resolver_answers_each_address_once() -> None:
    assert resolve_host("127.0.0.1") == ["127.0.0.1"]
    assert "127.0.0.1" in resolve_host("localhost")


def test_a_name_is_looked_up_at_the_first_batch_not_before(clock: Clock) -> None:
    dns = Dns("10.0.0.1")
    pool = pool_of(dns, clock)
    assert dns.lookups == 0
    assert [r.address for r in pool.turn()] == ["10.0.0.1"]
    assert dns.lookups == 1


def test_batches_go_to_each_replica_in_turn(clock: Clock) -> None:
    pool = pool_of(Dns("10.0.0.1", "10.0.0.2", "10.0.0.3"), clock)
    assert firsts(pool, 7) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"] * 2 + ["10.0.0.1"]
    turn = [r.address for r in pool.turn()]
    assert turn == ["10.0.0.2", "10.0.0.3", "10.0.0.1"], "the others follow, to try next"


def test_an_answer_that_repeats_an_address_counts_it_once(clock: Clock) -> None:
    pool = pool_of(Dns("10.0.0.1", "10.0.0.2", "10.0.0.1"), clock)
    assert [r.address for r in pool.turn()] == ["10.0.0.1", "10.0.0.2"]


def test_a_failed_replica_waits_behind_the_others_then_gets_its_turn_again(
        clock: Clock) -> None:
    pool = pool_of(Dns("10.0.0.1", "10.0.0.2", "10.0.0.3"), clock)
    turn = pool.turn()
    pool.failed(turn[0], "api unreachable")
    assert firsts(pool, 4) == ["10.0.0.2", "10.0.0.3"] * 2
    assert pool.turn()[-1].address == "10.0.0.1", "still tried when every other one fails"
    clock.now += FIRST_DOWN_SECONDS
    assert sorted(firsts(pool, 3)) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


def test_a_replica_that_keeps_failing_waits_longer_each_time_up_to_a_bound(
        clock: Clock) -> None:
    pool = pool_of(Dns("10.0.0.1", "10.0.0.2"), clock, interval=3600)
    replica = pool.turn()[0]
    waits = []
    for _ in range(8):
        pool.failed(replica, "api timeout after 2s")
        waits.append(replica.down_until - clock.now)
    assert waits == [1, 2, 4, 8, 16, MAX_DOWN_SECONDS, MAX_DOWN_SECONDS, MAX_DOWN_SECONDS]
    pool.succeeded(replica)
    assert (replica.failures, replica.down_until) == (0, 0.0)


def test_a_lone_replica_that_failed_is_still_tried(clock: Clock) -> None:
    pool = pool_of(Dns("10.0.0.1"), clock)
    replica = pool.turn()[0]
    pool.failed(replica, "api unreachable")
    assert pool.turn() == (replica,)


def test_the_name_is_looked_up_again_once_the_interval_passed(clock: Clock) -> None:
    dns = Dns("10.0.0.1", "10.0.0.2")
    pool = pool_of(dns, clock, interval=5)
    kept = {r.address: r for r in pool.turn()}["10.0.0.2"]
    dns.answer = ["10.0.0.2", "10.0.0.3"]  # a replica removed, another one started
    clock.now += 4.9
    pool.turn()
    assert dns.lookups == 1, "looked up again before the interval passed"
    clock.now += 0.1
    assert {r.address for r in pool.turn()} == {"10.0.0.2", "10.0.0.3"}
    assert dns.lookups == 2
    assert {r.address: r for r in pool.replicas}["10.0.0.2"] is kept, \
        "a replica still answered keeps its connection and its standing"


def test_a_failed_look_up_keeps_the_replicas_known(clock: Clock) -> None:
    dns = Dns("10.0.0.1", "10.0.0.2")
    pool = pool_of(dns, clock, interval=5)
    pool.turn()
    dns.error = OSError("Temporary failure in name resolution")
    clock.now += 5
    assert {r.address for r in pool.turn()} == {"10.0.0.1", "10.0.0.2"}
    dns.error, dns.answer = None, []
    clock.now += 5
    assert {r.address for r in pool.turn()} == {"10.0.0.1", "10.0.0.2"}, "an empty answer too"
    assert dns.lookups == 3


def test_a_name_never_resolved_is_looked_up_at_every_batch_until_it_resolves(
        clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    dns = Dns()
    dns.error = OSError("Name or service not known")
    pool = pool_of(dns, clock, interval=5)
    assert pool.turn() == ()
    assert pool.turn() == ()
    dns.error, dns.answer = None, ["10.0.0.1"]
    assert [r.address for r in pool.turn()] == ["10.0.0.1"]
    assert dns.lookups == 3
    assert caplog.text.count("Name or service not known") == 1, "logged once, not each time"


@pytest.fixture
def host_headers() -> Iterator[tuple[int, list[str]]]:
    """A stand-in server on 127.0.0.2 that answers 204 and records each Host header."""
    seen: list[str] = []

    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.headers["Host"])
            self.send_response(204)
            self.end_headers()

    port = port_free_on("127.0.0.2")
    with serving(Handler, "127.0.0.2", port):
        yield port, seen


def test_a_replica_is_reached_at_its_address_under_the_hosts_name(
        host_headers: tuple[int, list[str]]) -> None:
    port, seen = host_headers
    pool = ReplicaPool(NAME, port, resolve=lambda host: ["127.0.0.2"])
    replica = pool.turn()[0]
    try:
        assert [replica.post("/predict", b"{}", {})[0] for _ in range(2)] == [204, 204]
    finally:
        pool.close()
    assert seen == [f"{NAME}:{port}"] * 2
