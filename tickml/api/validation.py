"""Request bodies → a float64 matrix in schema order, or an `ApiError` naming the problem.

The fast path parses with orjson and builds the matrix with C-level helpers; only when
it fails does the slow path walk the input to say exactly which field of which item is
wrong (and to read `NaN`/`Infinity`, which orjson refuses as invalid JSON).
"""

from __future__ import annotations

import json
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import orjson

from tickml import schema
from tickml.api.errors import ApiError

FEATURES = schema.FEATURES
N_FEATURES = len(FEATURES)
_ROW = itemgetter(*FEATURES)
_NUMBER_TYPES = frozenset({int, float})
_BATCH_KEY = "instances"
FLOAT64_LIMIT = schema.FEATURE_LIMIT


def parse_json(body: bytes) -> Any:
    """Parse a JSON body; NaN and Infinity are read (and refused later, by field)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:  # the standard parser accepts NaN/Infinity, so the error can name the field
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None


def predict_matrix(body: bytes, max_instances: int) -> tuple[np.ndarray, bool]:
    """Validate a `/predict` body.

    Args:
        body: the raw request body.
        max_instances: the largest batch accepted.

    Returns:
        The feature matrix (one row per transaction, schema order) and whether the
        body was a batch (`{"instances": [...]}`) rather than a single transaction.
    """
    payload = parse_json(body)
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_shape", "the body must be a JSON object: one transaction "
                       f"or {{\"instances\": [...]}}, not {_json_type(payload)}")
    if _BATCH_KEY not in payload:
        return rows_to_matrix([payload], batch=False), False
    instances = payload[_BATCH_KEY]
    if not isinstance(instances, list):
        raise ApiError(400, "invalid_shape", "instances must be an array of transaction "
                       f"objects, not {_json_type(instances)}", field=_BATCH_KEY)
    if len(instances) > max_instances:
        raise ApiError(413, "too_many_instances", f"{len(instances):,} instances is more than "
                       f"the limit of {max_instances:,} per request", field=_BATCH_KEY)
    return rows_to_matrix(instances, batch=True), True


def rows_to_matrix(rows: list[Any], *, batch: bool) -> np.ndarray:
    """Transaction objects → float64 matrix, or the first problem as an `ApiError`."""
    if not rows:
        return np.empty((0, N_FEATURES))
    try:
        values = list(chain.from_iterable(map(_ROW, rows)))
        if set(map(type, values)) <= _NUMBER_TYPES:
            matrix = np.array(values, dtype=np.float64).reshape(len(rows), N_FEATURES)
            if (np.abs(matrix) < FLOAT64_LIMIT).all():  # False for NaN too
                return matrix
    except (KeyError, TypeError, OverflowError):
        pass
    for index, row in enumerate(rows):
        check_row(row, index if batch else None)
    raise AssertionError("a row failed the fast path but passed every check")  # unreachable


def check_row(row: Any, index: int | None) -> None:
    """Raise the `ApiError` for the first problem in one transaction object."""
    where = "" if index is None else f"instances[{index}]"
    if not isinstance(row, dict):
        raise ApiError(400, "invalid_shape", f"{where or 'the body'} must be a transaction "
                       f"object, not {_json_type(row)}", index=index)
    for name in FEATURES:
        if name not in row:
            raise ApiError(400, "missing_field",
                           f"{where + ': ' if where else ''}missing feature {name!r}",
                           field=name, index=index)
        check_number(row[name], f"{where}.{name}" if where else name, name, index)


def check_number(value: Any, label: str, field: str, index: int | None) -> float:
    """Return `value` as a finite float64, or raise an `ApiError` naming `label`.

    The rule is `schema.feature_value`, the one the UDF agent checks before sending.
    """
    number, problem = schema.feature_value(value)
    if problem is not None:
        raise ApiError(400, problem.code, f"{label}: {show(value)} {problem.message}",
                       field=field, index=index)
    return number


def show(value: Any) -> str:
    """`repr(value)`, cut to 40 characters: error messages quote what was sent."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
