from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from .local_http import QuietHandler, serving


@pytest.fixture
def socket_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected pair of unix stream sockets, closed after the test."""
    left, right = socket.socketpair()
    yield left, right
    left.close()
    right.close()


@dataclass
class UnavailableApi:
    """A model API that answers every call 503; `calls` counts the calls it received."""

    url: str = ""
    calls: int = 0


@pytest.fixture
def unavailable_api() -> Iterator[UnavailableApi]:
    api = UnavailableApi()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            api.calls += 1
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

    with serving(Handler) as url:
        api.url = url
        yield api
