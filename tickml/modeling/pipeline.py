"""The default model: one pipeline from raw schema columns to a fraud probability."""

from __future__ import annotations

from typing import Any

from imblearn.pipeline import Pipeline
from lightgbm import LGBMClassifier

from tickml.modeling.features import TransactionFeatures

#: LightGBM settings for a few hundred frauds among a few hundred thousand rows:
#: small leaves with many samples each, and L2 regularisation, keep the booster
#: from memorising individual frauds (unregularised it scores far worse here).
DEFAULT_PARAMS: dict[str, Any] = {
    "n_estimators": 300,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 50,
    "reg_lambda": 5.0,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
}


def build_pipeline(
    params: dict[str, Any] | None = None,
    *,
    seed: int = 42,
    resampler: Any | None = None,
    n_jobs: int = 2,
) -> Pipeline:
    """Features → optional resampler → LightGBM, as an imbalanced-learn Pipeline.

    A resampler (SMOTE, ADASYN, an undersampler) sits inside the pipeline so it
    only ever sees training folds; at prediction time it is skipped.
    """
    model = LGBMClassifier(
        **{**DEFAULT_PARAMS, **(params or {})},
        random_state=seed,
        n_jobs=n_jobs,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )
    steps = [("features", TransactionFeatures())]
    if resampler is not None:
        steps.append(("resample", resampler))
    steps.append(("model", model))
    return Pipeline(steps)
