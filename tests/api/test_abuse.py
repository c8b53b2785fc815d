"""A real gunicorn under abuse: slow clients, large bodies at once, oversized chunked bodies.

No time is asserted: a request blocked behind slow clients fails by its (generous)
timeout, and the memory bound shows as the 503 that refuses a second large body.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pytest
import requests

from tests.api.conftest import MAX_BODY_BYTES, Server, copy_registry
from tests.polling import wait_until
from tickml.bench.abuse import SLOW_CLIENTS, SlowClients, empty_objects_body
from tickml.config import Settings
from tickml.files import write_json_atomically

BLOCKED_AFTER = 20  # seconds: far beyond an answer, short of a hung test
LARGE_BODY_BYTES = 64 * 1024


def port_of(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def test_slow_clients_do_not_block_health_or_predict(server: Server,
                                                     transactions: list[dict]) -> None:
    with SlowClients(port_of(server)) as slow:
        # every slow client is connected and has sent header lines before we ask
        assert wait_until(lambda: slow.still_connected() == SLOW_CLIENTS, timeout=10)
        for _ in range(3):
            health = requests.get(server.url + "/health", timeout=BLOCKED_AFTER)
            assert health.status_code == 200
            predict = requests.post(server.url + "/predict", json=transactions[0],
                                    timeout=BLOCKED_AFTER)
            assert predict.status_code == 200
            assert 0 <= predict.json()["predictions"][0]["probability"] <= 1
        assert slow.still_connected() == SLOW_CLIENTS  # they were held, not dropped


@pytest.fixture(scope="module")
def capped_server(small_project: Settings, tmp_path_factory: pytest.TempPathFactory,
                  make_server) -> Iterator[Server]:
    """One worker that reads one body over 64 KiB at a time."""
    registry = copy_registry(small_project, tmp_path_factory.mktemp("capped") / "models")
    yield make_server(registry, api_workers=1, api_large_body_bytes=LARGE_BODY_BYTES,
                      api_large_bodies=1)


def start_large_body(server: Server, body: bytes, sent: int) -> socket.socket:
    """A POST /predict of `body` whose headers and first `sent` bytes are sent."""
    conn = socket.create_connection(("127.0.0.1", port_of(server)), timeout=30)
    conn.sendall(f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                 f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
    conn.sendall(body[:sent])
    return conn


def test_a_second_large_body_at_once_is_503_with_retry_after(
        capped_server: Server, transactions: list[dict]) -> None:
    body = empty_objects_body(2 * LARGE_BODY_BYTES)
    holder = start_large_body(capped_server, body, 100)
    try:
        refusals: list[requests.Response] = []

        def refused() -> bool:
            response = requests.post(capped_server.url + "/predict", data=body, timeout=30,
                                     headers={"Content-Type": "application/json"})
            refusals.append(response)
            return response.status_code == 503

        assert wait_until(refused, timeout=30, interval=0.2), [r.status_code for r in refusals]
        answer = refusals[-1]
        assert answer.headers["Retry-After"] == "1"
        assert answer.json()["error"]["code"] == "too_many_large_bodies"
        # small requests never wait for a slot
        assert capped_server.post("/predict", transactions[0]).status_code == 200
        holder.sendall(body[100:])
        first = b"".join(iter(lambda: holder.recv(65536), b"")).decode()  # to its close
        # read and parsed: ~43,000 empty objects are more than MAX_INSTANCES
        assert first.startswith("HTTP/1.1 413"), first
        assert "too_many_instances" in first
    finally:
        holder.close()
    # the slot is free again
    again = requests.post(capped_server.url + "/predict", data=body, timeout=30,
                          headers={"Content-Type": "application/json"})
    assert again.status_code == 413
    assert again.json()["error"]["code"] == "too_many_instances"


def chunks(data: bytes, size: int = 16 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def test_a_chunked_body_over_the_limit_is_413(server: Server) -> None:
    body = empty_objects_body(MAX_BODY_BYTES + 1024)
    response = requests.post(server.url + "/predict", data=chunks(body), timeout=30,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_chunked_body_within_the_limit_is_scored(server: Server,
                                                   transactions: list[dict]) -> None:
    body = requests.models.complexjson.dumps({"instances": transactions[:50]}).encode()
    response = requests.post(server.url + "/predict", data=chunks(body, 4096), timeout=30,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 50


def test_a_huge_body_of_empty_objects_is_refused_unread(server: Server) -> None:
    body = empty_objects_body(16 * 1024 * 1024)
    try:
        response = requests.post(server.url + "/predict", data=body, timeout=60,
                                 headers={"Content-Type": "application/json"})
        assert response.status_code == 413
    except requests.ConnectionError:
        pass  # refused before the body was sent: the server closed the connection
    assert requests.get(server.url + "/health", timeout=30).status_code == 200


ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[\w.-]+/)+")


def test_ready_names_no_paths_and_no_pids(small_project: Settings, tmp_path,
                                          make_server) -> None:
    registry = copy_registry(small_project, tmp_path / "models")
    (registry.root / "production.json").unlink()
    server = make_server(registry)
    not_ready = server.get("/ready")
    assert not_ready.status_code == 503
    body = not_ready.text
    assert "no production model in models" in not_ready.json()["reason"]
    assert str(tmp_path) not in body and not ABSOLUTE_PATH.search(body), body
    assert "pid" not in not_ready.json()
    write_json_atomically(registry.root / "production.json", {"name": "fraud-lgbm", "version": 99})
    assert wait_until(lambda: server.get("/ready").json()["refused"] is not None, timeout=30)
    refused = server.get("/ready").text
    assert str(tmp_path) not in refused and not ABSOLUTE_PATH.search(refused), refused
