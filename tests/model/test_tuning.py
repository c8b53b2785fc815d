"""One search space and objective, searched with Optuna and with Hyperopt."""

from __future__ import annotations

import pandas as pd
import pytest

from tickml import schema
from tickml.data.prepare import split_transactions
from tickml.data.synthetic import generate_transactions
from tickml.modeling.resampling import make_resampler
from tickml.modeling.tuning import (
    SEARCH_SPACE,
    Dimension,
    LightGBMObjective,
    clip_to_space,
    plot_histories,
    tune_with_hyperopt,
    tune_with_optuna,
)

#: A small, quick space so each trial takes a fraction of a second.
SMALL_SPACE = {
    "n_estimators": Dimension(20, 60, integer=True),
    "learning_rate": Dimension(0.05, 0.3, log=True),
    "num_leaves": Dimension(4, 16, integer=True),
}


@pytest.fixture(scope="module")
def objective() -> LightGBMObjective:
    frame = generate_transactions(5_000, seed=4, fraud_rate=0.02)
    fit, validation = split_transactions(frame, "time", 0.3)
    return LightGBMObjective(fit, validation, seed=1, report_every=10)


@pytest.mark.parametrize(("dim", "message"), [
    (dict(low=1, high=1), "must be below"),
    (dict(low=0, high=1, log=True), "positive lower bound"),
])
def test_dimension_refuses_bad_ranges(dim, message) -> None:
    with pytest.raises(ValueError, match=message):
        Dimension(**dim)


def test_clip_to_space_rounds_integers_and_clips() -> None:
    params = clip_to_space({"n_estimators": 59.6, "learning_rate": 9.0, "num_leaves": 1.2},
                           SMALL_SPACE)
    assert params == {"n_estimators": 60, "learning_rate": 0.3, "num_leaves": 4}
    assert isinstance(params["n_estimators"], int)


def test_search_space_covers_lightgbm_parameters() -> None:
    from lightgbm import LGBMClassifier

    assert set(SEARCH_SPACE) <= set(LGBMClassifier().get_params())


def test_objective_reports_the_validation_average_precision(objective) -> None:
    reported: list[tuple[int, float]] = []
    score = objective({"n_estimators": 30}, lambda step, value: reported.append((step, value)))
    assert [step for step, _ in reported] == [10, 20, 30]
    assert reported[-1][1] == score
    base_rate = objective.y_val.mean()
    assert base_rate * 3 < score <= 1.0
    assert objective({"n_estimators": 30}) == score  # seeded: the same every time


def test_objective_refuses_validation_without_frauds() -> None:
    frame = generate_transactions(2_000, seed=1, fraud_rate=0.01)
    legit = frame[frame[schema.LABEL] == 0]
    with pytest.raises(ValueError, match="both classes"):
        LightGBMObjective(frame, legit)


def test_objective_can_resample_inside_the_pipeline(objective) -> None:
    resampled = LightGBMObjective.__new__(LightGBMObjective)
    resampled.__dict__.update(objective.__dict__)
    resampled.resampler_factory = lambda: make_resampler("random under", 0.2, seed=0)
    assert 0 < resampled({"n_estimators": 20}) <= 1


def test_optuna_search_with_pruning(objective) -> None:
    result = tune_with_optuna(objective, 8, seed=3, space=SMALL_SPACE, startup_trials=3)
    history = result.history
    assert len(history) == 8
    assert set(history["state"]) <= {"complete", "pruned"}
    assert result.best_score == pytest.approx(history["score"].max())
    assert set(result.best_params) == set(SMALL_SPACE)
    assert isinstance(result.best_params["num_leaves"], int)
    assert objective(result.best_params) == pytest.approx(result.best_score)
    summary = result.summary()
    assert summary["library"] == "optuna" and summary["trials"] == 8
    assert summary["pruned"] == (history["state"] == "pruned").sum()


def test_hyperopt_search(objective) -> None:
    result = tune_with_hyperopt(objective, 6, seed=3, space=SMALL_SPACE, startup_trials=3)
    assert len(result.history) == 6
    assert (result.history["state"] == "complete").all()
    assert result.best_score == pytest.approx(result.history["score"].max())
    for name, dim in SMALL_SPACE.items():
        assert dim.low <= result.best_params[name] <= dim.high
    assert objective(result.best_params) == pytest.approx(result.best_score)


def test_searches_are_reproducible_with_a_seed(objective) -> None:
    first = tune_with_hyperopt(objective, 4, seed=9, space=SMALL_SPACE, startup_trials=2)
    second = tune_with_hyperopt(objective, 4, seed=9, space=SMALL_SPACE, startup_trials=2)
    pd.testing.assert_frame_equal(first.history.drop(columns=["seconds", "elapsed"]),
                                  second.history.drop(columns=["seconds", "elapsed"]))


def test_plot_histories_draws_one_best_line_per_search(objective) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [tune_with_optuna(objective, 4, seed=1, space=SMALL_SPACE, startup_trials=2),
               tune_with_hyperopt(objective, 4, seed=1, space=SMALL_SPACE, startup_trials=2)]
    ax = plot_histories(results)
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert [label.split(":")[0] for label in labels] == ["optuna", "hyperopt"]
    plt.close(ax.figure)
