"""The model registry: versioned artifacts in `models/` and the production pointer.

Layout::

    models/
      production.json              {"name": ..., "version": ..., "promoted_at": ...}
      <name>/<version>/model.joblib
      <name>/<version>/metadata.json   (columns, threshold, metrics, sha256, ...)
      <name>/<version>/*.png           (plots saved with the model)

joblib runs code while it unpickles, so a file is only ever loaded after its
sha256 matches the one recorded when it was saved. Notebooks, the API and the
CLI go through this module; nothing else opens model files.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from tickml import schema
from tickml.files import sha256_of, write_json_atomically

POINTER = "production.json"
ARTIFACT = "model.joblib"
METADATA = "metadata.json"
TRACKED_LIBRARIES = ("tickml", "scikit-learn", "imbalanced-learn", "lightgbm", "numpy",
                     "pandas", "joblib")


class RegistryError(RuntimeError):
    """A registry operation failed; the message says what to do."""


class IntegrityError(RegistryError):
    """An artifact does not match its recorded checksum: it is refused unloaded."""


@dataclass(frozen=True)
class ModelRef:
    """A model version in the registry."""

    name: str
    version: int

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


@dataclass(frozen=True)
class LoadedModel:
    """A verified, unpickled model with its metadata: it scores, checks and names itself."""

    pipeline: Any
    metadata: dict[str, Any]

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


class ModelRegistry:
    """Versioned model artifacts under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- writing -------------------------------------------------------------------------
    def register(
        self,
        pipeline: Any,
        *,
        name: str,
        threshold: float,
        metrics: dict[str, Any],
        params: dict[str, Any],
        seed: int,
        data_sha256: str,
        extra: dict[str, Any] | None = None,
    ) -> ModelRef:
        """Save `pipeline` as the next version of `name` and return its reference."""
        _check_name(name)
        directory, version = self._new_version_dir(name)
        artifact = directory / ARTIFACT
        joblib.dump(pipeline, artifact)
        metadata = {
            "name": name,
            "version": version,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "columns": list(schema.FEATURES),
            "label": schema.LABEL,
            "threshold": float(threshold),
            "metrics": metrics,
            "params": params,
            "seed": seed,
            "data_sha256": data_sha256,
            "libraries": library_versions(),
            "artifact": {"file": ARTIFACT, "sha256": sha256_of(artifact),
                         "bytes": artifact.stat().st_size},
            **(extra or {}),
        }
        write_json_atomically(directory / METADATA, metadata)
        return ModelRef(name, version)

    def _new_version_dir(self, name: str) -> tuple[Path, int]:
        parent = self.root / name
        parent.mkdir(parents=True, exist_ok=True)
        version = max((v.version for v in self.versions(name)), default=0) + 1
        while True:  # mkdir is atomic: two writers never get the same version
            try:
                (parent / str(version)).mkdir()
                return parent / str(version), version
            except FileExistsError:
                version += 1

    def promote(self, ref: ModelRef) -> None:
        """Point production at `ref` atomically, after verifying its artifact."""
        self.verify(ref)
        pointer = {"name": ref.name, "version": ref.version,
                   "promoted_at": datetime.now(UTC).isoformat(timespec="seconds")}
        write_json_atomically(self.root / POINTER, pointer)

    # -- reading -------------------------------------------------------------------------
    def path(self, ref: ModelRef) -> Path:
        return self.root / ref.name / str(ref.version)

    def metadata(self, ref: ModelRef) -> dict[str, Any]:
        path = self.path(ref) / METADATA
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise RegistryError(f"{ref} is not in the registry at {self.root}") from None
        except ValueError as exc:
            raise RegistryError(f"{path} is not valid JSON: {exc}") from None

    def versions(self, name: str | None = None) -> list[ModelRef]:
        """Every registered version (with metadata), sorted by name then version."""
        refs = []
        for metadata in sorted(self.root.glob(f"{name or '*'}/*/{METADATA}")):
            if metadata.parent.name.isdigit():
                refs.append(ModelRef(metadata.parent.parent.name, int(metadata.parent.name)))
        return sorted(refs, key=lambda r: (r.name, r.version))

    def production(self) -> ModelRef | None:
        """The version the production pointer names, or None if nothing was promoted."""
        try:
            pointer = json.loads((self.root / POINTER).read_text())
            return ModelRef(str(pointer["name"]), int(pointer["version"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError(f"{self.root / POINTER} is malformed: {exc}") from None

    def verify(self, ref: ModelRef) -> dict[str, Any]:
        """Check the artifact's sha256 against its metadata; return the metadata."""
        metadata = self.metadata(ref)
        artifact = self.path(ref) / metadata["artifact"]["file"]
        if not artifact.is_file():
            raise IntegrityError(f"{ref}: artifact {artifact} is missing")
        actual = sha256_of(artifact)
        if actual != metadata["artifact"]["sha256"]:
            raise IntegrityError(
                f"{ref}: {artifact} has sha256 {actual[:12]}…, but the registry "
                f"recorded {metadata['artifact']['sha256'][:12]}…; the file was changed or "
                "truncated after it was saved, so it is not loaded"
            )
        return metadata

    def load(self, ref: ModelRef) -> LoadedModel:
        """Verify, then unpickle, one version."""
        metadata = self.verify(ref)
        try:
            pipeline = joblib.load(self.path(ref) / metadata["artifact"]["file"])
        except Exception as exc:  # unpickling can fail in many ways; all mean "unusable"
            raise RegistryError(f"{ref}: the artifact could not be loaded: {exc!r}") from exc
        if not hasattr(pipeline, "predict_proba"):
            raise RegistryError(f"{ref}: the artifact is not a classifier (no predict_proba)")
        return LoadedModel(pipeline, metadata)

    def load_production(self) -> LoadedModel:
        """Load the production model, verified."""
        ref = self.production()
        if ref is None:
            raise RegistryError(
                f"no production model in {self.root}: run `tickml train` (it promotes "
                "its model) or `tickml models promote NAME VERSION`"
            )
        return self.load(ref)


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a pickled pipeline depends on."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = package_version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _check_name(name: str) -> None:
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise RegistryError(f"model name {name!r}: use letters, digits, '-', '_' and '.'")
