"""Ensembles against the best single model, and registering the winner.

Every candidate is a whole pipeline from raw schema columns to a probability
(features step, then the estimator), so whichever wins can be registered and served
by the API as it is. Candidates are compared on validation rows later in time than
the rows they were fitted on; the test split is only used once, for the winner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from imblearn.pipeline import Pipeline
from lightgbm import LGBMClassifier
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import (
    BaggingClassifier,
    HistGradientBoostingClassifier,
    StackingClassifier,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_is_fitted

from tickml import schema
from tickml.modeling.evaluate import (
    DEFAULT_PRECISION,
    best_f1_threshold,
    classification_report,
    fit_and_score,
)
from tickml.modeling.features import TransactionFeatures
from tickml.modeling.pipeline import DEFAULT_PARAMS
from tickml.modeling.register import register_model
from tickml.registry import ModelRef, ModelRegistry
from tickml.schema import as_feature_matrix

SINGLE = "single"
ENSEMBLE = "ensemble"
#: The boosting models that stacking and voting combine.
BOOSTERS = ("LightGBM", "XGBoost", "HistGradientBoosting")
#: The registry name each candidate is saved under when it wins.
REGISTRY_NAMES = {"LightGBM": "fraud-lgbm", "XGBoost": "fraud-xgboost",
                  "HistGradientBoosting": "fraud-hgb", "bagging (trees)": "fraud-bagging",
                  "stacking": "fraud-stacking", "soft voting": "fraud-voting",
                  "blend": "fraud-blend"}


@dataclass(frozen=True)
class Candidate:
    """A model to compare: its kind (single or ensemble) and an unfitted estimator."""

    kind: str
    estimator: Any


def single_models(*, seed: int = 42, n_jobs: int = 2, n_estimators: int = 300,
                  bagging_estimators: int = 30) -> dict[str, Candidate]:
    """Bagged trees and three gradient-boosting libraries, with comparable settings.

    Args:
        n_estimators: boosting rounds of each booster.
        bagging_estimators: trees in the bagging ensemble.
    """
    from xgboost import XGBClassifier

    lightgbm = LGBMClassifier(**{**DEFAULT_PARAMS, "n_estimators": n_estimators},
                              random_state=seed, n_jobs=n_jobs, deterministic=True,
                              force_row_wise=True, verbose=-1)
    xgboost = XGBClassifier(n_estimators=n_estimators, learning_rate=0.05, max_depth=4,
                            min_child_weight=5, reg_lambda=5.0, subsample=0.8,
                            colsample_bytree=0.8, tree_method="hist", eval_metric="aucpr",
                            random_state=seed, n_jobs=n_jobs)
    hist = HistGradientBoostingClassifier(max_iter=n_estimators, learning_rate=0.05,
                                          max_leaf_nodes=15, min_samples_leaf=50,
                                          l2_regularization=5.0, early_stopping=False,
                                          random_state=seed)
    # Bagging: many deep trees, each on its own bootstrap half of the rows, averaged.
    bagging = BaggingClassifier(
        estimator=DecisionTreeClassifier(min_samples_leaf=10, random_state=seed),
        n_estimators=bagging_estimators, max_samples=0.5, max_features=0.8,
        random_state=seed, n_jobs=n_jobs)
    return {"LightGBM": Candidate(SINGLE, lightgbm), "XGBoost": Candidate(SINGLE, xgboost),
            "HistGradientBoosting": Candidate(SINGLE, hist),
            "bagging (trees)": Candidate(SINGLE, bagging)}


def ensemble_models(singles: dict[str, Candidate], *, seed: int = 42,
                    cv_folds: int = 3, holdout: float = 0.3) -> dict[str, Candidate]:
    """Stacking, soft voting and a hold-out blend over the boosters in `singles`."""
    members = {name: singles[name].estimator for name in BOOSTERS if name in singles}
    return ensembles_of(members, seed=seed, cv_folds=cv_folds, holdout=holdout)


def ensembles_of(members: dict[str, Any], *, seed: int = 42, cv_folds: int = 3,
                 holdout: float = 0.3) -> dict[str, Candidate]:
    """Stacking, soft voting and a hold-out blend of `members` (unfitted estimators).

    Stacking fits a logistic regression on the members' out-of-fold probabilities
    (`cv_folds` stratified folds of the training rows); soft voting averages them;
    the blend fits the members on the earlier rows and a logistic regression on their
    probabilities for the last `holdout` share (`HoldoutBlender`).
    """
    if len(members) < 2:
        raise ValueError(f"ensembles need at least two members, got {sorted(members)}")

    def fresh() -> list[tuple[str, Any]]:
        return [(name, clone(est)) for name, est in members.items()]

    stacking = StackingClassifier(
        fresh(), final_estimator=LogisticRegression(max_iter=1000),
        cv=StratifiedKFold(cv_folds, shuffle=True, random_state=seed),
        stack_method="predict_proba")
    voting = VotingClassifier(fresh(), voting="soft")
    blend = HoldoutBlender(fresh(), holdout=holdout)
    return {"stacking": Candidate(ENSEMBLE, stacking),
            "soft voting": Candidate(ENSEMBLE, voting),
            "blend": Candidate(ENSEMBLE, blend)}


class HoldoutBlender(ClassifierMixin, BaseEstimator):
    """Blending: members fitted on the earlier rows, a meta-model on the rest.

    The rows arrive in time order, so the last `holdout` share is later than anything
    the members saw, as the data it will score is. The meta-model (a logistic
    regression unless `final_estimator` is given) learns how much to trust each
    member's probability from those rows. Unlike stacking, every member is fitted
    once and the meta-model never sees a probability a member gave its own rows.

    Args:
        estimators: (name, unfitted classifier) pairs, each with `predict_proba`.
        final_estimator: the meta-model; None for `LogisticRegression(max_iter=1000)`.
        holdout: share of the (last) rows the meta-model is fitted on.
    """

    def __init__(self, estimators: list[tuple[str, Any]], final_estimator: Any = None,
                 holdout: float = 0.3) -> None:
        self.estimators = estimators
        self.final_estimator = final_estimator
        self.holdout = holdout

    def fit(self, X: Any, y: Any) -> HoldoutBlender:
        if not 0 < self.holdout < 1:
            raise ValueError(f"holdout must lie in (0, 1), got {self.holdout}")
        if len(self.estimators) < 1:
            raise ValueError("a blend needs at least one member")
        y = np.asarray(y)
        cut = len(y) - max(1, round(len(y) * self.holdout))
        if len(np.unique(y[:cut])) < 2 or len(np.unique(y[cut:])) < 2:
            raise ValueError("both the members' rows and the hold-out rows need both "
                             "classes; use a larger holdout or more rows")
        self.classes_ = np.unique(y)
        head, tail = _safe_indexing(X, slice(0, cut)), _safe_indexing(X, slice(cut, None))
        self.estimators_ = [clone(est).fit(head, y[:cut]) for _, est in self.estimators]
        meta = (LogisticRegression(max_iter=1000) if self.final_estimator is None
                else clone(self.final_estimator))
        self.final_estimator_ = meta.fit(self._member_probabilities(tail), y[cut:])
        return self

    def _member_probabilities(self, X: Any) -> np.ndarray:
        return np.column_stack([est.predict_proba(X)[:, 1] for est in self.estimators_])

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "final_estimator_")
        return self.final_estimator_.predict_proba(self._member_probabilities(X))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def as_pipeline(estimator: Any) -> Pipeline:
    """Raw schema columns → features → `estimator`: what the registry stores."""
    return Pipeline([("features", TransactionFeatures()), ("model", estimator)])


@dataclass
class Comparison:
    """Validation results of every candidate, best average precision first."""

    table: pd.DataFrame
    scores: dict[str, np.ndarray]  # validation probabilities by candidate
    y_validation: np.ndarray

    @property
    def winner(self) -> str:
        return str(self.table.iloc[0]["model"])

    def best(self, kind: str) -> str:
        """The best candidate of one kind (`SINGLE` or `ENSEMBLE`)."""
        return str(self.table[self.table["kind"] == kind].iloc[0]["model"])


def compare_models(candidates: dict[str, Candidate], fit: pd.DataFrame,
                   validation: pd.DataFrame, *,
                   precision: float = DEFAULT_PRECISION) -> Comparison:
    """Fit each candidate's pipeline on `fit` and score it on `validation`."""
    X_fit, y_fit = as_feature_matrix(fit), fit[schema.LABEL].to_numpy()
    X_val, y_val = as_feature_matrix(validation), validation[schema.LABEL].to_numpy()
    rows, scores = [], {}
    for name, candidate in candidates.items():
        pipeline = as_pipeline(clone(candidate.estimator))
        scores[name], metrics = fit_and_score(pipeline, (X_fit, y_fit), (X_val, y_val),
                                              precision)
        rows.append({"model": name, "kind": candidate.kind, **metrics})
    table = pd.DataFrame(rows).sort_values(["average_precision", "fit_seconds"],
                                           ascending=[False, True])
    return Comparison(table.reset_index(drop=True), scores, y_val)


