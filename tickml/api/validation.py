"""Request bodies → a float64 matrix in schema order, or an `ApiError` naming the problem.

A transaction is an object with the features by name, or the positional form
`{"features": [...]}` with the values in `FEATURES` order (Time, V1..V28, Amount).

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
#: The member of a positional transaction: the values in `FEATURES` order.
POSITIONAL_KEY = "features"
#: The column order a positional transaction follows, as error messages name it.
COLUMN_ORDER = ", ".join(FEATURES)
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
                       f"(by name, or {{\"{POSITIONAL_KEY}\": [...]}}) or "
                       f"{{\"instances\": [...]}}, not {_json_type(payload)}")
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
    matrix = _positional_matrix(rows) if _is_positional(rows[0]) else _named_matrix(rows)
    if matrix is not None:
        return matrix
    # A bad value, or a batch mixing both forms: one row at a time, naming any problem.
    return np.array([row_values(row, index if batch else None)
                     for index, row in enumerate(rows)], dtype=np.float64)


def _named_matrix(rows: list[Any]) -> np.ndarray | None:
    try:
        if any(map(_is_positional, rows)):
            return None
        return _finite_matrix(list(chain.from_iterable(map(_ROW, rows))), len(rows))
    except (KeyError, TypeError):
        return None


def _positional_matrix(rows: list[Any]) -> np.ndarray | None:
    try:
        lists = [row[POSITIONAL_KEY] for row in rows]
    except (KeyError, TypeError):
        return None
    if not all(type(values) is list and len(values) == N_FEATURES for values in lists):
        return None
    return _finite_matrix(list(chain.from_iterable(lists)), len(rows))


def _finite_matrix(values: list[Any], n_rows: int) -> np.ndarray | None:
    """The values as an `n_rows` x features matrix when all are finite numbers, else None."""
    if not set(map(type, values)) <= _NUMBER_TYPES:
        return None
    try:
        matrix = np.array(values, dtype=np.float64).reshape(n_rows, N_FEATURES)
    except OverflowError:  # an integer beyond float64
        return None
    return matrix if (np.abs(matrix) < FLOAT64_LIMIT).all() else None  # False for NaN too


def _is_positional(row: Any) -> bool:
    return isinstance(row, dict) and POSITIONAL_KEY in row


def row_values(row: Any, index: int | None) -> list[float]:
    """One transaction's features in schema order, or the `ApiError` for its first problem."""
    if _is_positional(row):
        return positional_values(row[POSITIONAL_KEY], index)
    check_row(row, index)
    return [float(row[name]) for name in FEATURES]


def positional_values(values: Any, index: int | None) -> list[float]:
    """The `features` array of one transaction as floats, or an `ApiError` naming the problem.

    A wrong length names every expected column, in order.
    """
    where = f"instances[{index}]." if index is not None else ""
    label = f"{where}{POSITIONAL_KEY}"
    if not isinstance(values, list):
        raise ApiError(400, "invalid_shape", f"{label} must be an array of {N_FEATURES} "
                       f"numbers ({COLUMN_ORDER}), not {_json_type(values)}",
                       field=POSITIONAL_KEY, index=index)
    if len(values) != N_FEATURES:
        raise ApiError(400, "invalid_shape", f"{label} has {len(values)} values; expected "
                       f"{N_FEATURES}, in this order: {COLUMN_ORDER}",
                       field=POSITIONAL_KEY, index=index)
    return [check_number(value, f"{label}[{position}] ({name})", name, index)
            for position, (name, value) in enumerate(zip(FEATURES, values, strict=True))]


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
