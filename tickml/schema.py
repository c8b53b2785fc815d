"""The transaction schema: the one source of truth for every service and notebook.

The columns follow the Kaggle "Credit Card Fraud Detection" file (`creditcard.csv`):
`Time` (seconds since the first transaction), the anonymised PCA components
`V1`…`V28`, `Amount`, and the label `Class` (1 = fraud).
"""

from __future__ import annotations

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
