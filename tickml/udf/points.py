"""From a Kapacitor point to model features, and back to a scored or unscored point.

A scored point is lean by default: the input point's identity (time, measurement,
database, retention policy, group, dimensions, tags), the transaction fields of
`schema.scored_transaction_fields` and the score fields; not the features. Its bytes
are written here by hand rather than through protobuf's message classes, which spend
far more per field than the whole rest of the point costs.
"""

from __future__ import annotations

import struct
from operator import itemgetter

from tickml import schema
from tickml.influx import FieldValue
from tickml.udf import udf_pb2
from tickml.udf.framing import encode_varint

_FEATURE_SET = frozenset(schema.FEATURES)
_feature_values = itemgetter(*schema.FEATURES)
_LIMIT = schema.FEATURE_LIMIT
_RESPONSE_POINT = b"\x8a\x01"  # Response.point: field 17, length-delimited
_UINT64 = (1 << 64) - 1
_double = struct.Struct("<d").pack


def read_features(point: udf_pb2.Point) -> list[float] | str:
    """The schema's features from a point's fields, or the reason they cannot be read."""
    doubles = point.fieldsDouble
    # Membership first: indexing a protobuf map adds a missing key with value 0.0.
    if _FEATURE_SET.issubset(doubles):
        values = _feature_values(doubles)
        # Every |value| is at most the sum, so a sum below the limit means all are
        # finite and in range (a NaN fails the comparison); else the exact check runs.
        if sum(map(abs, values)) < _LIMIT:
            return list(values)
    return _read_each(point)


def _read_each(point: udf_pb2.Point) -> list[float] | str:
    features, reason = schema.features_from_fields(point_fields(point).get)
    return reason if reason is not None else features


def point_fields(point: udf_pb2.Point) -> dict[str, object]:
    """All of a point's fields by name (a name holds one type; doubles win a clash)."""
    return {**point.fieldsBool, **point.fieldsString, **point.fieldsInt, **point.fieldsDouble}


def result_response(point: udf_pb2.Point, fields: dict[str, FieldValue], now_ns: int,
                    keep_features: bool = False) -> bytes:
    """The serialized Response carrying the scored (or unscored) point.

    Args:
        point: the input point, whose fields it empties: its identity is kept, so
            Kapacitor groups the output exactly as the input was grouped.
        fields: the score fields (`Score.fields()` or `Unscored.fields()`).
        now_ns: when it was scored, for `latency_ms`.
        keep_features: also carry the features that are usable numbers, as floats.
    """
    own = _transaction_entries(point, keep_features)
    latency = max(0.0, (now_ns - point.time) / 1e6)
    for name in _FIELD_MAPS:
        point.ClearField(name)
    body = b"".join([point.SerializeToString(), _double_entry(schema.LATENCY, latency), own,
                     *[_cached_entry(name, value) for name, value in fields.items()]])
    return _RESPONSE_POINT + _varint(len(body)) + body


def _transaction_entries(point: udf_pb2.Point, keep_features: bool) -> bytes:
    """The entries of `schema.scored_transaction_fields` for this point."""
    if not keep_features:
        transaction_id = point.fieldsString.get(schema.TRANSACTION_ID)
        label = point.fieldsInt.get(schema.LABEL)
        if transaction_id is not None and label is not None:
            # Where the generator writes them; a string id and an integer label are
            # kept as they are, which is what scored_transaction_fields does with them.
            return _string_entry(schema.TRANSACTION_ID, transaction_id) + \
                _cached_entry(schema.LABEL, label)
    own = schema.scored_transaction_fields(point_fields(point).get, keep_features)
    return b"".join([_entry(name, value) for name, value in own.items()])


def _entry(name: str, value: FieldValue) -> bytes:
    """One entry of the Point field map of `value`'s type, as protobuf encodes it."""
    kind = type(value)
    if kind is float:
        return _double_entry(name, value)  # type: ignore[arg-type]
    if kind is str:
        return _string_entry(name, value)  # type: ignore[arg-type]
    if kind is bool:
        entry = _key(name) + (b"\x10\x01" if value else b"\x10\x00")
        return _BOOL_TAG + _varint(len(entry)) + entry
    # int64 as a varint of its two's complement
    entry = _key(name) + b"\x10" + _varint(value & _UINT64)  # type: ignore[operator]
    return _INT_TAG + _varint(len(entry)) + entry


def _double_entry(name: str, value: float) -> bytes:
    prefix = _DOUBLE_PREFIXES.get(name)
    if prefix is None:  # all but the 8 value bytes (field 2, fixed64), whose length is known
        head = _key(name) + b"\x11"
        prefix = _DOUBLE_PREFIXES[name] = _DOUBLE_TAG + _varint(len(head) + 8) + head
    return prefix + _double(value)


def _string_entry(name: str, text: str) -> bytes:
    raw = text.encode()
    entry = _key(name) + b"\x12" + _varint(len(raw)) + raw
    return _STRING_TAG + _varint(len(entry)) + entry


def _cached_entry(name: str, value: FieldValue) -> bytes:
    """`_entry`, remembered for the few values the score fields and the label take."""
    if type(value) is float:
        return _double_entry(name, value)  # type: ignore[arg-type]
    key = (name, type(value), value)
    entry = _ENTRIES.get(key)
    if entry is None:
        if len(_ENTRIES) >= _MAX_ENTRIES:
            _ENTRIES.clear()
        entry = _ENTRIES[key] = _entry(name, value)
    return entry


def _key(name: str) -> bytes:
    """A map entry's key (field 1, length-delimited)."""
    key = _KEYS.get(name)
    if key is None:
        raw = name.encode()
        key = _KEYS[name] = b"\x0a" + _varint(len(raw)) + raw
    return key


def _varint(value: int) -> bytes:
    return _SMALL_VARINTS[value] if value < 128 else encode_varint(value)


_FIELD_MAPS = ("fieldsDouble", "fieldsInt", "fieldsString", "fieldsBool")
_SMALL_VARINTS = [bytes((n,)) for n in range(128)]
# Tags of Point's field maps (udf.proto: fieldsDouble 8, fieldsInt 9, fieldsString 10,
# fieldsBool 12), each length-delimited (wire type 2).
_DOUBLE_TAG, _INT_TAG, _STRING_TAG, _BOOL_TAG = (bytes((number << 3 | 2,))
                                                 for number in (8, 9, 10, 12))
_KEYS: dict[str, bytes] = {}
_DOUBLE_PREFIXES: dict[str, bytes] = {}
#: Entries kept for reuse at most (verdicts, models, versions, labels, reasons).
_MAX_ENTRIES = 1024
_ENTRIES: dict[tuple[str, type, FieldValue], bytes] = {}
