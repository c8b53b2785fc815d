"""Test helpers that play Kapacitor's side of a UDF connection over a real socket."""

from __future__ import annotations

import socket

from tickml import schema
from tickml.udf import udf_pb2
from tickml.udf.framing import FrameReader, decode_varint, encode_frame


class KapacitorSide:
    """Writes Requests and reads Responses on one end of a socket pair."""

    def __init__(self, sock: socket.socket, timeout: float = 30.0) -> None:
        sock.settimeout(timeout)
        self.sock = sock
        self.reader = FrameReader(sock)

    def send(self, request: udf_pb2.Request) -> None:
        self.sock.sendall(encode_frame(request))

    def receive(self) -> udf_pb2.Response | None:
        body = self.reader.read_frame()
        if body is None:
            return None
        response = udf_pb2.Response()
        response.ParseFromString(body)
        return response

    def receive_kind(self, kind: str) -> udf_pb2.Response:
        """The next response of `kind`, skipping heartbeats."""
        while True:
            response = self.receive()
            assert response is not None, f"connection closed while waiting for {kind}"
            if response.WhichOneof("message") == kind:
                return response
            assert response.WhichOneof("message") == "keepalive", response

    def init(self, **options: object) -> udf_pb2.Response:
        self.send(init_request(**options))
        return self.receive_kind("init")

    def close_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)


def init_request(task: str = "fraud_scoring", **options: object) -> udf_pb2.Request:
    request = udf_pb2.Request()
    request.init.taskID = task
    request.init.nodeID = "fraud2"
    for name, value in options.items():
        option = request.init.options.add()
        option.name = name
        entry = option.values.add()
        if isinstance(value, bool):
            entry.type, entry.boolValue = udf_pb2.BOOL, value
        elif isinstance(value, int):
            entry.type, entry.intValue = udf_pb2.INT, value
        elif isinstance(value, float):
            entry.type, entry.doubleValue = udf_pb2.DOUBLE, value
        elif isinstance(value, str) and value.endswith("ns"):
            entry.type, entry.durationValue = udf_pb2.DURATION, int(value[:-2])
        else:
            entry.type, entry.stringValue = udf_pb2.STRING, str(value)
    return request


def point_request(values: dict[str, float] | None = None, *, time_ns: int = 1_000,
                  tx: str = "tx-1", drop: str | None = None) -> udf_pb2.Request:
    """A transactions point as Kapacitor streams it (features as float fields)."""
    request = udf_pb2.Request()
    point = request.point
    point.time = time_ns
    point.name = schema.TRANSACTIONS
    point.database = "fraud"
    point.retentionPolicy = "autogen"
    point.tags["source"] = "test"
    point.dimensions.append("source")
    point.fieldsString[schema.TRANSACTION_ID] = tx
    point.fieldsInt[schema.LABEL] = 0
    for name in schema.FEATURES:
        if name != drop:
            point.fieldsDouble[name] = (values or {}).get(name, 0.1)
    return request


def keepalive_request(time_ns: int) -> udf_pb2.Request:
    request = udf_pb2.Request()
    request.keepalive.time = time_ns
    return request


def split_responses(frames: bytes) -> list[udf_pb2.Response]:
    """The Responses in a run of frames, as Kapacitor reads them."""
    responses, start = [], 0
    while start < len(frames):
        decoded = decode_varint(frames, start)
        assert decoded is not None, "a frame's length prefix is cut off"
        length, start = decoded
        assert start + length <= len(frames), "a frame is cut off"
        responses.append(udf_pb2.Response.FromString(frames[start:start + length]))
        start += length
    return responses
