"""The client over two stand-in replicas behind one name: turns, a dead one, a failing one."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field

import orjson
import pytest

from tickml import schema
from tickml.udf.client import PredictClient, ScoringUnavailable, Unscored, score_rows

from .local_http import QuietHandler, port_free_on, serving

NAME = "api.replicas.test"
ADDRESSES = ("127.0.0.1", "127.0.0.2")
ROW = [0.1] * len(schema.FEATURES)


@dataclass
class StandIn:
    """One stand-in replica of the API: how many batches it answered, and how."""

    address: str
    calls: int = 0
    status: int = 200
    dead: bool = False  # drops every connection without an answer


@dataclass
class Replicas:
    """Stand-in replicas on one port of several loopback addresses."""

    port: int
    members: dict[str, StandIn]
    servers: dict[str, ExitStack] = field(default_factory=dict)

    def stop(self, address: str) -> None:
        """Take a replica down as a crash would: kept-alive connections are dropped,
        new ones refused."""
        self.members[address].dead = True
        self.servers.pop(address).close()

    def client(self, retry_for: float = 0.0, **kwargs) -> PredictClient:
        return PredictClient(f"http://{NAME}:{self.port}", timeout=2.0, retry_for=retry_for,
                             resolve=lambda host: list(ADDRESSES), **kwargs)


def _handler(member: StandIn) -> type[QuietHandler]:
    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            if member.dead:
                self.close_connection = True
                return
            request = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
            member.calls += 1
            rows = len(request["instances"])
            body = orjson.dumps({"predictions": [{"probability": 0.25, "fraud": False}] * rows,
                                 "model": {"name": member.address, "version": 1}}) \
                if member.status == 200 else b'{"error": {"message": "busy"}}'
            self.send_response(member.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture
def replicas() -> Iterator[Replicas]:
    port = port_free_on(*ADDRESSES)
    group = Replicas(port, {address: StandIn(address) for address in ADDRESSES})
    try:
        for address, member in group.members.items():
            stack = group.servers[address] = ExitStack()
            stack.enter_context(serving(_handler(member), address, port))
        yield group
    finally:
        for stack in group.servers.values():
            stack.close()


def calls(replicas: Replicas) -> dict[str, int]:
    return {address: member.calls for address, member in replicas.members.items()}


def test_batches_go_to_each_replica_the_name_stands_for_in_turn(replicas: Replicas) -> None:
    client = replicas.client()
    try:
        models = [client.predict([ROW] * 3).model for _ in range(10)]
    finally:
        client.close()
    assert models == list(ADDRESSES) * 5
    assert calls(replicas) == dict.fromkeys(ADDRESSES, 5)


def test_a_dead_replica_passes_its_batch_to_the_next_at_once(
        replicas: Replicas, caplog: pytest.LogCaptureFixture) -> None:
    client = replicas.client(retry_for=30.0)
    try:
        client.predict([ROW])  # both connections kept alive from here on
        client.predict([ROW])
        replicas.stop("127.0.0.2")
        started = time.monotonic()
        outcomes = [score_rows(client, [ROW] * 4) for _ in range(10)]
        elapsed = time.monotonic() - started
    finally:
        client.close()
    assert all(o.model == "127.0.0.1" for batch in outcomes for o in batch)
    assert replicas.members["127.0.0.1"].calls == 1 + 10
    assert "retrying" not in caplog.text, "a live replica was left; no batch waited"
    assert elapsed < 1.0, "a batch waited for a backoff"
    assert caplog.text.count("127.0.0.2") == 1, "the dead replica is logged once"


def test_a_replica_answering_5xx_passes_its_batch_to_the_next_at_once(
        replicas: Replicas, caplog: pytest.LogCaptureFixture) -> None:
    replicas.members["127.0.0.1"].status = 503
    client = replicas.client(retry_for=30.0)
    try:
        models = [client.predict([ROW]).model for _ in range(4)]
    finally:
        client.close()
    assert models == ["127.0.0.2"] * 4
    assert replicas.members["127.0.0.1"].calls == 1, "it waits behind the other one"
    assert "retrying" not in caplog.text


def test_when_every_replica_fails_the_batch_is_retried_then_given_up(
        replicas: Replicas) -> None:
    for member in replicas.members.values():
        member.status = 503
    client = replicas.client(retry_for=0.5)
    try:
        outcomes = score_rows(client, [ROW, "missing feature V14"])
    finally:
        client.close()
    assert outcomes == [Unscored("api error 503", api_error=True),
                        Unscored("missing feature V14")]
    assert all(member.calls >= 2 for member in replicas.members.values()), \
        "each round tries every replica"


def test_a_client_giving_up_passes_a_failed_batch_to_no_other_replica(
        replicas: Replicas) -> None:
    replicas.members["127.0.0.1"].status = 503
    give_up = threading.Event()
    give_up.set()
    client = replicas.client(retry_for=30.0, give_up=give_up)
    try:
        with pytest.raises(ScoringUnavailable, match="not retried: the task was stopping"):
            client.predict([ROW])
    finally:
        client.close()
    assert calls(replicas) == {"127.0.0.1": 1, "127.0.0.2": 0}
