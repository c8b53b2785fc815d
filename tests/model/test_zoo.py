"""The model zoo: every family tuned for real on a small time-ordered split, registered
unpromoted, and combined by the ensembles notebook 04 builds from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from tickml import schema
from tickml.data.prepare import split_transactions
from tickml.data.synthetic import generate_transactions
from tickml.loader import load
from tickml.modeling import zoo
from tickml.registry import ModelRegistry


@pytest.fixture(scope="module")
def data() -> zoo.ZooData:
    frame = generate_transactions(5_000, seed=7, fraud_rate=0.03)
    fit, validation = split_transactions(frame, "time", 0.3)
    return zoo.ZooData.split(fit, validation, small_rows=1_500, seed=3)


@pytest.fixture(scope="module")
def results(data) -> dict[str, zoo.ZooResult]:
    return {name: zoo.tune_family(family, data, n_trials=2, seed=1, startup_trials=1)
            for name, family in zoo.FAMILIES.items()}


def test_the_zoo_holds_the_eight_families_and_names_their_tuners() -> None:
    tuners = {name: family.tuner for name, family in zoo.FAMILIES.items()}
    assert tuners == {"decision tree": "hyperopt", "random forest": "hyperopt",
                      "logistic regression": "optuna", "SVC": "hyperopt", "MLP": "optuna",
                      "XGBoost": "optuna", "k-nearest neighbours": "hyperopt",
                      "LightGBM": "optuna"}
    assert {n for n, f in zoo.FAMILIES.items() if f.subsample} == {
        "SVC", "MLP", "k-nearest neighbours"}
    assert len({f.registry_name for f in zoo.FAMILIES.values()}) == len(zoo.FAMILIES)


def test_the_subsample_is_stratified_and_keeps_time_order(data) -> None:
    small, fit = data.small, data.fit
    assert len(small) <= 1_500
    assert small[schema.LABEL].mean() == pytest.approx(fit[schema.LABEL].mean(), rel=0.1)
    assert small[schema.TIME].is_monotonic_increasing
    assert data.rows_for(zoo.FAMILIES["SVC"]) is small
    assert data.rows_for(zoo.FAMILIES["XGBoost"]) is fit


def test_every_family_beats_the_dummy_baseline(results, data) -> None:
    baseline = zoo.dummy_baseline(data)
    fraud_share = data.validation[schema.LABEL].mean()
    assert baseline.average_precision == pytest.approx(fraud_share)
    for name, result in results.items():
        # Two trials on a 1,500-row subsample: a margin over the floor, not a quality bar.
        assert result.best.average_precision > 2 * baseline.average_precision, name
        assert result.best.scores.shape == (len(data.validation),)


def test_a_search_keeps_its_best_trial_and_history(results) -> None:
    for name, result in results.items():
        history = result.history
        assert 1 <= len(history) <= 2, name
        assert result.best.average_precision == history["score"].max()
        assert (result.study is not None) == (result.family.tuner == zoo.OPTUNA)


def test_a_time_budget_stops_a_search(data) -> None:
    result = zoo.tune_family(zoo.FAMILIES["decision tree"], data, n_trials=50,
                             timeout=0.01, seed=1)
    assert 1 <= len(result.history) < 50


@pytest.mark.parametrize(("solver", "penalty"), [
    (solver, penalty) for solver, penalties in zoo.SOLVER_PENALTIES.items()
    for penalty in penalties])
def test_every_solver_penalty_pair_fits(data, solver, penalty) -> None:
    import optuna

    values = {"solver": solver, f"penalty_{solver}": penalty, "class_weight": None,
              "C": 0.5, "l1_ratio": 0.3}
    params = zoo.optuna_logistic(optuna.trial.FixedTrial(values))
    assert params["penalty"] == penalty and ("l1_ratio" in params) == (penalty == "elasticnet")
    model = zoo.build_logistic(params, seed=0).steps[-1][1]
    assert model.solver == solver
    assert model.l1_ratio == {"l1": 1.0, "l2": 0.0, "none": 0.0, "elasticnet": 0.3}[penalty]
    assert np.isinf(model.C) == (penalty == "none")
    fitted = zoo.fit_candidate(zoo.build_logistic(params, seed=0), data.fit, data.validation)
    assert fitted.average_precision > 0.3


@pytest.mark.parametrize("layers", [1, 5])
def test_the_mlp_has_the_sampled_number_of_layers(layers) -> None:
    import optuna

    values = {"layers": layers, "alpha": 1e-3, "learning_rate_init": 1e-3,
              **{f"units_{i}": 8 + i for i in range(layers)}}
    params = zoo.optuna_mlp(optuna.trial.FixedTrial(values))
    mlp = zoo.build_mlp(params, seed=0).steps[-1][1]
    assert mlp.hidden_layer_sizes == tuple(8 + i for i in range(layers))


def test_the_summary_has_every_family_and_the_baseline(results, data) -> None:
    table = zoo.zoo_summary(list(results.values()), data, zoo.dummy_baseline(data))
    assert set(table["model"]) == {*zoo.FAMILIES, "DummyClassifier (baseline)"}
    for column in ("average_precision", "roc_auc", "precision", "recall", "f1",
                   "fit_seconds", "predict_us_per_row"):
        assert table[column].notna().all(), column
    assert table["average_precision"].is_monotonic_decreasing
    assert table.iloc[-1]["model"] == "DummyClassifier (baseline)"
    svc = table.set_index("model").loc["SVC"]
    assert svc["fit_rows"] == len(data.small)
    assert (table["predict_us_per_row"] > 0).all()


def test_the_subsample_cost_compares_the_same_settings(results, data) -> None:
    cost = zoo.subsample_cost(results["logistic regression"], data)
    assert cost["fit_rows"] == len(data.fit) and cost["subsample_rows"] == len(data.small)
    assert 0 < cost["ap_subsample"] <= 1


def test_optuna_plots_come_from_the_study(results) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history, slices = zoo.plot_optuna_study(results["MLP"])
    assert history.get_title() == "Optimization History Plot"
    assert len(np.atleast_1d(slices)) >= 3  # layers, a width, alpha, learning rate
    with pytest.raises(ValueError, match="hyperopt"):
        zoo.plot_optuna_study(results["decision tree"])
    plt.close("all")


def test_registered_unpromoted_and_picked_as_members(results, data, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    refs = zoo.register_zoo(registry, list(results.values()), data, seed=1,
                            data_sha256="abc", extra={"notebook": "03"})
    assert set(refs) == set(zoo.FAMILIES)
    assert registry.production() is None
    found = zoo.registered_zoo(registry)
    assert {name: ref for name, (ref, _) in found.items()} == refs
    meta = found["SVC"][1]
    assert meta["subsample"] is True and meta["fit_rows"] == len(data.small)
    assert meta["tuner"] == "hyperopt" and meta["notebook"] == "03"
    loaded = load(registry, refs["logistic regression"])
    np.testing.assert_allclose(loaded.predict_proba(data.validation),
                               results["logistic regression"].best.scores)

    members = zoo.zoo_members(registry, count=3)
    ranked = sorted(((m["metrics"]["validation"]["average_precision"], n)
                     for n, (_, m) in found.items() if not m["subsample"]), reverse=True)
    assert list(members) == [name for _, name in ranked[:3]]
    for estimator in members.values():  # unfitted copies with the tuned settings
        with pytest.raises(NotFittedError):
            check_is_fitted(estimator)

    fit_seconds = {name: m["fit_seconds"] for name, (_, m) in found.items()}
    assert fit_seconds["logistic regression"] == pytest.approx(
        results["logistic regression"].best.fit_seconds, abs=1e-3)
    slowest = max((s, n) for n, s in fit_seconds.items() if not found[n][1]["subsample"])
    quick = zoo.zoo_members(registry, count=8, max_fit_seconds=slowest[0] - 1e-6)
    assert slowest[1] not in quick and len(quick) == len(ranked) - 1


def test_ensembles_of_tuned_members_fit_and_score(results, data) -> None:
    from tickml.modeling.ensembles import compare_models, ensembles_of

    members = {name: results[name].best.pipeline.named_steps["model"]
               for name in ("logistic regression", "decision tree")}
    candidates = ensembles_of(members, seed=0)
    assert set(candidates) == {"stacking", "soft voting", "blend"}
    comparison = compare_models(candidates, data.fit, data.validation)
    assert (comparison.table["average_precision"]
            > 3 * data.validation[schema.LABEL].mean()).all()


def test_registered_zoo_ignores_models_from_elsewhere(tmp_path: Path) -> None:
    from sklearn.dummy import DummyClassifier

    registry = ModelRegistry(tmp_path / "models")
    frame = pd.DataFrame(np.zeros((4, len(schema.FEATURES))), columns=list(schema.FEATURES))
    model = DummyClassifier().fit(frame, [0, 1, 0, 1])
    registry.register(model, name="zoo-tree", threshold=0.5, metrics={}, params={}, seed=0,
                      data_sha256="x")
    assert zoo.registered_zoo(registry) == {}
