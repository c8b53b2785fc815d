"""Hyperparameter search for the default pipeline, with Optuna and with Hyperopt.

Both libraries search one space (`SEARCH_SPACE`) with one objective
(`LightGBMObjective`): the validation average precision of the LightGBM pipeline
fitted on the earlier part of the training period and scored on the later part.
The objective receives its data once, when it is built, and never sees the test
split. Optuna can also prune: the objective reports the validation score every few
boosting rounds, and a trial that trails the median of earlier trials stops early.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from tickml import schema
from tickml.modeling.features import TransactionFeatures
from tickml.modeling.pipeline import build_pipeline
from tickml.schema import as_feature_matrix

Reporter = Callable[[int, float], None]


@dataclass(frozen=True)
class Dimension:
    """One hyperparameter: its range, and whether it is an integer or log-scaled."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"low {self.low} must be below high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError("a log-scaled dimension needs a positive lower bound")


#: The LightGBM parameters searched, and their ranges.
SEARCH_SPACE: dict[str, Dimension] = {
    "n_estimators": Dimension(100, 400, integer=True),
    "learning_rate": Dimension(0.01, 0.3, log=True),
    "num_leaves": Dimension(7, 63, integer=True),
    "min_child_samples": Dimension(10, 200, log=True, integer=True),
    "reg_lambda": Dimension(1e-3, 10.0, log=True),
    "colsample_bytree": Dimension(0.5, 1.0),
}


def clip_to_space(params: dict[str, Any], space: dict[str, Dimension]) -> dict[str, Any]:
    """Parameters as the model wants them: integers rounded, everything inside its range."""
    clean = {}
    for name, dim in space.items():
        value = min(max(float(params[name]), dim.low), dim.high)
        clean[name] = round(value) if dim.integer else value
    return clean


class LightGBMObjective:
    """Validation average precision of the default pipeline for given parameters.

    Args:
        fit: training rows (the earlier part of the training period).
        validation: rows to score on (the later part); never the test split.
        seed: seeds LightGBM (and the resampler), recorded with the results.
        resampler_factory: builds a fresh resampler per trial, or None.
        report_every: boosting rounds between two reports of the validation score.
        n_jobs: LightGBM threads.
    """

    def __init__(self, fit: pd.DataFrame, validation: pd.DataFrame, *, seed: int = 42,
                 resampler_factory: Callable[[], Any] | None = None, report_every: int = 25,
                 n_jobs: int = 2) -> None:
        if validation[schema.LABEL].nunique() < 2:
            raise ValueError("the validation rows need both classes to compute a score")
        self.X_fit = as_feature_matrix(fit)
        self.y_fit = fit[schema.LABEL].to_numpy()
        self.X_val = as_feature_matrix(validation)
        self.y_val = validation[schema.LABEL].to_numpy()
        # The features step is stateless: the rows the callback scores are transformed once.
        self._val_features = TransactionFeatures().fit_transform(self.X_val)
        self.seed = seed
        self.resampler_factory = resampler_factory
        self.report_every = report_every
        self.n_jobs = n_jobs

    def __call__(self, params: dict[str, Any], report: Reporter | None = None) -> float:
        """Fit with `params` and return the validation average precision.

        `report(round, score)` is called every `report_every` boosting rounds and may
        raise to prune the trial.
        """
        resampler = self.resampler_factory() if self.resampler_factory else None
        pipeline = build_pipeline(params, seed=self.seed, resampler=resampler,
                                  n_jobs=self.n_jobs)
        fit_params = {}
        if report is not None:
            fit_params["model__callbacks"] = [self._reporting_callback(report)]
        pipeline.fit(self.X_fit, self.y_fit, **fit_params)
        scores = pipeline.predict_proba(self.X_val)[:, 1]
        return float(average_precision_score(self.y_val, scores))

    def _reporting_callback(self, report: Reporter) -> Callable[[Any], None]:
        # Scoring the validation rows only every few rounds: LightGBM's built-in
        # average_precision metric would rank them after every round, which costs more
        # than the boosting itself.
        every = self.report_every

        def callback(env: Any) -> None:
            done = env.iteration + 1
            if done % every == 0 or done == env.end_iteration:
                scores = env.model.predict(self._val_features, num_iteration=done)
                report(done, float(average_precision_score(self.y_val, scores)))

        return callback


@dataclass
class TuningResult:
    """The outcome of one search."""

    library: str
    best_params: dict[str, Any]
    best_score: float
    seconds: float
    seed: int
    history: pd.DataFrame = field(repr=False)  # trial, score, state, seconds, elapsed

    def summary(self) -> dict[str, Any]:
        """One row for a comparison table."""
        complete = self.history[self.history["state"] == "complete"]
        best_at = int(complete.loc[complete["score"].idxmax(), "trial"]) if len(complete) else -1
        return {"library": self.library, "best_score": self.best_score,
                "trials": len(self.history), "pruned": int((self.history["state"] ==
                                                            "pruned").sum()),
                "best_trial": best_at, "seconds": self.seconds,
                "seconds_per_trial": self.seconds / max(len(self.history), 1)}


def _history_row(trial: int, score: float | None, state: str, seconds: float,
                 elapsed: float, params: dict[str, Any]) -> dict[str, Any]:
    return {"trial": trial, "score": score, "state": state, "seconds": seconds,
            "elapsed": elapsed, **params}


