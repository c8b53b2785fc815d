"""The served model: a registry version, verified, with its compiled scorer when it can.

Everything that loads a model to serve or measure it goes through here: the API's
workers (`tickml.api.holder`), the MLServer runtime (`tickml.serving.mlserver`), the
benchmarks and the notebooks. This module composes the two parts that know nothing of
each other:

- the registry (`tickml.registry`) stores and reads: the pointer, the sidecar, the
  artifact's bytes checked against their sha256 through no-follow opens, and the
  compiled scorer's bytes under the same rules;
- modeling (`tickml.modeling.fastpath`) compiles a features → LightGBM pipeline and
  checks the compiled form against it.

`load` unpickles the verified artifact, then picks the compiled scorer that may stand
in for the pipeline: the one recorded beside it when it is the file recorded, was
compiled from this very booster by this compiler on this platform, and still scores as
the pipeline does; otherwise one built now (stored beside the artifact when `models/`
is writable, under a lock so that concurrent loaders build it once). One that is
changed, foreign or unequal is never used: the pipeline serves, and `LoadedModel.scoring`
says which path serves and why (`GET /model` shows it).

Imports run one way: registry ← modeling ← loader ← the API, the MLServer runtime, the
benchmarks, the command line. Training registers through `tickml.modeling.register`
and never imports this module.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tickml import schema
from tickml.modeling import fastpath
from tickml.modeling.fastpath import FastScorer
from tickml.registry import FASTPATH, FASTPATH_KEY, ModelRef, ModelRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A verified, unpickled model with its metadata: it scores, checks and names itself.

    `fast` is the compiled scorer that serves in the pipeline's place when there is one
    (checked equal to it); `scoring` says which path serves, and why (`/model` shows it).
    """

    pipeline: Any
    metadata: dict[str, Any]
    fast: FastScorer | None = None
    scoring: dict[str, Any] = field(default_factory=lambda: {
        "path": "pipeline", "reason": "loaded without the registry's compiled scorer"})

    @property
    def ref(self) -> ModelRef:
        return ModelRef(self.metadata["name"], int(self.metadata["version"]))

    @property
    def threshold(self) -> float:
        return float(self.metadata["threshold"])

    def predict_proba(self, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Fraud probability per row (a frame by column name, or a schema-order matrix).

        Returns a float64 array, empty for no rows.
        """
        matrix = schema.as_feature_matrix(rows)
        if len(matrix) == 0:
            return np.empty(0)
        if self.fast is not None:
            return self.fast.predict_matrix(matrix)
        return self.pipeline_proba(matrix)

    def pipeline_proba(self, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Fraud probability per row through the pipeline itself, never the compiled form."""
        matrix = schema.as_feature_matrix(rows)
        if len(matrix) == 0:
            return np.empty(0)
        return np.asarray(self.pipeline.predict_proba(matrix)[:, 1], dtype=np.float64)

    def check(self) -> None:
        """Raise ValueError unless the model takes schema rows and returns probabilities."""
        columns = self.metadata.get("columns")
        if columns != list(schema.FEATURES):
            raise ValueError(f"its columns {columns} are not the schema's {list(schema.FEATURES)}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"its threshold {self.threshold} is not a probability")
        probabilities = self.predict_proba(np.zeros((2, len(schema.FEATURES))))
        if probabilities.shape != (2,) or not np.all((probabilities >= 0) & (probabilities <= 1)):
            raise ValueError(f"it returned {probabilities!r} for two rows, not two probabilities")

    def summary(self) -> dict[str, Any]:
        """Name, version and threshold: what every prediction response names."""
        ref = self.ref
        return {"name": ref.name, "version": ref.version, "threshold": self.threshold}


def load(registry: ModelRegistry, ref: ModelRef, *,
         verification_split: Path | None = None) -> LoadedModel:
    """`ref` from `registry`, ready to serve: verified, unpickled, compiled when it can be.

    Args:
        registry: where the model is stored.
        ref: the version to load.
        verification_split: the prepared test split (a parquet file) that checks a
            compiled scorer built at load; without it, or when it cannot be read,
            `fastpath.deterministic_rows()` check it.

    Raises:
        RegistryError: the registry refuses the version (see `ModelRegistry.load_pipeline`);
            a compiled scorer that cannot serve is never an error, only a reason.
    """
    stored = registry.load_pipeline(ref)
    fast, scoring = _fast_scorer(registry, ref, stored.metadata, stored.pipeline,
                                 verification_split)
    return LoadedModel(stored.pipeline, stored.metadata, fast, scoring)


def load_production(registry: ModelRegistry, *,
                    verification_split: Path | None = None) -> LoadedModel:
    """The production model of `registry`, as `load` gives it.

    Raises:
        RegistryError: nothing is promoted (the message says how to promote), or the
            pointer or the version is refused.
    """
    return load(registry, registry.require_production(), verification_split=verification_split)


def _fast_scorer(registry: ModelRegistry, ref: ModelRef, metadata: dict[str, Any],
                 pipeline: Any, verification_split: Path | None
                 ) -> tuple[FastScorer | None, dict[str, Any]]:
    """The compiled scorer that may serve `ref`, and what `LoadedModel.scoring` says.

    A recorded `fastpath.zip` is read like the artifact and checked again on the
    deterministic rows; any refusal leaves the pipeline serving, with the reason.
    Without a recorded file (an older model, one registered without it, or compilation
    failed at register) the scorer is built here.
    """
    if fastpath.lightgbm_booster(pipeline) is None:
        return None, {"path": "pipeline", "reason": fastpath.no_form_reason(pipeline)}
    record = metadata.get(FASTPATH_KEY)
    if isinstance(record, dict) and "file" in record:
        try:
            return _saved_fast_scorer(registry, ref, record, pipeline, metadata)
        except FileNotFoundError:
            log.warning("%s: %s is missing; building the compiled scorer", ref, FASTPATH)
        except Exception as exc:  # changed, foreign or unequal: never trusted
            reason = f"{FASTPATH} refused: {exc}"
            log.error("%s: %s; the pipeline serves", ref, reason)
            return None, {"path": "pipeline", "reason": reason}
    return _built_fast_scorer(registry, ref, pipeline, float(metadata["threshold"]),
                              verification_split)


def _saved_fast_scorer(registry: ModelRegistry, ref: ModelRef, record: dict[str, Any],
                       pipeline: Any, metadata: dict[str, Any]
                       ) -> tuple[FastScorer, dict[str, Any]]:
    scorer = FastScorer.from_bytes(registry.read_fastpath(ref, record))
    if not scorer.built_from(pipeline):
        raise fastpath.FastPathIntegrityError("it was compiled from another booster")
    check = scorer.verify(pipeline, fastpath.deterministic_rows(), metadata["threshold"])
    recorded = record.get("verification", {})
    return scorer, {**scorer.describe(), "source": FASTPATH,
                    "max_abs_difference": recorded.get("max_abs_difference"),
                    "rows_verified": recorded.get("rows"),
                    "load_check": {"rows": check.rows,
                                   "max_abs_difference": check.max_abs_difference}}


def _built_fast_scorer(registry: ModelRegistry, ref: ModelRef, pipeline: Any, threshold: float,
                       verification_split: Path | None
                       ) -> tuple[FastScorer | None, dict[str, Any]]:
    """Build, check and use the compiled scorer; store it when the folder is writable.

    The registry's lock on the version folder makes concurrent loaders (gunicorn
    workers) take turns: the first builds and stores, the others load its file.
    """
    with registry.fastpath_lock(ref) as locked:
        if not locked:  # a read-only models folder (the API's mount): build in memory
            return _build_in_memory(pipeline, threshold, verification_split)
        record = registry.metadata(ref).get(FASTPATH_KEY)
        if isinstance(record, dict) and "file" in record:  # another loader stored it
            try:
                return _saved_fast_scorer(registry, ref, record, pipeline,
                                          registry.metadata(ref))
            except Exception as exc:  # rebuilt from the pipeline below
                log.warning("%s: the stored %s is refused (%s); rebuilding", ref, FASTPATH, exc)
        scorer, scoring = _build_in_memory(pipeline, threshold, verification_split)
        if scorer is not None:
            _store(registry, ref, scorer, scoring)
        return scorer, scoring


def _build_in_memory(pipeline: Any, threshold: float, verification_split: Path | None
                     ) -> tuple[FastScorer | None, dict[str, Any]]:
    scorer, record = fastpath.compile_checked(pipeline, _verification_rows(verification_split),
                                              threshold)
    if scorer is None:
        return None, record
    verification = record["verification"]
    return scorer, {**scorer.describe(), "source": "built at load",
                    "max_abs_difference": verification["max_abs_difference"],
                    "rows_verified": verification["rows"]}


def _store(registry: ModelRegistry, ref: ModelRef, scorer: FastScorer,
           scoring: dict[str, Any]) -> None:
    """Save `scorer` beside the artifact and record it; a failure only costs the cache."""
    try:
        registry.store_fastpath(ref, scorer.to_bytes(), {
            **scorer.describe(), "libraries": scorer.manifest["libraries"],
            "verification": {"rows": scoring["rows_verified"],
                             "max_abs_difference": scoring["max_abs_difference"]}})
        scoring["source"] = f"built at load, cached as {FASTPATH}"
    except OSError as exc:
        log.warning("%s: the compiled scorer serves but is not cached: %s", ref, exc)


def _verification_rows(verification_split: Path | None) -> np.ndarray:
    """The test split when it can be read, else the deterministic rows."""
    if verification_split is not None:
        try:
            return schema.as_feature_matrix(pd.read_parquet(verification_split))
        except (OSError, ValueError) as exc:
            log.info("the test split %s cannot be read (%s); checking on the "
                     "deterministic rows", verification_split, exc)
    return fastpath.deterministic_rows()
