"""The model zoo: eight model families, each tuned on the same time-ordered split.

Every family is searched by one tuner, on one objective: the validation average
precision of the pipeline (features step, then the family's estimator) fitted on the
earlier part of the training period and scored on the later part. The test split is
never seen. Families whose fit or prediction grows faster than linearly with the
rows (SVC, k-nearest neighbours, the MLP) are fitted on a stratified subsample of
the fit rows (`ZooData.small`, every class keeping its share and the rows their time
order); they are scored on the full validation rows like the others.

Tuners follow the shape of each space: Hyperopt's TPE for the flat spaces (decision
tree, random forest, SVC, k-nearest neighbours), Optuna's TPE where the space is
defined while it is sampled (logistic regression's solver-dependent penalties, the
MLP's 1–5 layers) and for the two boosters.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import average_precision_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tickml import schema
from tickml.modeling.ensembles import as_pipeline, describe
from tickml.modeling.evaluate import best_f1_threshold, classification_report
from tickml.modeling.pipeline import DEFAULT_PARAMS
from tickml.modeling.register import register_model
from tickml.modeling.tuning import SEARCH_SPACE
from tickml.notebook import limit_rows
from tickml.registry import ModelRef, ModelRegistry
from tickml.schema import as_feature_matrix

OPTUNA, HYPEROPT = "optuna", "hyperopt"
#: Registered models of the zoo are found again by this metadata value.
ZOO_SOURCE = "model zoo"


def _int(value: Any) -> int:
    return round(float(value))


# -- the estimators -------------------------------------------------------------------
def build_tree(p: dict[str, Any], seed: int) -> Any:
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(max_depth=_int(p["max_depth"]),
                                  min_samples_leaf=_int(p["min_samples_leaf"]),
                                  criterion=p["criterion"], class_weight=p["class_weight"],
                                  random_state=seed)


def build_forest(p: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=_int(p["n_estimators"]),
                                  max_depth=_int(p["max_depth"]),
                                  min_samples_leaf=_int(p["min_samples_leaf"]),
                                  max_features=float(p["max_features"]),
                                  class_weight=p["class_weight"], n_jobs=2, random_state=seed)


def build_logistic(p: dict[str, Any], seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    # scikit-learn 1.8+ names the penalty by l1_ratio (0 = L2, 1 = L1, between =
    # elastic-net) and "no penalty" by C = inf; which of them a solver accepts differs.
    penalty = p["penalty"]
    l1_ratio = {"l2": 0.0, "l1": 1.0, "none": 0.0}.get(penalty, p.get("l1_ratio", 0.5))
    c = np.inf if penalty == "none" else float(p["C"])
    model = LogisticRegression(solver=p["solver"], C=c, l1_ratio=l1_ratio,
                               class_weight=p["class_weight"], max_iter=300,
                               random_state=seed)
    return make_pipeline(StandardScaler(), model)


def build_svc(p: dict[str, Any], seed: int) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    # Platt scaling on 3 folds turns the SVC's margins into probabilities (what
    # SVC(probability=True), deprecated in scikit-learn 1.9, did with 5).
    svc = SVC(C=float(p["C"]), gamma=float(p["gamma"]), class_weight=p["class_weight"],
              random_state=seed)
    return make_pipeline(StandardScaler(), CalibratedClassifierCV(svc, method="sigmoid", cv=3,
                                                                  ensemble=False))


def build_mlp(p: dict[str, Any], seed: int) -> Any:
    from sklearn.neural_network import MLPClassifier

    layers = tuple(_int(p[f"units_{i}"]) for i in range(_int(p["layers"])))
    # No early stopping: scikit-learn stops on the held-out *accuracy*, which is flat at
    # the legitimate share from the first epoch on, so it would stop at random. A fixed
    # number of epochs, and the L2 penalty `alpha` as the regulariser, instead.
    return make_pipeline(StandardScaler(), MLPClassifier(
        hidden_layer_sizes=layers, alpha=float(p["alpha"]),
        learning_rate_init=float(p["learning_rate_init"]), max_iter=30,
        random_state=seed))


def build_xgboost(p: dict[str, Any], seed: int) -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(n_estimators=_int(p["n_estimators"]),
                         learning_rate=float(p["learning_rate"]),
                         max_depth=_int(p["max_depth"]),
                         min_child_weight=float(p["min_child_weight"]),
                         subsample=float(p["subsample"]),
                         colsample_bytree=float(p["colsample_bytree"]),
                         reg_lambda=float(p["reg_lambda"]), tree_method="hist",
                         n_jobs=2, random_state=seed, verbosity=0)


def build_knn(p: dict[str, Any], seed: int) -> Any:
    from sklearn.neighbors import KNeighborsClassifier

    # Brute force: with ~30 dimensions trees do not prune, and brute force is one BLAS call.
    return make_pipeline(StandardScaler(), KNeighborsClassifier(
        n_neighbors=_int(p["n_neighbors"]), weights=p["weights"], algorithm="brute"))


def build_lightgbm(p: dict[str, Any], seed: int) -> Any:
    from lightgbm import LGBMClassifier

    params = {**DEFAULT_PARAMS, **{k: (_int(v) if SEARCH_SPACE[k].integer else float(v))
                                   for k, v in p.items()}}
    return LGBMClassifier(**params, random_state=seed, n_jobs=2, deterministic=True,
                          force_row_wise=True, verbose=-1)


# -- the search spaces ---------------------------------------------------------------------
def hyperopt_tree() -> dict[str, Any]:
    from hyperopt import hp

    return {"max_depth": hp.quniform("max_depth", 2, 16, 1),
            "min_samples_leaf": hp.qloguniform("min_samples_leaf", np.log(1), np.log(300), 1),
            "criterion": hp.choice("criterion", ["gini", "entropy"]),
            "class_weight": hp.choice("class_weight", [None, "balanced"])}


def hyperopt_forest() -> dict[str, Any]:
    from hyperopt import hp

    return {"n_estimators": hp.quniform("n_estimators", 30, 100, 1),
            "max_depth": hp.quniform("max_depth", 4, 12, 1),
            "min_samples_leaf": hp.qloguniform("min_samples_leaf", np.log(1), np.log(50), 1),
            "max_features": hp.uniform("max_features", 0.1, 0.5),
            "class_weight": hp.choice("class_weight", [None, "balanced_subsample"])}


def hyperopt_svc() -> dict[str, Any]:
    from hyperopt import hp

    return {"C": hp.loguniform("C", np.log(1e-2), np.log(1e2)),
            "gamma": hp.loguniform("gamma", np.log(1e-4), np.log(1e-1)),
            "class_weight": hp.choice("class_weight", [None, "balanced"])}


def hyperopt_knn() -> dict[str, Any]:
    from hyperopt import hp

    return {"n_neighbors": hp.qloguniform("n_neighbors", np.log(3), np.log(150), 1),
            "weights": hp.choice("weights", ["uniform", "distance"])}


#: Which penalties each solver accepts ("none" is C = inf).
SOLVER_PENALTIES = {"lbfgs": ("l2", "none"), "liblinear": ("l1", "l2"),
                    "saga": ("l1", "l2", "elasticnet")}


def optuna_logistic(trial: Any) -> dict[str, Any]:
    solver = trial.suggest_categorical("solver", list(SOLVER_PENALTIES))
    penalty = trial.suggest_categorical(f"penalty_{solver}", list(SOLVER_PENALTIES[solver]))
    params = {"solver": solver, "penalty": penalty,
              "class_weight": trial.suggest_categorical("class_weight", [None, "balanced"])}
    if penalty != "none":
        params["C"] = trial.suggest_float("C", 1e-3, 1e2, log=True)
    if penalty == "elasticnet":
        params["l1_ratio"] = trial.suggest_float("l1_ratio", 0.05, 0.95)
    return params


def optuna_mlp(trial: Any) -> dict[str, Any]:
    layers = trial.suggest_int("layers", 1, 5)
    params: dict[str, Any] = {"layers": layers}
    for i in range(layers):
        params[f"units_{i}"] = trial.suggest_int(f"units_{i}", 8, 128, log=True)
    params["alpha"] = trial.suggest_float("alpha", 1e-5, 1e-1, log=True)
    params["learning_rate_init"] = trial.suggest_float("learning_rate_init", 1e-4, 1e-2,
                                                       log=True)
    return params


def optuna_xgboost(trial: Any) -> dict[str, Any]:
    return {"n_estimators": trial.suggest_int("n_estimators", 100, 300),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "max_depth": trial.suggest_int("max_depth", 2, 8),
            "min_child_weight": trial.suggest_float("min_child_weight", 1, 20, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True)}


def optuna_lightgbm(trial: Any) -> dict[str, Any]:
    from tickml.modeling.tuning import _suggest

    return {name: _suggest(trial, name, dim) for name, dim in SEARCH_SPACE.items()}


@dataclass(frozen=True)
class Family:
    """A model family: how to build it from sampled values, and how to sample them."""

    name: str
    registry_name: str
    tuner: str
    space: Callable[..., dict[str, Any]]  # Optuna: trial -> values; Hyperopt: () -> hp space
    build: Callable[[dict[str, Any], int], Any]
    subsample: bool = False  # fitted on `ZooData.small`


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("decision tree", "zoo-tree", HYPEROPT, hyperopt_tree, build_tree),
    Family("random forest", "zoo-forest", HYPEROPT, hyperopt_forest, build_forest),
    Family("logistic regression", "zoo-logistic", OPTUNA, optuna_logistic, build_logistic),
    Family("SVC", "zoo-svc", HYPEROPT, hyperopt_svc, build_svc, subsample=True),
    Family("MLP", "zoo-mlp", OPTUNA, optuna_mlp, build_mlp, subsample=True),
    Family("XGBoost", "zoo-xgboost", OPTUNA, optuna_xgboost, build_xgboost),
    Family("k-nearest neighbours", "zoo-knn", HYPEROPT, hyperopt_knn, build_knn,
           subsample=True),
    Family("LightGBM", "zoo-lightgbm", OPTUNA, optuna_lightgbm, build_lightgbm),
)}


# -- the data and the objective ------------------------------------------------------------
@dataclass(frozen=True)
class ZooData:
    """The fit rows, their stratified subsample for slow families, and validation."""

    fit: pd.DataFrame
    small: pd.DataFrame
    validation: pd.DataFrame

    @classmethod
    def split(cls, fit: pd.DataFrame, validation: pd.DataFrame, *, small_rows: int,
              seed: int = 42) -> ZooData:
        """`small` keeps at most `small_rows` of `fit`, each class keeping its share."""
        if validation[schema.LABEL].nunique() < 2:
            raise ValueError("the validation rows need both classes to compute a score")
        return cls(fit, limit_rows(fit, small_rows, seed), validation)

    def rows_for(self, family: Family) -> pd.DataFrame:
        return self.small if family.subsample else self.fit


@dataclass
class Fitted:
    """One fitted pipeline with its validation scores and costs."""

    params: dict[str, Any]
    pipeline: Any
    scores: np.ndarray
    average_precision: float
    fit_seconds: float
    predict_us_per_row: float


def fit_candidate(estimator: Any, rows: pd.DataFrame, validation: pd.DataFrame,
                  params: dict[str, Any] | None = None) -> Fitted:
    """Fit features → `estimator` on `rows`, score `validation`, time both."""
    pipeline = as_pipeline(estimator)
    X_val = as_feature_matrix(validation)
    with warnings.catch_warnings():
        # A short iteration budget is part of the search (saga, the MLP): the score
        # of a model that stopped early is what the search should see.
        warnings.simplefilter("ignore", ConvergenceWarning)
        started = time.perf_counter()
        pipeline.fit(as_feature_matrix(rows), rows[schema.LABEL].to_numpy())
        fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    scores = pipeline.predict_proba(X_val)[:, 1]
    predict_us = (time.perf_counter() - started) / len(X_val) * 1e6
    ap = float(average_precision_score(validation[schema.LABEL].to_numpy(), scores))
    return Fitted(params or {}, pipeline, scores, ap, fit_seconds, predict_us)


class ZooObjective:
    """Validation average precision of one family for sampled values; keeps the best fit."""

    def __init__(self, family: Family, data: ZooData, seed: int = 42) -> None:
        self.family, self.data, self.seed = family, data, seed
        self.rows = data.rows_for(family)
        self.best: Fitted | None = None
        self.history: list[dict[str, Any]] = []
        self._started = time.perf_counter()

    def __call__(self, params: dict[str, Any]) -> float:
        fitted = fit_candidate(self.family.build(params, self.seed), self.rows,
                               self.data.validation, params)
        self.history.append({"trial": len(self.history), "score": fitted.average_precision,
                             "fit_seconds": fitted.fit_seconds,
                             "elapsed": time.perf_counter() - self._started, **params})
        if self.best is None or fitted.average_precision > self.best.average_precision:
            self.best = fitted
        return fitted.average_precision


# -- the searches -----------------------------------------------------------------------
@dataclass
class ZooResult:
    """One family's search: the best fit, the history, and Optuna's study if it ran."""

    family: Family
    best: Fitted
    history: pd.DataFrame
    seconds: float
    seed: int
    study: Any = field(default=None, repr=False)


def tune_family(family: Family, data: ZooData, *, n_trials: int, timeout: float | None = None,
                seed: int = 42, startup_trials: int = 5) -> ZooResult:
    """Search `family` with its tuner for `n_trials` trials or `timeout` seconds.

    The search stops at whichever comes first (a trial that started runs to its end).
    """
    objective = ZooObjective(family, data, seed)
    started = time.perf_counter()
    if family.tuner == OPTUNA:
        study = _optuna_search(family, objective, n_trials, timeout, seed, startup_trials)
    else:
        study = None
        _hyperopt_search(family, objective, n_trials, timeout, seed, startup_trials)
    assert objective.best is not None  # at least one trial always runs
    return ZooResult(family, objective.best, pd.DataFrame(objective.history),
                     time.perf_counter() - started, seed, study)


def _optuna_search(family: Family, objective: ZooObjective, n_trials: int,
                   timeout: float | None, seed: int, startup_trials: int) -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials)
    study = optuna.create_study(direction="maximize", sampler=sampler,
                                study_name=family.name)
    study.optimize(lambda trial: objective(family.space(trial)), n_trials=n_trials,
                   timeout=timeout)
    return study


def _hyperopt_search(family: Family, objective: ZooObjective, n_trials: int,
                     timeout: float | None, seed: int, startup_trials: int) -> None:
    from hyperopt import STATUS_OK, Trials, fmin, tpe

    def loss(params: dict[str, Any]) -> dict[str, Any]:
        return {"loss": -objective(params), "status": STATUS_OK}

    fmin(loss, family.space(), algo=partial(tpe.suggest, n_startup_jobs=startup_trials),
         max_evals=n_trials, timeout=timeout, trials=Trials(),
         rstate=np.random.default_rng(seed), show_progressbar=False)


def dummy_baseline(data: ZooData) -> Fitted:
    """A `DummyClassifier` that always answers the fraud share: the floor to beat."""
    return fit_candidate(DummyClassifier(strategy="prior"), data.fit, data.validation)


# -- the summary and the registry --------------------------------------------------------
def summary_row(name: str, tuner: str, fitted: Fitted, rows: pd.DataFrame,
                y_val: np.ndarray, trials: int, search_seconds: float) -> dict[str, Any]:
    """AP, ROC-AUC, and precision/recall/F1 at the best-F1 threshold, with the costs."""
    threshold = best_f1_threshold(y_val, fitted.scores)
    report = classification_report(y_val, fitted.scores, threshold)
    return {"model": name, "tuner": tuner, "trials": trials,
            "fit_rows": len(rows), "fit_frauds": int(rows[schema.LABEL].sum()),
            **{k: report[k] for k in ("average_precision", "roc_auc", "precision",
                                      "recall", "f1", "threshold")},
            "fit_seconds": fitted.fit_seconds,
            "predict_us_per_row": fitted.predict_us_per_row,
            "search_seconds": search_seconds}


def zoo_summary(results: list[ZooResult], data: ZooData, baseline: Fitted) -> pd.DataFrame:
    """One row per tuned family and one for the baseline, best average precision first."""
    y_val = data.validation[schema.LABEL].to_numpy()
    rows = [summary_row(r.family.name, r.family.tuner, r.best, data.rows_for(r.family),
                        y_val, len(r.history), r.seconds) for r in results]
    rows.append(summary_row("DummyClassifier (baseline)", "-", baseline, data.fit, y_val, 1,
                            0.0))
    table = pd.DataFrame(rows).sort_values("average_precision", ascending=False)
    table["ap_over_baseline"] = table["average_precision"] / baseline.average_precision
    return table.reset_index(drop=True)


def register_zoo(registry: ModelRegistry, results: list[ZooResult], data: ZooData, *,
                 seed: int, data_sha256: str, extra: dict[str, Any] | None = None
                 ) -> dict[str, ModelRef]:
    """Register every tuned family's best pipeline (fitted on the fit rows), unpromoted."""
    y_val = data.validation[schema.LABEL].to_numpy()
    refs = {}
    for result in results:
        fitted, family = result.best, result.family
        threshold = best_f1_threshold(y_val, fitted.scores)
        rows = data.rows_for(family)
        refs[family.name] = register_model(
            registry, fitted.pipeline, name=family.registry_name, threshold=threshold,
            metrics={"validation": classification_report(y_val, fitted.scores, threshold)},
            params=describe(_final_step(fitted.pipeline)), seed=seed,
            data_sha256=data_sha256,
            extra={"source": ZOO_SOURCE, "family": family.name, "tuner": family.tuner,
                   "sampled_params": {k: _plain(v) for k, v in fitted.params.items()},
                   "fit_rows": len(rows), "fit_seconds": round(fitted.fit_seconds, 3),
                   "subsample": family.subsample,
                   "threshold_rule": "best F1 on validation", **(extra or {})})
    return refs


