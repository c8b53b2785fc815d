"""Threshold choice and the metrics that matter for a rare positive class."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    roc_auc_score,
)

#: Precision at which the comparison reports recall: of the transactions flagged,
#: at least this share must be frauds for the alert queue to be worth reading.
DEFAULT_PRECISION = 0.8


def best_f1_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold with the highest F1 on (validation) data."""
    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    f1 = _f1(precision[:-1], recall[:-1])
    return float(thresholds[int(np.argmax(f1))])


def precision_target_threshold(y_true: np.ndarray, scores: np.ndarray, target: float) -> float:
    """The lowest threshold whose precision reaches `target` (so recall is highest).

    Raises:
        ValueError: no threshold reaches the target precision.
    """
    precision, _, thresholds = precision_recall_curve(y_true, scores)
    reaching = np.flatnonzero(precision[:-1] >= target)
    if reaching.size == 0:
        raise ValueError(f"no threshold reaches precision {target:.2f} on this data")
    return float(thresholds[reaching[0]])


def _f1(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    total = precision + recall
    return np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)


def classification_report(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """AUPRC, ROC-AUC, and precision/recall/F1 and the confusion matrix at `threshold`."""
    y_true = np.asarray(y_true).astype(int)
    predicted = (np.asarray(scores) >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y_true, predicted, labels=[0, 1]).ravel()
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "average_precision": float(average_precision_score(y_true, scores)),
        "roc_auc": float(roc_auc_score(y_true, scores)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "threshold": float(threshold),
        "base_rate": float(y_true.mean()),
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
        "rows": int(y_true.size),
    }


def recall_at_precision(y_true: np.ndarray, scores: np.ndarray, precision: float) -> float:
    """The highest recall any threshold reaches while keeping at least `precision`.

    0.0 when no threshold reaches that precision.
    """
    precisions, recalls, _ = precision_recall_curve(y_true, scores)
    reaching = precisions[:-1] >= precision
    return float(recalls[:-1][reaching].max()) if reaching.any() else 0.0


def rare_class_scores(y_true: np.ndarray, scores: np.ndarray,
                      precision: float = DEFAULT_PRECISION) -> dict[str, float]:
    """The threshold-free metrics that matter for a rare class.

    Returns:
        `average_precision` (area under the precision-recall curve; its baseline is
        the fraud share, not 0.5), `roc_auc` (for reference: it looks good for almost
        any model when negatives dominate) and `recall_at_precision`.
    """
    y_true = np.asarray(y_true).astype(int)
    return {
        "average_precision": float(average_precision_score(y_true, scores)),
        "roc_auc": float(roc_auc_score(y_true, scores)),
        "recall_at_precision": recall_at_precision(y_true, scores, precision),
    }


def fit_and_score(pipeline: Any, fit: tuple[Any, np.ndarray], validation: tuple[Any, np.ndarray],
                  precision: float = DEFAULT_PRECISION) -> tuple[np.ndarray, dict[str, float]]:
    """Fit `pipeline` on `fit` (features, labels) and score it on `validation`.

    Returns:
        The validation probabilities, and `rare_class_scores` plus `fit_seconds`.
    """
    started = time.perf_counter()
    pipeline.fit(*fit)
    seconds = time.perf_counter() - started
    X_val, y_val = validation
    scores = pipeline.predict_proba(X_val)[:, 1]
    return scores, {**rare_class_scores(y_val, scores, precision), "fit_seconds": seconds}


def plot_precision_recall(
    y_true: np.ndarray, scores: np.ndarray, threshold: float, path: Path, title: str = ""
) -> Path:
    """Save the precision-recall curve, with the operating point marked, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    precision, recall, _ = precision_recall_curve(y_true, scores)
    report = classification_report(y_true, scores, threshold)
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    ax.step(recall, precision, where="post", label=f"AUPRC {report['average_precision']:.3f}")
    ax.axhline(report["base_rate"], color="grey", linestyle=":", label="fraud base rate")
    ax.plot(report["recall"], report["precision"], "o", color="crimson",
            label=f"threshold {threshold:.3f}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.01),
           title=title or "Precision-recall on the test split")
    ax.legend(loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