def tune_with_optuna(objective: LightGBMObjective, n_trials: int, *, seed: int = 42,
                     prune: bool = True, space: dict[str, Dimension] | None = None,
                     startup_trials: int = 5) -> TuningResult:
    """Search with Optuna's TPE sampler, pruning trials that trail the median.

    Args:
        objective: the function to maximise.
        n_trials: trials to run (pruned ones included).
        seed: seeds the sampler.
        prune: stop trials early with a `MedianPruner`.
        startup_trials: trials sampled at random (and never pruned) before TPE starts.
    """
    with warnings.catch_warnings():
        # Optuna imports tqdm.auto, which warns in a notebook without ipywidgets.
        warnings.filterwarnings("ignore", message="IProgress not found")
        import optuna

    space = space or SEARCH_SPACE
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=startup_trials,
                                          n_warmup_steps=objective.report_every * 2)
              if prune else optuna.pruners.NopPruner())
    study = optuna.create_study(
        direction="maximize", pruner=pruner,
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials))
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()

    def optuna_objective(trial: optuna.Trial) -> float:
        params = {name: _suggest(trial, name, dim) for name, dim in space.items()}

        def report(step: int, score: float) -> None:
            trial.report(score, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        trial_started = time.perf_counter()
        try:
            score = objective(params, report if prune else None)
        except optuna.TrialPruned:
            now = time.perf_counter()
            rows.append(_history_row(trial.number, None, "pruned", now - trial_started,
                                     now - started, params))
            raise
        now = time.perf_counter()
        rows.append(_history_row(trial.number, score, "complete", now - trial_started,
                                 now - started, params))
        return score

    study.optimize(optuna_objective, n_trials=n_trials)
    seconds = time.perf_counter() - started
    best = clip_to_space(study.best_params, space)
    return TuningResult("optuna", best, float(study.best_value), seconds, seed,
                        pd.DataFrame(rows))


def _suggest(trial: Any, name: str, dim: Dimension) -> float | int:
    if dim.integer:
        return trial.suggest_int(name, int(dim.low), int(dim.high), log=dim.log)
    return trial.suggest_float(name, dim.low, dim.high, log=dim.log)


def hyperopt_space(space: dict[str, Dimension]) -> dict[str, Any]:
    """The same space in Hyperopt's terms (integers are quantised, then rounded)."""
    from hyperopt import hp

    converted = {}
    for name, dim in space.items():
        if dim.log and dim.integer:
            converted[name] = hp.qloguniform(name, math.log(dim.low), math.log(dim.high), 1)
        elif dim.log:
            converted[name] = hp.loguniform(name, math.log(dim.low), math.log(dim.high))
        elif dim.integer:
            converted[name] = hp.quniform(name, dim.low, dim.high, 1)
        else:
            converted[name] = hp.uniform(name, dim.low, dim.high)
    return converted


def tune_with_hyperopt(objective: LightGBMObjective, n_trials: int, *, seed: int = 42,
                       space: dict[str, Dimension] | None = None,
                       startup_trials: int = 5) -> TuningResult:
    """Search with Hyperopt's TPE (it has no pruning: every trial runs to the end)."""
    from functools import partial

    from hyperopt import STATUS_OK, Trials, fmin, space_eval, tpe

    space = space or SEARCH_SPACE
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()

    def hyperopt_objective(raw: dict[str, Any]) -> dict[str, Any]:
        params = clip_to_space(raw, space)
        trial_started = time.perf_counter()
        score = objective(params)
        now = time.perf_counter()
        rows.append(_history_row(len(rows), score, "complete", now - trial_started,
                                 now - started, params))
        return {"loss": -score, "status": STATUS_OK}

    trials = Trials()
    search_space = hyperopt_space(space)
    best_raw = fmin(hyperopt_objective, search_space,
                    algo=partial(tpe.suggest, n_startup_jobs=startup_trials),
                    max_evals=n_trials, trials=trials, rstate=np.random.default_rng(seed),
                    show_progressbar=False)
    seconds = time.perf_counter() - started
    best = clip_to_space(space_eval(search_space, best_raw), space)
    return TuningResult("hyperopt", best, -float(min(trials.losses())), seconds, seed,
                        pd.DataFrame(rows))


def plot_histories(results: list[TuningResult], ax: Any = None) -> Any:
    """Each trial's score and the best-so-far curve, against wall-clock seconds."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    for color, result in zip(("tab:blue", "tab:orange", "tab:green"), results, strict=False):
        history = result.history.sort_values("elapsed")
        done = history[history["state"] == "complete"]
        ax.scatter(done["elapsed"], done["score"], s=18, color=color, alpha=0.5)
        for x in history.loc[history["state"] == "pruned", "elapsed"]:
            ax.axvline(x, color=color, alpha=0.15, linewidth=1)
        best = done["score"].cummax()
        ax.step(done["elapsed"], best, where="post", color=color,
                label=f"{result.library}: best {result.best_score:.3f}")
    ax.set(xlabel="seconds since the search started", ylabel="validation average precision",
           title="Search histories (dots: trials, line: best so far, faint bars: pruned)")
    ax.legend(loc="lower right")
    return ax
