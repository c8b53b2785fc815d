"""Resamplers inside the pipeline, and the rare-class metrics they are compared on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tickml import schema
from tickml.data.prepare import split_transactions
from tickml.data.synthetic import generate_transactions
from tickml.modeling.evaluate import rare_class_scores, recall_at_precision
from tickml.modeling.resampling import (
    RESAMPLERS,
    compare_resamplers,
    make_resampler,
    resampled_counts,
)

FAST = {"n_estimators": 40, "learning_rate": 0.1}


@pytest.fixture(scope="module")
def split() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = generate_transactions(6_000, seed=3, fraud_rate=0.02)
    return split_transactions(frame, "time", 0.3)


@pytest.mark.parametrize(("y", "scores", "precision", "expected"), [
    ([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 1.0, 1.0),  # perfect ranking
    ([0, 1, 0, 1], [0.1, 0.2, 0.8, 0.9], 1.0, 0.5),  # only the top one is clean
    ([0, 1, 0, 1], [0.1, 0.2, 0.8, 0.9], 0.5, 1.0),
    ([1, 0, 0, 0], [0.1, 0.2, 0.8, 0.9], 0.9, 0.0),  # never reaches the precision
])
def test_recall_at_precision(y, scores, precision, expected) -> None:
    assert recall_at_precision(np.array(y), np.array(scores), precision) == expected


def test_rare_class_scores_names_the_three_metrics() -> None:
    report = rare_class_scores(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]))
    assert report == {"average_precision": 1.0, "roc_auc": 1.0, "recall_at_precision": 1.0}


@pytest.mark.parametrize(("name", "kind"), [
    ("none", type(None)), ("random under", "RandomUnderSampler"),
    ("random over", "RandomOverSampler"), ("SMOTE", "SMOTE"), ("ADASYN", "ADASYN"),
    ("BorderlineSMOTE", "BorderlineSMOTE"),
])
def test_make_resampler(name, kind) -> None:
    resampler = make_resampler(name, 0.2, seed=1)
    if isinstance(kind, str):
        assert type(resampler).__name__ == kind
        assert resampler.get_params()["sampling_strategy"] == 0.2
        assert resampler.get_params()["random_state"] == 1
    else:
        assert resampler is None


@pytest.mark.parametrize(("name", "ratio", "message"), [
    ("tomek", 0.1, "unknown resampler 'tomek'"),
    ("SMOTE", 0.0, "ratio must lie in"),
    ("SMOTE", 1.5, "ratio must lie in"),
])
def test_make_resampler_refuses(name, ratio, message) -> None:
    with pytest.raises(ValueError, match=message):
        make_resampler(name, ratio)


@pytest.mark.parametrize("name", ["random under", "random over", "SMOTE", "ADASYN",
                                  "BorderlineSMOTE"])
def test_resampling_reaches_the_ratio(split, name) -> None:
    fit, _ = split
    before = resampled_counts(None, fit)
    after = resampled_counts(make_resampler(name, 0.25, seed=0), fit)
    ratio = after["fraud"] / after["legit"]
    assert ratio == pytest.approx(0.25, rel=0.1)
    if name == "random under":
        assert after["fraud"] == before["fraud"] and after["legit"] < before["legit"]
    else:
        assert after["legit"] == before["legit"] and after["fraud"] > before["fraud"]


def test_compare_resamplers_scores_every_resampler_on_untouched_validation(split) -> None:
    fit, validation = split
    table, scores = compare_resamplers(fit, validation, ratio=0.25, params=FAST, seed=0)
    assert set(table["resampler"]) == set(RESAMPLERS)
    assert table["average_precision"].is_monotonic_decreasing
    for name, values in scores.items():
        assert values.shape == (len(validation),), name  # validation rows never resampled
    assert (table["average_precision"] > validation[schema.LABEL].mean() * 3).all()
    none = table.set_index("resampler").loc["none"]
    assert none["fit_frauds"] == fit[schema.LABEL].sum()
    assert none["fit_legit"] == (fit[schema.LABEL] == 0).sum()


def test_compare_resamplers_is_reproducible(split) -> None:
    fit, validation = split
    first, _ = compare_resamplers(fit, validation, ["SMOTE"], ratio=0.25, params=FAST, seed=5)
    second, _ = compare_resamplers(fit, validation, ["SMOTE"], ratio=0.25, params=FAST, seed=5)
    assert first["average_precision"].iloc[0] == second["average_precision"].iloc[0]


def test_variant_counts_has_a_balanced_variant_of_every_resampler(split) -> None:
    from tickml.modeling.resampling import BALANCED_RATIO, variant_counts

    fit, _ = split
    table = variant_counts(fit, ratios=(0.25, BALANCED_RATIO), seed=0).set_index("variant")
    frauds, legit = int(fit[schema.LABEL].sum()), int((fit[schema.LABEL] == 0).sum())
    assert table.loc["none", ["legit", "fraud"]].tolist() == [legit, frauds]
    assert len(table) == 1 + 2 * (len(RESAMPLERS) - 1)  # "none" once, the others twice
    for name in ("random over", "SMOTE", "BorderlineSMOTE"):
        assert table.loc[f"{name} 1:1", "fraud"] == legit  # fully balanced
        assert table.loc[f"{name} 1:4", "fraud"] == pytest.approx(legit / 4, rel=0.01)
    assert table.loc["random under 1:1", "legit"] == frauds
    assert table.loc["random under 1:1", "fraud_share"] == 0.5


def test_plot_variant_counts_draws_one_count_plot_per_variant(split) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tickml.modeling.resampling import plot_variant_counts, variant_counts

    fit, _ = split
    table = variant_counts(fit, ["none", "random under", "SMOTE"], ratios=(0.25, 1.0))
    fig = plot_variant_counts(table, columns=3)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title().split(" (")[0] for ax in shown] == table["variant"].tolist()
    assert all(len(ax.patches) == 2 for ax in shown)  # a legit and a fraud bar
    plt.close(fig)
