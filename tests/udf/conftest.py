from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


@pytest.fixture
def socket_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected pair of unix stream sockets, closed after the test."""
    left, right = socket.socketpair()
    yield left, right
    left.close()
    right.close()