@dataclass(frozen=True)
class FinalModel:
    """The winner refitted on the whole training period, with its threshold and reports."""

    name: str
    pipeline: Any
    threshold: float
    validation: dict[str, Any]
    test: dict[str, Any]
    test_scores: np.ndarray


def fit_final(name: str, candidate: Candidate, comparison: Comparison, train: pd.DataFrame,
              test: pd.DataFrame) -> FinalModel:
    """Threshold from the candidate's validation scores (best F1), refit on all of
    `train`, then one evaluation on the untouched `test`."""
    y_val = comparison.y_validation
    threshold = best_f1_threshold(y_val, comparison.scores[name])
    validation = classification_report(y_val, comparison.scores[name], threshold)
    pipeline = as_pipeline(clone(candidate.estimator))
    pipeline.fit(as_feature_matrix(train), train[schema.LABEL].to_numpy())
    test_scores = pipeline.predict_proba(as_feature_matrix(test))[:, 1]
    report = classification_report(test[schema.LABEL].to_numpy(), test_scores, threshold)
    return FinalModel(name, pipeline, threshold, validation, report, test_scores)


def describe(estimator: Any) -> dict[str, Any]:
    """A JSON-friendly summary of an estimator's settings (nested estimators by class)."""
    params = {}
    for key, value in estimator.get_params(deep=False).items():
        if isinstance(value, str | int | float | bool) or value is None:
            params[key] = value
        elif isinstance(value, list | tuple) and all(
                isinstance(v, tuple) and len(v) == 2 for v in value):
            params[key] = [f"{n}: {type(e).__name__}" for n, e in value]
        else:
            params[key] = type(value).__name__
    return {"estimator": type(estimator).__name__, **params}


