"""Exploration the first notebook shows: column types, missing values, which features
a random forest relies on, and a 2-D map of the rows with k-means regions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tickml import schema
from tickml.modeling.features import TransactionFeatures
from tickml.schema import as_feature_matrix


def column_overview(frame: pd.DataFrame) -> pd.DataFrame:
    """Per column: its dtype, how many values are missing, and their share."""
    missing = frame.isna().sum()
    return pd.DataFrame({"dtype": frame.dtypes.astype(str), "missing": missing,
                         "missing_share": missing / max(len(frame), 1)})


def forest_importances(frame: pd.DataFrame, *, n_estimators: int = 100, max_depth: int = 8,
                       seed: int = 42, n_jobs: int = 2) -> pd.Series:
    """Impurity importances of a random forest on the pipeline's features, largest first.

    Unlike the univariate separation, these credit a feature for what it adds in
    combination with the others (and share credit between correlated features).
    """
    from sklearn.ensemble import RandomForestClassifier

    features = TransactionFeatures()
    X = features.fit_transform(as_feature_matrix(frame))
    forest = RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth,
                                    class_weight="balanced_subsample", random_state=seed,
                                    n_jobs=n_jobs)
    forest.fit(X, frame[schema.LABEL].to_numpy())
    importances = pd.Series(forest.feature_importances_,
                            index=features.get_feature_names_out(), name="importance")
    return importances.sort_values(ascending=False)


@dataclass(frozen=True)
class ClusterMap:
    """Rows projected on two principal components, and k-means regions in that plane."""

    points: np.ndarray  # (rows, 2)
    labels: np.ndarray  # the rows' classes
    clusters: np.ndarray  # the rows' k-means cluster
    centers: np.ndarray  # (k, 2)
    explained: np.ndarray  # variance share of the two components
    kmeans: Any


def pca_kmeans(frame: pd.DataFrame, *, k: int = 4, seed: int = 42) -> ClusterMap:
    """Standardise the pipeline's features, project them on 2 components, run k-means there."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    X = TransactionFeatures().fit_transform(as_feature_matrix(frame))
    pca = PCA(n_components=2, random_state=seed)
    points = pca.fit_transform(StandardScaler().fit_transform(X))
    kmeans = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(points)
    return ClusterMap(points, frame[schema.LABEL].to_numpy(), kmeans.labels_,
                      kmeans.cluster_centers_, pca.explained_variance_ratio_, kmeans)


def plot_cluster_map(cmap: ClusterMap, ax: Any = None, *, legit_points: int = 5_000,
                     seed: int = 42) -> Any:
    """K-means regions as coloured areas, a sample of legitimate rows and every fraud."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    low, high = np.percentile(cmap.points, [0.5, 99.5], axis=0)
    pad = (high - low) * 0.05
    xx, yy = np.meshgrid(np.linspace(low[0] - pad[0], high[0] + pad[0], 300),
                         np.linspace(low[1] - pad[1], high[1] + pad[1], 300))
    regions = cmap.kmeans.predict(np.c_[xx.ravel(), yy.ravel()]).reshape(xx.shape)
    ax.contourf(xx, yy, regions, levels=np.arange(len(cmap.centers) + 1) - 0.5,
                cmap="Pastel2", alpha=0.8)
    legit = np.flatnonzero(cmap.labels == 0)
    rng = np.random.default_rng(seed)
    shown = rng.choice(legit, size=min(legit_points, legit.size), replace=False)
    ax.scatter(*cmap.points[shown].T, s=2, alpha=0.3, color="tab:blue", label="legitimate")
    ax.scatter(*cmap.points[cmap.labels == 1].T, s=10, color="crimson", label="fraud")
    ax.scatter(*cmap.centers.T, marker="x", s=80, color="black", label="k-means centres")
    ax.set(xlim=(xx.min(), xx.max()), ylim=(yy.min(), yy.max()),
           xlabel=f"PC1 ({cmap.explained[0]:.0%} of the variance)",
           ylabel=f"PC2 ({cmap.explained[1]:.0%})")
    ax.legend(loc="upper right", markerscale=2, fontsize=8)
    return ax


def fraud_share_by_cluster(cmap: ClusterMap) -> pd.DataFrame:
    """Rows, frauds and fraud share of each k-means region."""
    frame = pd.DataFrame({"cluster": cmap.clusters, "fraud": cmap.labels})
    table = frame.groupby("cluster")["fraud"].agg(rows="size", frauds="sum")
    table["fraud_share"] = table["frauds"] / table["rows"]
    return table
