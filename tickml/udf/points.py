"""From a Kapacitor point to model features, and back to a scored or unscored point."""

from __future__ import annotations

import math
from collections.abc import Callable

from tickml import schema
from tickml.udf import udf_pb2

PROBABILITY = "fraud_probability"
VERDICT = "fraud"  # 1 when the probability reaches the threshold, else 0
MODEL = "model"
MODEL_VERSION = "model_version"
SCORED = "scored"
REASON = "unscored_reason"
LATENCY = "latency_ms"  # from the point's own timestamp to the moment it was scored


def read_features(point: udf_pb2.Point) -> tuple[list[float] | None, str | None]:
    """The schema's features from a point's fields, or None and the reason why not."""
    return features_from_fields(lambda name: _field_value(point, name))


def features_from_fields(
    lookup: Callable[[str], object],
) -> tuple[list[float] | None, str | None]:
    """The schema's features, in order, from `lookup(name)` (None when absent).

    Numbers may arrive as floats or integers; a string that parses as a number is
    accepted too (line-protocol writers sometimes quote numbers).
    """
    values = []
    for name in schema.FEATURES:
        value, reason = _as_finite_number(name, lookup(name))
        if reason is not None:
            return None, reason
        values.append(value)
    return values, None


def _field_value(point: udf_pb2.Point, name: str) -> object:
    for fields in (point.fieldsDouble, point.fieldsInt, point.fieldsString, point.fieldsBool):
        if name in fields:
            return fields[name]
    return None


def _as_finite_number(name: str, value: object) -> tuple[float, str | None]:
    if value is None:
        return 0.0, f"missing feature {name}"
    if isinstance(value, bool):
        return 0.0, f"non-numeric feature {name}"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0, f"non-numeric feature {name}"
    if not math.isfinite(number):
        return 0.0, f"non-finite feature {name}"
    return number, None


def scored_point(
    point: udf_pb2.Point,
    probability: float,
    verdict: bool,
    model: str,
    version: int,
    now_ns: int,
) -> udf_pb2.Response:
    """The input point, unchanged, plus the score fields."""
    response = _copy(point, now_ns)
    out = response.point
    out.fieldsDouble[PROBABILITY] = probability
    out.fieldsInt[VERDICT] = int(verdict)
    out.fieldsString[MODEL] = model
    out.fieldsInt[MODEL_VERSION] = version
    out.fieldsBool[SCORED] = True
    return response


def unscored_point(point: udf_pb2.Point, reason: str, now_ns: int) -> udf_pb2.Response:
    """The input point, unchanged, marked as not scored with a short reason."""
    response = _copy(point, now_ns)
    response.point.fieldsBool[SCORED] = False
    response.point.fieldsString[REASON] = reason
    return response


def _copy(point: udf_pb2.Point, now_ns: int) -> udf_pb2.Response:
    # Copying keeps time, name, database, retention policy, tags and dimensions, so
    # Kapacitor regroups the output exactly as the input was grouped.
    response = udf_pb2.Response()
    response.point.CopyFrom(point)
    response.point.fieldsDouble[LATENCY] = max(0.0, (now_ns - point.time) / 1e6)
    return response
