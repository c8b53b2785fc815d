"""The connection handler over a real socket, with Kapacitor's side played by the test.

The API here is either a closed port (unreachable) or a listening socket that never
answers (slow); scoring against the real API is covered by the end-to-end tests.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tests.polling import wait_until
from tickml.schema import REASON, SCORED
from tickml.stack.programs import free_port
from tickml.udf import udf_pb2
from tickml.udf.handler import ConnectionHandler
from tickml.udf.options import ScoringOptions

from .conftest import UnavailableApi
from .kapacitor_side import KapacitorSide, keepalive_request, point_request
from .local_http import QuietHandler, serving


@pytest.fixture
def silent_api() -> Iterator[str]:
    """An HTTP address that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


@pytest.fixture
def web_page_server() -> Iterator[str]:
    """A web server that is not tickml's API: it answers every POST with an HTML page."""

    class PageHandler(QuietHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            page = b"<html><body>Welcome</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

    with serving(PageHandler) as url:
        yield url


@pytest.fixture
def connect(socket_pair):
    """Start a handler on one end of a socket pair; return Kapacitor's end."""
    threads = []

    def start(**defaults: object) -> tuple[KapacitorSide, ConnectionHandler]:
        kapacitor_end, agent_end = socket_pair
        options = ScoringOptions(**{"url": f"http://127.0.0.1:{free_port()}", **defaults})
        handler = ConnectionHandler(agent_end, options, name="test")
        thread = threading.Thread(target=handler.run, daemon=True)
        thread.start()
        threads.append(thread)
        return KapacitorSide(kapacitor_end), handler

    yield start
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive(), "the handler did not stop after end of stream"


def test_info_declares_a_stream_udf_with_options(connect) -> None:
    kapacitor, _ = connect()
    request = udf_pb2.Request()
    request.info.SetInParent()
    kapacitor.send(request)
    info = kapacitor.receive_kind("info").info
    assert info.wants == udf_pb2.STREAM and info.provides == udf_pb2.STREAM
    assert {"url", "batchSize", "maxWait", "timeout", "threshold"} <= set(info.options)
    kapacitor.close_write()
    assert kapacitor.receive() is None  # the agent closes its side after EOF


def test_bad_options_fail_init_with_one_clear_message(connect) -> None:
    kapacitor, _ = connect()
    init = kapacitor.init(batchSize=0, url="nope").init
    assert init.success is False
    assert "batchSize must be between 1 and 10000" in init.error
    assert "url must be an http(s) URL" in init.error
    kapacitor.close_write()


def test_keepalive_snapshot_and_restore_are_answered(connect) -> None:
    kapacitor, _ = connect()
    assert kapacitor.init().init.success
    kapacitor.send(keepalive_request(123456789))
    assert kapacitor.receive_kind("keepalive").keepalive.time == 123456789
    snapshot = udf_pb2.Request()
    snapshot.snapshot.SetInParent()
    kapacitor.send(snapshot)
    assert kapacitor.receive().WhichOneof("message") == "snapshot"
    restore = udf_pb2.Request()
    restore.restore.snapshot = b""
    kapacitor.send(restore)
    assert kapacitor.receive_kind("restore").restore.success is True
    kapacitor.close_write()
    assert kapacitor.receive() is None


def test_unreachable_api_marks_points_in_order_with_reasons(connect) -> None:
    kapacitor, handler = connect(retry_for=0.3, max_wait=0.01)
    assert kapacitor.init().init.success
    kapacitor.send(point_request(tx="a"))
    kapacitor.send(point_request(tx="b", drop="V14"))
    kapacitor.send(point_request(tx="c"))
    out = [kapacitor.receive_kind("point").point for _ in range(3)]
    assert [p.fieldsString["transaction_id"] for p in out] == ["a", "b", "c"]
    assert [p.fieldsBool[SCORED] for p in out] == [False, False, False]
    assert [p.fieldsString[REASON] for p in out] == [
        "api unreachable", "missing feature V14", "api unreachable"]
    kapacitor.close_write()
    assert kapacitor.receive() is None
    assert handler.stats.points_in == 3 and handler.stats.unscored == 3


def test_a_url_that_is_not_the_model_api_marks_points_with_the_reason(
        connect, web_page_server) -> None:
    kapacitor, _ = connect(url=web_page_server, retry_for=0.3, max_wait=0.0)
    assert kapacitor.init().init.success
    kapacitor.send(point_request(tx="a"))
    point = kapacitor.receive_kind("point").point
    assert not point.fieldsBool[SCORED]
    assert point.fieldsString[REASON].startswith("api answered an unreadable body")
    kapacitor.close_write()
    assert kapacitor.receive() is None


def test_keepalives_are_answered_while_the_api_hangs(connect, silent_api) -> None:
    kapacitor, _ = connect(url=silent_api, timeout=3.0, retry_for=3.0, max_wait=0.0)
    assert kapacitor.init().init.success
    kapacitor.send(point_request(tx="slow"))
    kapacitor.send(keepalive_request(42))
    first = kapacitor.receive()
    assert first.WhichOneof("message") == "keepalive" and first.keepalive.time == 42
    point = kapacitor.receive_kind("point").point
    assert point.fieldsString[REASON].startswith("api timeout")
    kapacitor.close_write()


def test_a_full_queue_holds_kapacitor_back_with_heartbeats_and_loses_nothing(
    connect, silent_api
) -> None:
    kapacitor, handler = connect(url=silent_api, timeout=0.5, retry_for=1.0, batch_size=2,
                                 max_pending=2, max_wait=0.0)
    assert kapacitor.init(batchSize=2, maxPending=2).init.success
    sent = [f"tx-{i}" for i in range(8)]
    for tx in sent:
        kapacitor.send(point_request(tx=tx))
    kapacitor.close_write()
    heartbeats, received = 0, []
    while (response := kapacitor.receive()) is not None:
        if response.WhichOneof("message") == "keepalive":
            heartbeats += 1
        else:
            received.append(response.point.fieldsString["transaction_id"])
    assert received == sent
    assert heartbeats >= 1
    assert handler.batcher.max_pending == 2


def test_end_of_stream_flushes_pending_points_before_closing(connect) -> None:
    kapacitor, _ = connect(retry_for=0.0, max_wait=5.0, batch_size=1000)
    assert kapacitor.init().init.success
    for i in range(5):
        kapacitor.send(point_request(tx=str(i)))
    kapacitor.close_write()  # long before maxWait expires
    out = []
    while (response := kapacitor.receive()) is not None:
        if response.WhichOneof("message") == "point":
            out.append(response.point.fieldsString["transaction_id"])
    assert out == ["0", "1", "2", "3", "4"]


def test_end_of_stream_answers_the_pending_points_at_once_while_the_api_is_down(
        connect, unavailable_api: UnavailableApi) -> None:
    # Kapacitor stops a task by ending the stream, and it waits for this connection to
    # close, holding every other task change, for as long as the agent takes.
    kapacitor, _ = connect(url=unavailable_api.url, retry_for=60.0, batch_size=2, max_wait=0.0)
    assert kapacitor.init().init.success
    sent = [f"tx-{i}" for i in range(6)]
    for tx in sent:
        kapacitor.send(point_request(tx=tx))
    assert wait_until(lambda: unavailable_api.calls >= 2, timeout=10), "no retry to cut short"
    calls_at_the_stop = unavailable_api.calls
    kapacitor.close_write()
    out = []
    while (response := kapacitor.receive()) is not None:
        if response.WhichOneof("message") == "point":
            out.append(response.point)
    assert [p.fieldsString["transaction_id"] for p in out] == sent, "a pending point was lost"
    assert not any(p.fieldsBool[SCORED] for p in out)
    assert {p.fieldsString[REASON] for p in out} == {
        "api error 503 (not retried: the task was stopping)"}
    # At most the call already under way when the stream ended; no batch after it calls.
    assert unavailable_api.calls <= calls_at_the_stop + 1
