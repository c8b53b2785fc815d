"""The default pipeline learns, its threshold is chosen on validation, runs reproduce."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tickml import schema
from tickml.config import Settings
from tickml.data.prepare import load_split
from tickml.loader import load_production
from tickml.modeling.evaluate import (
    best_f1_threshold,
    classification_report,
    precision_target_threshold,
)
from tickml.modeling.features import TransactionFeatures
from tickml.modeling.train import fit_and_evaluate
from tickml.registry import ModelRegistry
from tickml.schema import as_feature_matrix

from ..conftest import SMALL_MODEL_PARAMS


def test_small_model_scores_far_above_the_base_rate(small_registry: ModelRegistry) -> None:
    model = load_production(small_registry)
    report = model.metadata["metrics"]["test"]
    assert report["average_precision"] > 20 * report["base_rate"]
    assert report["average_precision"] > 0.5
    assert report["roc_auc"] > 0.9


def test_reported_metrics_match_the_model_on_the_test_split(
    small_project: Settings, small_registry: ModelRegistry
) -> None:
    model = load_production(small_registry)
    test = load_split(small_project, "test")
    report = classification_report(test[schema.LABEL], model.predict_proba(test), model.threshold)
    recorded = dict(model.metadata["metrics"]["test"])
    assert report.pop("confusion_matrix") == recorded.pop("confusion_matrix")
    assert report == pytest.approx(recorded)


def test_same_seed_gives_the_same_model(small_project: Settings) -> None:
    train, test = load_split(small_project, "train"), load_split(small_project, "test")
    first = fit_and_evaluate(train, test, params=SMALL_MODEL_PARAMS, seed=11)
    again = fit_and_evaluate(train, test, params=SMALL_MODEL_PARAMS, seed=11)
    assert first.threshold == again.threshold
    assert first.test == again.test
    np.testing.assert_array_equal(first.test_scores, again.test_scores)


def test_fraud_like_shift_raises_the_score(small_registry: ModelRegistry, small_project) -> None:
    """Direction check: moving a legit row towards the fraud profile raises its score."""
    model = load_production(small_registry)
    legit = load_split(small_project, "test").query(f"{schema.LABEL} == 0").head(200).copy()
    shifted = legit.copy()
    shifted[["V14", "V12", "V10", "V17"]] -= 6.0
    shifted[["V4", "V11"]] += 4.0
    assert model.predict_proba(shifted).mean() > 10 * model.predict_proba(legit).mean()


def test_extra_columns_and_column_order_do_not_change_scores(small_registry, small_project):
    model = load_production(small_registry)
    rows = load_split(small_project, "test").head(50)
    shuffled = rows[list(reversed(rows.columns))].assign(transaction_id="x")
    np.testing.assert_array_equal(model.predict_proba(rows), model.predict_proba(shuffled))
    np.testing.assert_array_equal(
        model.predict_proba(rows), model.predict_proba(rows[list(schema.FEATURES)].to_numpy())
    )


def test_features_encode_hour_of_day_and_log_amount() -> None:
    row = dict.fromkeys(schema.FEATURES, 0.0) | {schema.TIME: 86_400 + 6 * 3600.0,
                                                  schema.AMOUNT: np.e - 1}
    out = TransactionFeatures().fit_transform(pd.DataFrame([row]))
    names = list(TransactionFeatures().get_feature_names_out())
    assert out.shape == (1, len(names))
    assert out[0, names.index("log_amount")] == pytest.approx(1.0)
    assert out[0, names.index("hour_sin")] == pytest.approx(1.0)  # 06:00 is a quarter day
    assert out[0, names.index("hour_cos")] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("bad", [np.zeros((3, 5)), np.zeros(30)])
def test_wrong_shaped_arrays_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="30 columns in schema order"):
        as_feature_matrix(bad)


def test_thresholds_follow_f1_and_precision_targets() -> None:
    y = np.array([0, 0, 0, 0, 1, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    assert best_f1_threshold(y, scores) == pytest.approx(0.5)
    assert precision_target_threshold(y, scores, 1.0) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="no threshold reaches precision"):
        precision_target_threshold(np.array([0, 1]), np.array([0.9, 0.1]), 1.0)
