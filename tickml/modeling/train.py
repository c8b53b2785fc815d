"""`tickml train`: fit the default model, choose its threshold, evaluate, register."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tickml import schema
from tickml.config import Settings
from tickml.data.prepare import load_manifest, load_split, split_transactions
from tickml.modeling.evaluate import (
    best_f1_threshold,
    classification_report,
    plot_precision_recall,
    precision_target_threshold,
)
from tickml.modeling.pipeline import DEFAULT_PARAMS, build_pipeline
from tickml.modeling.register import register_model
from tickml.registry import ModelRef, ModelRegistry
from tickml.schema import as_feature_matrix

DEFAULT_MODEL_NAME = "fraud-lgbm"
VALIDATION_SHARE = 0.2
StepCallback = Callable[[str], None]
IterationCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class FittedModel:
    """A fitted pipeline, its threshold and how it did on validation and test data."""

    pipeline: Any
    threshold: float
    validation: dict[str, Any]
    test: dict[str, Any]
    test_scores: np.ndarray


@dataclass(frozen=True)
class TrainingResult:
    """What `train_default_model` registered."""

    ref: ModelRef
    fitted: FittedModel
    pr_curve: Path
    promoted: bool


def fit_and_evaluate(
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    params: dict[str, Any] | None = None,
    seed: int = 42,
    precision_target: float | None = None,
    on_step: StepCallback | None = None,
    on_iteration: IterationCallback | None = None,
) -> FittedModel:
    """Fit on the earlier part of `train`, choose the threshold on its later part,
    refit on all of `train`, then evaluate once on the untouched `test`.

    The threshold maximises F1 on validation, or, with `precision_target`, is the
    lowest one whose validation precision reaches the target.
    """
    step = on_step or (lambda _: None)
    fit_part, validation = split_transactions(train, "time", VALIDATION_SHARE, seed)

    step("fit on the earlier 80 % of the training period")
    pipeline = _fit(fit_part, params, seed, on_iteration)
    step("choose the threshold on the later 20 %")
    val_scores = _scores(pipeline, validation)
    y_val = validation[schema.LABEL].to_numpy()
    if precision_target is None:
        threshold = best_f1_threshold(y_val, val_scores)
    else:
        threshold = precision_target_threshold(y_val, val_scores, precision_target)
    validation_report = classification_report(y_val, val_scores, threshold)

    step("refit on the whole training period")
    pipeline = _fit(train, params, seed, on_iteration)
    step("evaluate on the test split")
    test_scores = _scores(pipeline, test)
    test_report = classification_report(test[schema.LABEL].to_numpy(), test_scores, threshold)
    return FittedModel(pipeline, threshold, validation_report, test_report, test_scores)


def _fit(
    frame: pd.DataFrame,
    params: dict[str, Any] | None,
    seed: int,
    on_iteration: IterationCallback | None,
) -> Any:
    pipeline = build_pipeline(params, seed=seed)
    fit_params = {}
    if on_iteration is not None:
        fit_params["model__callbacks"] = [
            lambda env: on_iteration(env.iteration + 1, env.end_iteration)
        ]
    pipeline.fit(as_feature_matrix(frame), frame[schema.LABEL].to_numpy(), **fit_params)
    return pipeline


def _scores(pipeline: Any, frame: pd.DataFrame) -> np.ndarray:
    return pipeline.predict_proba(as_feature_matrix(frame))[:, 1]


def train_default_model(
    settings: Settings,
    *,
    name: str = DEFAULT_MODEL_NAME,
    seed: int | None = None,
    params: dict[str, Any] | None = None,
    precision_target: float | None = None,
    promote: bool = True,
    on_step: StepCallback | None = None,
    on_iteration: IterationCallback | None = None,
) -> TrainingResult:
    """Train on the prepared splits, register the model and (by default) promote it."""
    seed = settings.seed if seed is None else seed
    step = on_step or (lambda _: None)
    step("load the prepared splits")
    manifest = load_manifest(settings)
    train, test = load_split(settings, "train"), load_split(settings, "test")
    fitted = fit_and_evaluate(train, test, params=params, seed=seed,
                              precision_target=precision_target, on_step=on_step,
                              on_iteration=on_iteration)
    step("register the model")
    registry = ModelRegistry(settings.models_dir)
    ref = register_model(
        registry,
        fitted.pipeline,
        name=name,
        threshold=fitted.threshold,
        metrics={"test": fitted.test, "validation": fitted.validation},
        params={**DEFAULT_PARAMS, **(params or {})},
        seed=seed,
        data_sha256=manifest.train_sha256,
        extra={"dataset": {"source": manifest.source, "split": manifest.split,
                           "train_rows": manifest.train_rows, "test_rows": manifest.test_rows},
               "threshold_rule": "best F1 on validation" if precision_target is None
               else f"precision >= {precision_target} on validation"},
        verification_rows=test,
    )
    pr_curve = plot_precision_recall(
        test[schema.LABEL].to_numpy(), fitted.test_scores, fitted.threshold,
        registry.path(ref) / "pr_curve.png", title=f"{ref} on the test split",
    )
    if promote:
        step("promote to production")
        registry.promote(ref)
    return TrainingResult(ref, fitted, pr_curve, promote)