def _final_step(pipeline: Any) -> Any:
    model = pipeline.named_steps["model"]
    return model.steps[-1][1] if hasattr(model, "steps") else model


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def registered_zoo(registry: ModelRegistry) -> dict[str, tuple[ModelRef, dict[str, Any]]]:
    """The newest registered version of each zoo family, with its metadata, by family."""
    found: dict[str, tuple[ModelRef, dict[str, Any]]] = {}
    for family in FAMILIES.values():
        versions = registry.versions(family.registry_name)
        for ref in reversed(versions):
            metadata = registry.metadata(ref)
            if metadata.get("source") == ZOO_SOURCE:
                found[family.name] = (ref, metadata)
                break
    return found


def zoo_members(registry: ModelRegistry, *, count: int = 3,
                exclude_subsampled: bool = True,
                max_fit_seconds: float | None = None) -> dict[str, Any]:
    """Unfitted copies of the best registered zoo families, by validation average precision.

    Families tuned on the subsample are left out by default: an ensemble refits its
    members on every fit row (stacking several times), which their cost does not allow.
    `max_fit_seconds` leaves out, for the same reason, families whose registered fit
    took longer (stacking with three folds fits each member four times).
    """
    from sklearn.base import clone

    ranked = []
    for name, (ref, metadata) in registered_zoo(registry).items():
        if exclude_subsampled and metadata.get("subsample"):
            continue
        if max_fit_seconds is not None and metadata.get("fit_seconds", 0.0) > max_fit_seconds:
            continue
        ranked.append((metadata["metrics"]["validation"]["average_precision"], name, ref))
    ranked.sort(key=lambda item: item[0], reverse=True)
    return {name: clone(registry.load_pipeline(ref).pipeline.named_steps["model"])
            for _, name, ref in ranked[:count]}


