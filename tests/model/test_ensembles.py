"""Single models and ensembles compared on validation; the winner registered and served."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tickml import schema
from tickml.data.prepare import split_transactions
from tickml.data.synthetic import generate_transactions
from tickml.loader import load_production
from tickml.modeling.ensembles import (
    ENSEMBLE,
    SINGLE,
    Candidate,
    as_pipeline,
    compare_models,
    describe,
    ensemble_models,
    fit_final,
    register_final,
    single_models,
)
from tickml.registry import ModelRegistry


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    frame = generate_transactions(6_000, seed=5, fraud_rate=0.02)
    train, test = split_transactions(frame, "time", 0.25)
    fit, validation = split_transactions(train, "time", 0.25)
    return train, test, fit, validation


@pytest.fixture(scope="module")
def candidates() -> dict[str, Candidate]:
    singles = single_models(seed=1, n_estimators=30, bagging_estimators=5)
    return {**singles, **ensemble_models(singles, seed=1)}


def test_candidates_cover_bagging_boosting_stacking_voting_and_blending(candidates) -> None:
    kinds = {name: c.kind for name, c in candidates.items()}
    assert kinds == {"LightGBM": SINGLE, "XGBoost": SINGLE, "HistGradientBoosting": SINGLE,
                     "bagging (trees)": SINGLE, "stacking": ENSEMBLE, "soft voting": ENSEMBLE,
                     "blend": ENSEMBLE}
    assert candidates["soft voting"].estimator.get_params()["voting"] == "soft"
    for name in ("stacking", "blend"):
        members = [member for member, _ in candidates[name].estimator.estimators]
        assert members == ["LightGBM", "XGBoost", "HistGradientBoosting"]


def test_ensembles_need_two_boosters() -> None:
    singles = single_models(n_estimators=5)
    with pytest.raises(ValueError, match="at least two"):
        ensemble_models({"LightGBM": singles["LightGBM"]})


def test_compare_models_ranks_every_candidate_on_validation(data, candidates) -> None:
    _, _, fit, validation = data
    comparison = compare_models(candidates, fit, validation)
    table = comparison.table
    assert list(table.columns[:2]) == ["model", "kind"]
    assert set(table["model"]) == set(candidates)
    assert table["average_precision"].is_monotonic_decreasing
    assert comparison.winner == table.iloc[0]["model"]
    assert candidates[comparison.best(SINGLE)].kind == SINGLE
    assert candidates[comparison.best(ENSEMBLE)].kind == ENSEMBLE
    base_rate = validation[schema.LABEL].mean()
    assert (table["average_precision"] > 3 * base_rate).all()
    for scores in comparison.scores.values():
        assert scores.shape == (len(validation),)
        assert ((scores >= 0) & (scores <= 1)).all()


def test_the_winner_is_registered_promoted_and_loads(data, candidates, tmp_path: Path) -> None:
    train, test, fit, validation = data
    chosen = {name: candidates[name] for name in ("LightGBM", "soft voting")}
    comparison = compare_models(chosen, fit, validation)
    final = fit_final("soft voting", chosen["soft voting"], comparison, train, test)
    assert 0 < final.threshold < 1
    assert final.test["rows"] == len(test)
    registry = ModelRegistry(tmp_path / "models")
    ref = register_final(registry, final, name="fraud-ensemble", seed=1, data_sha256="abc",
                         extra={"comparison": comparison.table.to_dict(orient="records")})
    assert registry.production() == ref
    metadata = json.loads((registry.path(ref) / "metadata.json").read_text())
    assert metadata["candidate"] == "soft voting"
    assert metadata["params"]["estimator"] == "VotingClassifier"
    assert metadata["metrics"]["test"]["average_precision"] == final.test["average_precision"]
    loaded = load_production(registry)
    np.testing.assert_allclose(loaded.predict_proba(test), final.test_scores)
    # What the API checks before it serves a model: schema rows in, probabilities out.
    assert loaded.predict_proba(np.zeros((2, len(schema.FEATURES)))).shape == (2,)


def test_as_pipeline_takes_raw_schema_columns(data) -> None:
    from sklearn.linear_model import LogisticRegression

    _, test, fit, _ = data
    pipeline = as_pipeline(LogisticRegression(max_iter=500)).fit(
        fit[list(schema.FEATURES)].to_numpy(), fit[schema.LABEL])
    assert pipeline.predict_proba(test[list(schema.FEATURES)].to_numpy()).shape == (len(test), 2)


def test_describe_is_json_friendly(candidates) -> None:
    for candidate in candidates.values():
        json.dumps(describe(candidate.estimator))
    stacking = describe(candidates["stacking"].estimator)
    assert stacking["estimator"] == "StackingClassifier"
    assert stacking["estimators"] == ["LightGBM: LGBMClassifier", "XGBoost: XGBClassifier",
                                      "HistGradientBoosting: HistGradientBoostingClassifier"]
    assert stacking["final_estimator"] == "LogisticRegression"


def test_every_candidate_has_a_valid_registry_name(candidates) -> None:
    from tickml.modeling.ensembles import REGISTRY_NAMES
    from tickml.registry import _check_name

    assert set(REGISTRY_NAMES) == set(candidates)
    for name in REGISTRY_NAMES.values():
        _check_name(name)
