"""The transaction schema and the stream contract: one source of truth for every
service, TICKscript check and notebook.

The columns follow the Kaggle "Credit Card Fraud Detection" file (`creditcard.csv`):
`Time` (seconds since the first transaction), the anonymised PCA components
`V1`…`V28`, `Amount`, and the label `Class` (1 = fraud).
"""

from __future__ import annotations

import math
from collections.abc import Callable

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

#: Fields a point in SCORED_POINTS carries beside the transaction's own.
PROBABILITY = "fraud_probability"
VERDICT = "fraud"  # 1 when the probability reaches the threshold, else 0
MODEL = "model"
MODEL_VERSION = "model_version"
SCORED = "scored"  # true when the point carries a score, false with REASON otherwise
REASON = "unscored_reason"
LATENCY = "latency_ms"  # from the point's own timestamp to the moment it was scored
RESCORED = "rescored"  # true on points written by `tickml rescore` (no latency)


def features_from_fields(
    lookup: Callable[[str], object],
) -> tuple[list[float] | None, str | None]:
    """The features, in order, from `lookup(name)` (None when absent), or the reason why not.

    Numbers may arrive as floats or integers; a string that parses as a number is
    accepted too (line-protocol writers sometimes quote numbers).
    """
    values = []
    for name in FEATURES:
        value, reason = _as_finite_number(name, lookup(name))
        if reason is not None:
            return None, reason
        values.append(value)
    return values, None


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
