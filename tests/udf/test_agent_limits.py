"""The agent's own limits, on a real unix socket: who may connect, and how many at once."""

from __future__ import annotations

import grp
import logging
import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.polling import wait_until
from tickml.stack.programs import free_port, short_socket_path
from tickml.udf import udf_pb2
from tickml.udf.options import ScoringOptions
from tickml.udf.server import AgentLimits, AgentServer, SocketSetupError

from .kapacitor_side import KapacitorSide


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator:
    """Start an agent server in a thread on a socket under `tmp_path`; stop it afterwards."""
    servers: list[tuple[AgentServer, threading.Thread]] = []

    def start(limits: AgentLimits | None = None) -> AgentServer:
        path = short_socket_path(tmp_path)
        server = AgentServer(path, ScoringOptions(url=f"http://127.0.0.1:{free_port()}"), limits)
        server.bind()
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return server

    yield start
    for server, thread in servers:
        server.stop()
        thread.join(timeout=10)


@pytest.fixture
def connect() -> Iterator:
    """Connect to an agent as Kapacitor would; every socket is closed after the test."""
    opened: list[socket.socket] = []

    def open_side(server: AgentServer) -> KapacitorSide:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        opened.append(sock)
        sock.connect(str(server.path))
        return KapacitorSide(sock, timeout=10)

    yield open_side
    for sock in opened:
        sock.close()


def info(side: KapacitorSide) -> udf_pb2.Response:
    request = udf_pb2.Request()
    request.info.SetInParent()
    side.send(request)
    return side.receive()


def test_the_socket_is_readable_and_writable_by_the_agents_user_and_group_only(
        start_agent) -> None:
    server = start_agent()
    mode = server.path.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660
    assert server.path.stat().st_gid == os.getegid()


def test_the_socket_can_be_given_to_a_group(start_agent) -> None:
    own = grp.getgrgid(os.getegid()).gr_name  # a group this user may give files to
    server = start_agent(AgentLimits(socket_group=own))
    assert server.path.stat().st_gid == os.getegid()
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o660


def test_an_unknown_socket_group_stops_the_agent_with_its_name(tmp_path: Path) -> None:
    path = short_socket_path(tmp_path)
    server = AgentServer(path, ScoringOptions(), AgentLimits(socket_group="no-such-group-x"))
    with pytest.raises(SocketSetupError, match="no group named 'no-such-group-x'"):
        server.bind()
    assert not path.exists(), "no socket is left behind"


def test_connections_beyond_the_limit_are_refused_with_a_reason_and_a_log_line(
        start_agent, connect, caplog: pytest.LogCaptureFixture) -> None:
    server = start_agent(AgentLimits(max_connections=2))
    held = [connect(server), connect(server)]
    for side in held:  # both are served
        assert info(side).WhichOneof("message") == "info"
    with caplog.at_level(logging.WARNING, logger="tickml.udf.server"):
        extra = connect(server)
        refusal = extra.receive()
        assert refusal.WhichOneof("message") == "error"
        assert "at most 2 connections" in refusal.error.error
        assert "TICKML_UDF_MAX_CONNECTIONS" in refusal.error.error
        assert extra.receive() is None, "the refused connection is closed"
    assert [r.getMessage() for r in caplog.records if "refused" in r.getMessage()] == [
        "conn-3: refused: the agent serves at most 2 connections at once "
        "(TICKML_UDF_MAX_CONNECTIONS)"]
    assert server.open_connections == 2
    held[0].close_write()
    assert held[0].receive() is None
    assert wait_until(lambda: server.open_connections == 1, timeout=10, interval=0.05)
    again = connect(server)
    assert info(again).WhichOneof("message") == "info", "a freed slot is served again"
    for side in (held[1], again):
        side.close_write()


def test_many_connections_at_once_never_exceed_the_limit(start_agent, connect) -> None:
    server = start_agent(AgentLimits(max_connections=3))
    sides = [connect(server) for _ in range(10)]
    answers = [side.receive() if i >= 3 else info(side) for i, side in enumerate(sides)]
    assert [a.WhichOneof("message") for a in answers] == ["info"] * 3 + ["error"] * 7
    assert server.open_connections == 3
    for side in sides[:3]:
        side.close_write()