def register_final(registry: ModelRegistry, final: FinalModel, *, name: str, seed: int,
                   data_sha256: str, promote: bool = True,
                   extra: dict[str, Any] | None = None) -> ModelRef:
    """Register the final model with its metrics and, by default, promote it.

    A running API swaps to a promoted model by itself, without a restart.
    """
    estimator = final.pipeline.named_steps["model"]
    ref = register_model(
        registry, final.pipeline, name=name, threshold=final.threshold,
        metrics={"test": final.test, "validation": final.validation},
        params=describe(estimator), seed=seed, data_sha256=data_sha256,
        extra={"candidate": final.name, "threshold_rule": "best F1 on validation",
               **(extra or {})})
    if promote:
        registry.promote(ref)
    return ref


def plot_confusion_matrices(comparison: Comparison, *, columns: int = 4) -> Any:
    """A confusion matrix per candidate on validation, at its own best-F1 threshold."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    names = comparison.table["model"].tolist()
    n_rows = -(-len(names) // columns)
    fig, axes = plt.subplots(n_rows, columns, figsize=(3.3 * columns, 3.1 * n_rows),
                             squeeze=False)
    y_val = comparison.y_validation
    for ax, name in zip(axes.ravel(), names, strict=False):
        scores = comparison.scores[name]
        threshold = best_f1_threshold(y_val, scores)
        ConfusionMatrixDisplay.from_predictions(
            y_val, (scores >= threshold).astype(int), display_labels=["legit", "fraud"],
            ax=ax, colorbar=False, cmap="Blues")
        ax.set_title(f"{name}\n(threshold {threshold:.3f})", fontsize=9)
        ax.grid(False)
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig
