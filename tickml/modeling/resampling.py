"""Resampling for a rare positive class, compared honestly inside the pipeline.

Each resampler sits inside an imbalanced-learn `Pipeline` (see
`tickml.modeling.pipeline.build_pipeline`), so it only ever changes the rows a model
is fitted on: validation and test rows are never resampled, and cross-validation or
tuning resamples the training folds only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from imblearn.over_sampling import ADASYN, SMOTE, BorderlineSMOTE, RandomOverSampler
from imblearn.under_sampling import RandomUnderSampler

from tickml import schema
from tickml.modeling.evaluate import DEFAULT_PRECISION, fit_and_score
from tickml.modeling.features import TransactionFeatures
from tickml.modeling.pipeline import build_pipeline
from tickml.schema import as_feature_matrix

#: After resampling, frauds make up this fraction of the legitimate count (1:10). A
#: full 1:1 balance multiplies the training rows (oversampling) or throws away almost
#: all of them (undersampling); 1:10 already gives the learner plenty of frauds.
DEFAULT_RATIO = 0.1
RESAMPLERS: dict[str, Callable[[float, int], Any]] = {
    "none": lambda ratio, seed: None,
    "random under": lambda ratio, seed: RandomUnderSampler(sampling_strategy=ratio,
                                                           random_state=seed),
    "random over": lambda ratio, seed: RandomOverSampler(sampling_strategy=ratio,
                                                         random_state=seed),
    "SMOTE": lambda ratio, seed: SMOTE(sampling_strategy=ratio, k_neighbors=5,
                                       random_state=seed),
    # SMOTE only from frauds near the boundary: those whose neighbours are mostly legit.
    "BorderlineSMOTE": lambda ratio, seed: BorderlineSMOTE(sampling_strategy=ratio,
                                                           k_neighbors=5, random_state=seed),
    "ADASYN": lambda ratio, seed: ADASYN(sampling_strategy=ratio, n_neighbors=5,
                                         random_state=seed),
}
#: The fully balanced variant (as many frauds as legitimate rows after resampling).
BALANCED_RATIO = 1.0


def make_resampler(name: str, ratio: float = DEFAULT_RATIO, seed: int = 42) -> Any | None:
    """The resampler called `name` (a key of `RESAMPLERS`); None for "none".

    Raises:
        ValueError: unknown name, or a ratio outside (0, 1].
    """
    if name not in RESAMPLERS:
        raise ValueError(f"unknown resampler {name!r}: choose from {sorted(RESAMPLERS)}")
    if not 0 < ratio <= 1:
        raise ValueError(f"ratio must lie in (0, 1], got {ratio}")
    return RESAMPLERS[name](ratio, seed)


def resampled_counts(resampler: Any | None, frame: pd.DataFrame) -> dict[str, int]:
    """How many legitimate and fraud rows the model would be fitted on after resampling."""
    y = frame[schema.LABEL].to_numpy()
    if resampler is not None:
        features = TransactionFeatures().fit_transform(as_feature_matrix(frame))
        _, y = resampler.fit_resample(features, y)
    return {"legit": int((y == 0).sum()), "fraud": int((y == 1).sum())}


def compare_resamplers(
    fit: pd.DataFrame,
    validation: pd.DataFrame,
    names: Sequence[str] = tuple(RESAMPLERS),
    *,
    ratio: float = DEFAULT_RATIO,
    precision: float = DEFAULT_PRECISION,
    params: dict[str, Any] | None = None,
    seed: int = 42,
    n_jobs: int = 2,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Fit the same pipeline with each resampler on `fit`; score it on `validation`.

    Args:
        fit: rows to fit on (the resampler changes only these).
        validation: untouched rows, later in time, to score on.
        names: resamplers to compare (keys of `RESAMPLERS`).
        ratio: frauds per legitimate row after resampling.
        precision: the precision at which recall is reported.
        params: LightGBM parameters (defaults: `pipeline.DEFAULT_PARAMS`).

    Returns:
        A table with one row per resampler (the metrics of `rare_class_scores`, the
        rows fitted on, and the fit time), best average precision first, and the
        validation scores of each resampler by name.
    """
    X_fit, y_fit = as_feature_matrix(fit), fit[schema.LABEL].to_numpy()
    X_val, y_val = as_feature_matrix(validation), validation[schema.LABEL].to_numpy()
    rows, scores = [], {}
    for name in names:
        resampler = make_resampler(name, ratio, seed)
        counts = resampled_counts(resampler, fit)
        pipeline = build_pipeline(params, seed=seed, resampler=resampler, n_jobs=n_jobs)
        scores[name], metrics = fit_and_score(pipeline, (X_fit, y_fit), (X_val, y_val),
                                              precision)
        seconds = metrics.pop("fit_seconds")
        rows.append({"resampler": name, **metrics, "fit_legit": counts["legit"],
                     "fit_frauds": counts["fraud"], "fit_seconds": seconds})
    table = pd.DataFrame(rows).sort_values("average_precision", ascending=False)
    return table.reset_index(drop=True), scores


def variant_counts(frame: pd.DataFrame, names: Sequence[str] = tuple(RESAMPLERS),
                   ratios: Sequence[float] = (DEFAULT_RATIO, BALANCED_RATIO),
                   seed: int = 42) -> pd.DataFrame:
    """Legitimate and fraud rows after each resampler at each ratio ("none" once)."""
    rows = []
    for name in names:
        for ratio in ratios[:1] if name == "none" else ratios:
            counts = resampled_counts(make_resampler(name, ratio, seed), frame)
            label = name if name == "none" else f"{name} 1:{1 / ratio:g}"
            rows.append({"variant": label, "resampler": name,
                         "ratio": None if name == "none" else ratio, **counts})
    table = pd.DataFrame(rows)
    table["fraud_share"] = table["fraud"] / (table["fraud"] + table["legit"])
    return table


def plot_variant_counts(table: pd.DataFrame, *, columns: int = 3) -> Any:
    """One count plot (legit and fraud bars) per variant of `variant_counts`."""
    import matplotlib.pyplot as plt

    n_rows = -(-len(table) // columns)
    fig, axes = plt.subplots(n_rows, columns, figsize=(4 * columns, 2.6 * n_rows),
                             sharey=True, squeeze=False)
    for ax, (_, row) in zip(axes.ravel(), table.iterrows(), strict=False):
        ax.bar(["legit", "fraud"], [row["legit"], row["fraud"]],
               color=["tab:blue", "crimson"])
        ax.set_yscale("log")
        ax.set_title(f"{row['variant']} ({row['fraud_share']:.1%} fraud)", fontsize=9)
        for i, value in enumerate((row["legit"], row["fraud"])):
            ax.text(i, value, f"{int(value):,}", ha="center", va="bottom", fontsize=8)
    for ax in axes.ravel()[len(table):]:
        ax.set_visible(False)
    fig.suptitle("Rows the model is fitted on, per resampling variant (log scale)")
    fig.tight_layout()
    return fig
