"""Registering a trained model: its artifact, and its compiled scorer beside it.

Training registers every model it keeps (`tickml train`, the zoo, the ensembles), and a
model registered with the default features → LightGBM pipeline is saved with its
compiled scorer (`fastpath.zip`), already checked equal to the pipeline, so that the
first load of it compiles nothing.

Why this lives here. Compiling and checking are modeling's (`fastpath.py`); storing is
the registry's, which imports nothing of `tickml.modeling` so that reading sidecars and
verified bytes never drags LightGBM and lleaves in, and so that the two no longer need
each other. Training already depends on the registry to store what it fits, so the one
place where both meet on the way in is here, in modeling. The served model is the
other meeting point, on the way out: `tickml.loader`, one layer above both, which
training never imports. The imports run one way only: registry ← modeling ← loader.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tickml import schema
from tickml.modeling import fastpath
from tickml.registry import ModelRef, ModelRegistry


def register_model(
    registry: ModelRegistry,
    pipeline: Any,
    *,
    name: str,
    threshold: float,
    metrics: dict[str, Any],
    params: dict[str, Any],
    seed: int,
    data_sha256: str,
    extra: dict[str, Any] | None = None,
    verification_rows: pd.DataFrame | np.ndarray | None = None,
) -> ModelRef:
    """Save `pipeline` as the next version of `name`, with its compiled scorer when it has one.

    The scorer is built, checked against the pipeline on `verification_rows` (default:
    `fastpath.deterministic_rows()`; `tickml train` passes the whole test split) and
    saved as `fastpath.zip` beside the artifact; the sidecar records its sha256, its
    compiler and the comparison, or why the pipeline serves instead.

    Args:
        registry: where to save it.
        pipeline, name, threshold, metrics, params, seed, data_sha256, extra: as
            `ModelRegistry.register` takes them.
        verification_rows: schema rows (a frame or a schema-order matrix) the compiled
            scorer is checked on.

    Returns:
        The new version's reference (unpromoted).

    Raises:
        RegistryError: as `ModelRegistry.register` does.
    """
    rows = (fastpath.deterministic_rows() if verification_rows is None
            else schema.as_feature_matrix(verification_rows))
    scorer, record = fastpath.compile_checked(pipeline, rows, threshold)
    return registry.register(
        pipeline, name=name, threshold=threshold, metrics=metrics, params=params, seed=seed,
        data_sha256=data_sha256, extra=extra,
        fastpath=None if scorer is None else scorer.to_bytes(), fastpath_record=record)
