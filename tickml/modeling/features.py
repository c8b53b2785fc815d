"""Feature engineering that lives inside the model pipeline.

Serving sends raw schema columns; the pipeline derives everything else, so
training and serving cannot drift apart.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from tickml import schema
from tickml.schema import as_feature_matrix

SECONDS_PER_DAY = 86_400.0
_TIME = schema.FEATURES.index(schema.TIME)
_AMOUNT = schema.FEATURES.index(schema.AMOUNT)
_COMPONENTS = slice(schema.FEATURES.index(schema.PCA_COMPONENTS[0]),
                    schema.FEATURES.index(schema.PCA_COMPONENTS[-1]) + 1)
#: Columns of the derived matrix: V1…V28, log_amount, hour_sin, hour_cos.
DERIVED_WIDTH = len(schema.PCA_COMPONENTS) + 3


def derive_features(matrix: np.ndarray) -> np.ndarray:
    """Schema-order float64 rows (n, 30) → model features (n, 31), in NumPy only.

    Each step writes into one preallocated matrix: on a single row the cost is the
    number of NumPy calls, so there are as few as the arithmetic allows. The
    pipeline's `TransactionFeatures` and the fast scoring path both call this.
    """
    rows = matrix.shape[0]
    out = np.empty((rows, DERIVED_WIDTH))
    components = len(schema.PCA_COMPONENTS)
    out[:, :components] = matrix[:, _COMPONENTS]
    amount = out[:, components]
    np.clip(matrix[:, _AMOUNT], 0, None, out=amount)
    np.log1p(amount, out=amount)
    angle = np.remainder(matrix[:, _TIME], SECONDS_PER_DAY)
    angle *= 2 * np.pi
    angle /= SECONDS_PER_DAY
    np.sin(angle, out=out[:, components + 1])
    np.cos(angle, out=out[:, components + 2])
    return out


class TransactionFeatures(TransformerMixin, BaseEstimator):
    """Raw schema columns → model features.

    Keeps V1…V28, replaces `Amount` by `log1p(Amount)` (amounts are heavy-tailed)
    and `Time` by the hour of day on the unit circle (the absolute offset only
    says how far into the recording a row is, which does not carry over to new
    traffic; the hour of day does, and 23:00 sits next to 00:00).
    """

    def fit(self, X, y=None):
        as_feature_matrix(X)
        self.n_features_in_ = len(schema.FEATURES)
        return self

    def transform(self, X):
        return derive_features(as_feature_matrix(X))

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.array([*schema.PCA_COMPONENTS, "log_amount", "hour_sin", "hour_cos"])
