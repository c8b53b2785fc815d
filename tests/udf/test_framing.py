"""Framing: varints, frames split at any byte, clean and unclean end of stream."""

from __future__ import annotations

import socket
import threading

import pytest

from tickml.udf import udf_pb2
from tickml.udf.framing import (
    FrameReader,
    ProtocolError,
    decode_varint,
    encode_frame,
    encode_varint,
)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02"),
     (2**32 - 1, b"\xff\xff\xff\xff\x0f")],
)
def test_varint_matches_protobuf_encoding(value: int, encoded: bytes) -> None:
    assert encode_varint(value) == encoded
    assert decode_varint(encoded) == (value, len(encoded))


def test_incomplete_varint_asks_for_more_bytes() -> None:
    assert decode_varint(b"\x80") is None


def test_overlong_varint_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="length prefix longer"):
        decode_varint(b"\xff" * 11)


def keepalive(time: int) -> udf_pb2.Request:
    request = udf_pb2.Request()
    request.keepalive.time = time
    return request


def send_in_pieces(sock: socket.socket, data: bytes, piece: int) -> None:
    for start in range(0, len(data), piece):
        sock.sendall(data[start:start + piece])
    sock.shutdown(socket.SHUT_WR)


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 4096])
def test_frames_arrive_whole_however_the_bytes_are_split(piece: int, socket_pair) -> None:
    left, right = socket_pair
    stream = b"".join(encode_frame(keepalive(t)) for t in (1, 300, 2**40))
    writer = threading.Thread(target=send_in_pieces, args=(left, stream, piece))
    writer.start()
    reader = FrameReader(right)
    times = []
    while (request := reader.read_request()) is not None:
        times.append(request.keepalive.time)
    writer.join()
    assert times == [1, 300, 2**40]


def test_end_of_stream_inside_a_frame_is_an_error(socket_pair) -> None:
    left, right = socket_pair
    frame = encode_frame(keepalive(12345))
    left.sendall(frame[:-1])
    left.shutdown(socket.SHUT_WR)
    with pytest.raises(ProtocolError, match="stream ended inside a frame"):
        FrameReader(right).read_frame()


def test_zero_length_frame_is_an_empty_message(socket_pair) -> None:
    left, right = socket_pair
    left.sendall(b"\x00")
    left.shutdown(socket.SHUT_WR)
    reader = FrameReader(right)
    assert reader.read_frame() == b""
    assert reader.read_frame() is None
