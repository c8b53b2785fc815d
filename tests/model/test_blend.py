"""The hold-out blender: members on the earlier rows, a meta-model on the later ones."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from tickml.modeling.ensembles import HoldoutBlender


@pytest.fixture(scope="module")
def rows() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2_000, 5))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.5, size=2_000) > 1.5).astype(int)
    return X, y


def members() -> list[tuple[str, object]]:
    return [("logistic", LogisticRegression()),
            ("tree", DecisionTreeClassifier(max_depth=4, random_state=0))]


def test_members_see_only_the_earlier_rows_and_the_meta_model_the_rest(rows) -> None:
    X, y = rows
    blend = HoldoutBlender(members(), holdout=0.25).fit(X, y)
    cut = 1_500
    expected = LogisticRegression().fit(X[:cut], y[:cut])
    np.testing.assert_allclose(blend.estimators_[0].coef_, expected.coef_)
    stacked = np.column_stack([m.predict_proba(X[cut:])[:, 1] for m in blend.estimators_])
    meta = LogisticRegression(max_iter=1000).fit(stacked, y[cut:])
    np.testing.assert_allclose(blend.final_estimator_.coef_, meta.coef_)
    assert blend.estimators[0][1] is not blend.estimators_[0]  # the originals stay unfitted


def test_probabilities_rank_well_and_survive_pickling(rows) -> None:
    from sklearn.metrics import roc_auc_score

    X, y = rows
    blend = HoldoutBlender(members()).fit(X[:1_500], y[:1_500])
    proba = blend.predict_proba(X[1_500:])
    assert proba.shape == (500, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert roc_auc_score(y[1_500:], proba[:, 1]) > 0.9
    assert set(blend.predict(X[1_500:])) <= {0, 1}
    again = pickle.loads(pickle.dumps(blend))
    np.testing.assert_allclose(again.predict_proba(X[1_500:]), proba)


@pytest.mark.parametrize(("holdout", "message"), [(0.0, "holdout must lie"),
                                                  (1.0, "holdout must lie"),
                                                  (0.001, "both classes")])
def test_refuses_a_holdout_without_both_classes(rows, holdout, message) -> None:
    X, y = rows
    with pytest.raises(ValueError, match=message):
        HoldoutBlender(members(), holdout=holdout).fit(X, np.sort(y))


def test_predicting_before_fitting_says_so(rows) -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        HoldoutBlender(members()).predict_proba(rows[0])
