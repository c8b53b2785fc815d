"""Length-prefixed framing of the Kapacitor UDF protocol.

Each message on the socket is its serialized protobuf preceded by the byte
length as an unsigned base-128 varint (protobuf's own varint encoding).
"""

from __future__ import annotations

import socket

from tickml.udf import udf_pb2

MAX_VARINT_BYTES = 10
#: A frame longer than this is treated as a corrupt stream rather than allocated.
MAX_FRAME_BYTES = 64 * 1024 * 1024
READ_CHUNK = 64 * 1024


class ProtocolError(RuntimeError):
    """The byte stream does not follow the UDF framing."""


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128 encoding of a non-negative integer."""
    if value < 0:
        raise ValueError(f"varints here are unsigned, got {value}")
    if value < 0x4000:  # one or two bytes: every frame length and most field lengths
        return bytes((value,)) if value < 0x80 else bytes((value & 0x7F | 0x80, value >> 7))
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def decode_varint(buffer: bytes | bytearray, start: int = 0) -> tuple[int, int] | None:
    """Decode a varint at `start`: (value, index after it), or None if incomplete."""
    if start + 1 < len(buffer) and buffer[start + 1] < 0x80 <= buffer[start]:
        return (buffer[start] & 0x7F) | buffer[start + 1] << 7, start + 2  # most frames
    value = 0
    for i in range(MAX_VARINT_BYTES):
        if start + i >= len(buffer):
            return None
        byte = buffer[start + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, start + i + 1
    raise ProtocolError(f"length prefix longer than {MAX_VARINT_BYTES} bytes")


def encode_frame(message: udf_pb2.Response | udf_pb2.Request) -> bytes:
    """The message's bytes preceded by their varint length."""
    body = message.SerializeToString()
    return encode_varint(len(body)) + body


class FrameReader:
    """Reads whole frames from a stream socket, however the bytes arrive."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self._start = 0  # where the next frame begins in _buffer

    def read_frame(self) -> bytes | None:
        """The next frame's body, or None on a clean end of stream between frames.

        Raises:
            ProtocolError: the stream ended inside a frame, or a length is absurd.
        """
        while True:
            decoded = decode_varint(self._buffer, self._start)
            if decoded is not None:
                length, start = decoded
                if length > MAX_FRAME_BYTES:
                    raise ProtocolError(f"frame of {length} bytes exceeds {MAX_FRAME_BYTES}")
                end = start + length
                if len(self._buffer) >= end:
                    # Frames are sliced off by moving `_start`; the consumed bytes go
                    # when the buffer is refilled, not once per frame.
                    self._start = end
                    return bytes(self._buffer[start:end])
            if not self._fill():
                if len(self._buffer) > self._start:
                    raise ProtocolError(f"stream ended inside a frame "
                                        f"({len(self._buffer) - self._start} bytes pending)")
                return None

    def _fill(self) -> bool:
        chunk = self._sock.recv(READ_CHUNK)
        if not chunk:
            return False
        del self._buffer[:self._start]
        self._start = 0
        self._buffer += chunk
        return True

    def read_request(self) -> udf_pb2.Request | None:
        """The next Request, or None at the end of the stream."""
        body = self.read_frame()
        if body is None:
            return None
        request = udf_pb2.Request()
        request.ParseFromString(body)
        return request
