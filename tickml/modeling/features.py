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
_COMPONENTS = [schema.FEATURES.index(c) for c in schema.PCA_COMPONENTS]


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
        matrix = as_feature_matrix(X)
        angle = 2 * np.pi * (matrix[:, _TIME] % SECONDS_PER_DAY) / SECONDS_PER_DAY
        return np.column_stack([
            matrix[:, _COMPONENTS],
            np.log1p(np.clip(matrix[:, _AMOUNT], 0, None)),
            np.sin(angle),
            np.cos(angle),
        ])

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.array([*schema.PCA_COMPONENTS, "log_amount", "hour_sin", "hour_cos"])