def subsample_cost(result: ZooResult, data: ZooData) -> dict[str, Any]:
    """What fitting on the subsample costs a family: its tuned settings refitted there.

    Returns the validation average precision on all fit rows and on the subsample.
    """
    small = fit_candidate(result.family.build(result.best.params, result.seed), data.small,
                          data.validation)
    return {"model": result.family.name, "ap_all_fit_rows": result.best.average_precision,
            "ap_subsample": small.average_precision, "fit_rows": len(data.fit),
            "subsample_rows": len(data.small),
            "subsample_frauds": int(data.small[schema.LABEL].sum())}


def plot_histories(results: list[ZooResult], *, columns: int = 4) -> Any:
    """One small plot per family: each trial's validation AP and the best so far."""
    import matplotlib.pyplot as plt

    n_rows = -(-len(results) // columns)
    fig, axes = plt.subplots(n_rows, columns, figsize=(3.4 * columns, 2.6 * n_rows),
                             squeeze=False)
    for ax, result in zip(axes.ravel(), results, strict=False):
        history = result.history
        ax.plot(history["trial"], history["score"], "o", ms=3, alpha=0.6)
        ax.step(history["trial"], history["score"].cummax(), where="post")
        ax.set_title(f"{result.family.name} ({result.family.tuner})", fontsize=9)
        ax.set_xlabel("trial", fontsize=8)
    for ax in axes.ravel()[len(results):]:
        ax.set_visible(False)
    axes[0, 0].set_ylabel("validation AP")
    fig.tight_layout()
    return fig


def plot_optuna_study(result: ZooResult) -> tuple[Any, Any]:
    """Optuna's optimisation history and parameter-slice plots (matplotlib backend)."""
    import optuna

    if result.study is None:
        raise ValueError(f"{result.family.name} was tuned with {result.family.tuner}, "
                         "not Optuna")
    with warnings.catch_warnings():
        # The matplotlib backend of optuna.visualization is marked experimental.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # A parameter sampled once (a short search) has an empty range on its slice.
        warnings.filterwarnings("ignore", message="Attempting to set identical")
        history = optuna.visualization.matplotlib.plot_optimization_history(result.study)
        slices = optuna.visualization.matplotlib.plot_slice(result.study)
    return history, slices
