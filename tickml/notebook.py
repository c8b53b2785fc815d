"""Small helpers the notebooks share: sample mode, display-safe paths, plot defaults.

The notebooks run on the full dataset by default. `TICKML_NOTEBOOK_SAMPLE=1` (or
`sample=True` where a helper takes it) selects a small, quick configuration so CI can
execute all six in a few minutes; each notebook says which mode produced its outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from tickml import schema
from tickml.config import ENV_PREFIX, Settings

SAMPLE_ENV = f"{ENV_PREFIX}NOTEBOOK_SAMPLE"  # Settings.notebook_sample
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})
#: Largest training split a notebook uses in sample mode (a bigger prepared dataset is
#: subsampled, keeping its fraud share and its time order).
SAMPLE_MAX_ROWS = 40_000
T = TypeVar("T")


def sample_mode(environ: Mapping[str, str] | None = None) -> bool:
    """True when `TICKML_NOTEBOOK_SAMPLE` asks for the small, quick configuration.

    Raises:
        ValueError: the variable holds something other than a yes/no word.
    """
    raw = Settings.from_env(environ).notebook_sample.strip().lower()
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise ValueError(f"{SAMPLE_ENV}={raw!r}: use 1/true/yes or 0/false/no")


@dataclass(frozen=True)
class Mode:
    """The run mode of a notebook: full, or a small sample for CI."""

    sample: bool

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Mode:
        return cls(sample_mode(environ))

    @property
    def name(self) -> str:
        return "sample" if self.sample else "full"

    def pick(self, full: T, sample: T) -> T:
        """`full` in full mode, `sample` in sample mode."""
        return sample if self.sample else full

    def limit(self, frame: pd.DataFrame, max_rows: int = SAMPLE_MAX_ROWS,
              seed: int = 42) -> pd.DataFrame:
        """The frame itself in full mode; in sample mode at most `max_rows` of it."""
        return limit_rows(frame, max_rows, seed) if self.sample else frame


def limit_rows(frame: pd.DataFrame, max_rows: int, seed: int = 42) -> pd.DataFrame:
    """At most `max_rows` rows, drawn per class so the fraud share stays the same.

    The rows keep their original order (time order for a prepared split), so a time
    split of the result is still a split in time.
    """
    if max_rows < 2:
        raise ValueError(f"max_rows must be at least 2, got {max_rows}")
    if len(frame) <= max_rows:
        return frame
    rng = np.random.default_rng(seed)
    share = max_rows / len(frame)
    keep = []
    for _, positions in frame.groupby(schema.LABEL).indices.items():
        n = max(1, round(len(positions) * share))
        keep.append(rng.choice(positions, size=min(n, len(positions)), replace=False))
    chosen = np.sort(np.concatenate(keep))
    return frame.iloc[chosen].reset_index(drop=True)


def display_path(path: Path | str, root: Path | str) -> str:
    """`path` relative to `root` when it lies inside it, else just its file name.

    Notebooks print paths through this so committed outputs never show the folders
    of the machine they ran on.
    """
    path, root = Path(path), Path(root)
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return f"…/{path.name}"


def setup_plots() -> None:
    """Plot defaults for the notebooks: readable size, light grid, compact PNGs."""
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "figure.figsize": (8, 4.5),
        "figure.dpi": 80,
        "savefig.dpi": 80,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
    })


def separation_table(frame: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """How well each column alone separates frauds from legitimate rows.

    Returns:
        One row per column, most separating first: the medians per class and the
        univariate ROC-AUC folded around 0.5 (`separation`, 0.5 = useless, 1 = a
        perfect single-feature rule in one direction or the other).
    """
    from sklearn.metrics import roc_auc_score

    columns = list(schema.FEATURES) if columns is None else columns
    y = frame[schema.LABEL].to_numpy()
    if len(np.unique(y)) < 2:
        raise ValueError("the frame needs both classes")
    rows = []
    for column in columns:
        values = frame[column].to_numpy()
        auc = float(roc_auc_score(y, values))
        rows.append({"feature": column, "median_legit": float(np.median(values[y == 0])),
                     "median_fraud": float(np.median(values[y == 1])),
                     "separation": max(auc, 1 - auc),
                     "direction": "higher in frauds" if auc >= 0.5 else "lower in frauds"})
    table = pd.DataFrame(rows).sort_values("separation", ascending=False)
    return table.reset_index(drop=True)


def running_precision_recall(y_true: np.ndarray, flagged: np.ndarray) -> pd.DataFrame:
    """Precision and recall of the verdicts so far, after each scored transaction.

    Args:
        y_true: ground truth (1 = fraud), in arrival order.
        flagged: the model's verdicts (1 = flagged as fraud), in the same order.

    Returns:
        Columns `seen`, `precision` and `recall` (NaN while undefined: nothing
        flagged yet, or no fraud seen yet).
    """
    y_true = np.asarray(y_true).astype(int)
    flagged = np.asarray(flagged).astype(int)
    if y_true.shape != flagged.shape:
        raise ValueError(f"{y_true.shape} labels but {flagged.shape} verdicts")
    tp = np.cumsum(y_true & flagged)
    flagged_so_far = np.cumsum(flagged)
    frauds_so_far = np.cumsum(y_true)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(flagged_so_far > 0, tp / flagged_so_far, np.nan)
        recall = np.where(frauds_so_far > 0, tp / frauds_so_far, np.nan)
    return pd.DataFrame({"seen": np.arange(1, len(y_true) + 1), "precision": precision,
                         "recall": recall})
