"""From a Kapacitor point to model features, and back to a scored or unscored point."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from tickml import schema
from tickml.influx import FieldValue
from tickml.udf import udf_pb2


def read_features(point: udf_pb2.Point) -> list[float] | str:
    """The schema's features from a point's fields, or the reason they cannot be read."""
    features, reason = schema.features_from_fields(lambda name: _field_value(point, name))
    return reason if reason is not None else features


def _field_value(point: udf_pb2.Point, name: str) -> object:
    for fields in (point.fieldsDouble, point.fieldsInt, point.fieldsString, point.fieldsBool):
        if name in fields:
            return fields[name]
    return None


def result_point(
    point: udf_pb2.Point, fields: dict[str, FieldValue], now_ns: int
) -> udf_pb2.Response:
    """The input point, unchanged, plus `fields` and the latency until `now_ns`."""
    # Copying keeps time, name, database, retention policy, tags and dimensions, so
    # Kapacitor regroups the output exactly as the input was grouped.
    response = udf_pb2.Response()
    out = response.point
    out.CopyFrom(point)
    out.fieldsDouble[schema.LATENCY] = max(0.0, (now_ns - point.time) / 1e6)
    for name, value in fields.items():
        _typed_fields(out, value)[name] = value
    return response


def _typed_fields(point: udf_pb2.Point, value: FieldValue) -> MutableMapping[str, Any]:
    if isinstance(value, bool):  # before int: a bool is an int in Python
        return point.fieldsBool
    if isinstance(value, int):
        return point.fieldsInt
    if isinstance(value, float):
        return point.fieldsDouble
    return point.fieldsString
