"""The first notebook's views: types and gaps, forest importances, the PCA/k-means map."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tickml import schema
from tickml.data.synthetic import generate_transactions
from tickml.modeling import explore
from tickml.notebook import separation_table


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate_transactions(4_000, seed=2, fraud_rate=0.03)


def test_column_overview_counts_missing_values(frame) -> None:
    holed = frame.copy()
    holed.loc[holed.index[:7], "V3"] = np.nan
    overview = explore.column_overview(holed)
    assert overview.loc["V3", "missing"] == 7
    assert overview.loc["V3", "missing_share"] == pytest.approx(7 / len(holed))
    assert overview["missing"].drop("V3").eq(0).all()
    assert overview.loc[schema.LABEL, "dtype"].startswith("int")


def test_forest_importances_rank_the_features_that_separate(frame) -> None:
    importances = explore.forest_importances(frame, n_estimators=20, seed=0)
    assert importances.is_monotonic_decreasing
    assert importances.sum() == pytest.approx(1.0)
    assert {"log_amount", "hour_sin"} <= set(importances.index)
    strongest = set(separation_table(frame)["feature"].head(5))
    assert strongest & set(importances.index[:5])


def test_pca_kmeans_maps_every_row_to_a_region(frame) -> None:
    cmap = explore.pca_kmeans(frame, k=3, seed=0)
    assert cmap.points.shape == (len(frame), 2)
    assert set(cmap.clusters) == {0, 1, 2} and cmap.centers.shape == (3, 2)
    assert 0 < cmap.explained.sum() < 1
    table = explore.fraud_share_by_cluster(cmap)
    assert table["rows"].sum() == len(frame)
    assert table["frauds"].sum() == frame[schema.LABEL].sum()


def test_the_cluster_map_draws_regions_and_both_classes(frame) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cmap = explore.pca_kmeans(frame, k=3, seed=0)
    ax = explore.plot_cluster_map(cmap, legit_points=500)
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["legitimate", "fraud", "k-means centres"]
    plt.close("all")
