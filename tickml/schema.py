"""The transaction schema and the stream contract: one source of truth for every
service, TICKscript check and notebook.

The columns follow the Kaggle "Credit Card Fraud Detection" file (`creditcard.csv`):
`Time` (seconds since the first transaction), the anonymised PCA components
`V1`…`V28`, `Amount`, and the label `Class` (1 = fraud).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

TIME = "Time"
AMOUNT = "Amount"
LABEL = "Class"
PCA_COMPONENTS: tuple[str, ...] = tuple(f"V{i}" for i in range(1, 29))

#: Model inputs, in the order every array, tensor and CSV uses.
FEATURES: tuple[str, ...] = (TIME, *PCA_COMPONENTS, AMOUNT)
#: All columns of a labelled transaction file, in file order.
COLUMNS: tuple[str, ...] = (*FEATURES, LABEL)
LABEL_VALUES: frozenset[int] = frozenset({0, 1})

#: Field that identifies a streamed transaction (points also carry FEATURES and LABEL).
TRANSACTION_ID = "transaction_id"

#: Rows in the real Kaggle file, and its published fraud share (492 frauds).
REAL_ROWS = 284_807
REAL_FRAUDS = 492
REAL_FRAUD_RATE = REAL_FRAUDS / REAL_ROWS

def as_feature_matrix(rows: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Schema features as a float64 matrix in `FEATURES` order.

    A frame is read by column name (extra columns such as `Class` or an id are
    ignored); an array must already have the features in schema order.
    """
    if isinstance(rows, pd.DataFrame):
        missing = [c for c in FEATURES if c not in rows.columns]
        if missing:
            raise ValueError(f"missing feature columns: {missing}")
        return rows.loc[:, list(FEATURES)].to_numpy(dtype=np.float64)
    matrix = np.asarray(rows, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(FEATURES):
        raise ValueError(
            f"expected a 2-D array with {len(FEATURES)} columns in schema order, "
            f"got shape {matrix.shape}"
        )
    return matrix


# -- the stream ------------------------------------------------------------------------
#: Measurement the generator writes transactions to (FEATURES, LABEL, TRANSACTION_ID).
TRANSACTIONS = "transactions"
#: Measurement the scoring task writes every transaction to, scored or not.
SCORED_POINTS = "scored"
#: Measurement (in Chronograf's database) the alert task writes flagged transactions to.
ALERTS = "alerts"

#: Fields a point in SCORED_POINTS carries beside SCORED_TRANSACTION_FIELDS and the tags.
PROBABILITY = "fraud_probability"
VERDICT = "fraud"  # 1 when the probability reaches the threshold, else 0
MODEL = "model"
MODEL_VERSION = "model_version"
SCORED = "scored"  # true when the point carries a score, false with REASON otherwise
REASON = "unscored_reason"
LATENCY = "latency_ms"  # from the point's own timestamp to the moment it was scored
RESCORED = "rescored"  # true on points written by `tickml rescore` (no latency)
#: Fields of the transaction a point in SCORED_POINTS carries beside the tags: its id,
#: and the label, for live precision and recall. The features stay in TRANSACTIONS
#: (the agent's `.keepFeatures(TRUE)` copies them too).
SCORED_TRANSACTION_FIELDS: tuple[str, ...] = (TRANSACTION_ID, LABEL)


#: Every feature value lies strictly inside (-LIMIT, LIMIT). JSON parsers round an integer
#: literal just beyond float64's range down to its largest value, so that value itself is
#: refused too: what is accepted is exactly what was sent.
FEATURE_LIMIT = sys.float_info.max


@dataclass(frozen=True)
class ValueProblem:
    """Why a value cannot be a model feature, in the words of the API and of the stream.

    Attributes:
        code: the API's error code (`invalid_value` or `non_finite_value`).
        message: completes "<value> ...", as the API's 400 says it.
        adjective: completes "<adjective> feature <name>", the agent's `unscored_reason`.
    """

    code: str
    message: str
    adjective: str

    def reason(self, name: str) -> str:
        """The `unscored_reason` of a point whose feature `name` has this problem."""
        return f"{self.adjective} feature {name}"


NOT_A_NUMBER = ValueProblem("invalid_value", "is not a number", "non-numeric")
NOT_FINITE = ValueProblem("non_finite_value", "is not a finite number", "non-finite")
TOO_LARGE = ValueProblem("invalid_value", "is too large for a 64-bit float", "out-of-range")
_NUMBER_TYPES = frozenset({int, float})


def feature_value(value: object) -> tuple[float, ValueProblem | None]:
    """The API's rule for one feature value: a JSON number inside float64's open range.

    The one check the model API applies to each value and the UDF agent and rescore
    apply before sending, so a point the API would refuse is marked on its own instead
    of failing its batch.

    Returns:
        The value as a float and None, or 0.0 and the problem.
    """
    if type(value) not in _NUMBER_TYPES:  # bool is not a number here, as in JSON
        return 0.0, NOT_A_NUMBER
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:  # an integer beyond float64
        return 0.0, TOO_LARGE
    if not math.isfinite(number):
        return 0.0, NOT_FINITE
    if abs(number) >= FEATURE_LIMIT:
        return 0.0, TOO_LARGE
    return number, None


def features_from_fields(
    lookup: Callable[[str], object],
) -> tuple[list[float] | None, str | None]:
    """The features, in order, from `lookup(name)` (None when absent), or the reason why not.

    Numbers may arrive as floats or integers; a string that parses as a number is
    accepted too (line-protocol writers sometimes quote numbers). Each value must then
    pass `feature_value`, the API's own rule.
    """
    values = []
    for name in FEATURES:
        value = lookup(name)
        if value is None:
            return None, f"missing feature {name}"
        if type(value) is str:
            value = _parsed_number(value)
        number, problem = feature_value(value)
        if problem is not None:
            return None, problem.reason(name)
        values.append(number)
    return values, None


def _parsed_number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def scored_transaction_fields(
    lookup: Callable[[str], object], keep_features: bool = False,
) -> dict[str, str | int | float]:
    """What a point in SCORED_POINTS carries of its transaction, typed as stored there.

    The one definition the UDF agent and `tickml rescore` share: the id as a string,
    the label as an integer when it is a whole number, and with `keep_features` each
    feature that is a usable number, as a float. Anything else is left out, so a
    malformed transaction field can never clash with the types `scored` already holds.

    Args:
        lookup: the transaction's field by name, None when absent.
    """
    fields: dict[str, str | int | float] = {}
    transaction_id = lookup(TRANSACTION_ID)
    if transaction_id is not None:
        fields[TRANSACTION_ID] = str(transaction_id)
    label = _whole_number(lookup(LABEL))
    if label is not None:
        fields[LABEL] = label
    if keep_features:
        for name in FEATURES:
            value = lookup(name)
            number, problem = feature_value(_parsed_number(value) if type(value) is str else value)
            if value is not None and problem is None:
                fields[name] = number
    return fields


def _whole_number(value: object) -> int | None:
    """`value` as an int when it is an int or a float without a fraction, else None."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():  # False for NaN and infinities
        return int(value)
    return None
