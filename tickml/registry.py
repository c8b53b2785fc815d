"""The model registry: versioned artifacts in `models/` and the production pointer.

Layout::

    models/
      production.json              {"name": ..., "version": ..., "promoted_at": ...}
      <name>/<version>/model.joblib
      <name>/<version>/metadata.json   (columns, threshold, metrics, sha256, ...)
      <name>/<version>/fastpath.zip    (the compiled scorer, when the pipeline has one)
      <name>/<version>/*.png           (plots saved with the model)

Trust model. Unpickling runs code, so whoever can write `models/` can run code in
every process that loads a model from it: the API workers, the notebooks, the CLI.
Only the people who may run code there should be able to write it. The checks below
stop path tricks and swaps; they do not stop a malicious writer of `models/`, who can
register a harmful pipeline with a correct checksum like any other.

What a load checks before anything is unpickled:

- names match `NAME_PATTERN` (ASCII letters, digits, `-`, `_`, `.`; no leading dot,
  so never `..`) and versions are positive integers, in the pointer and in the sidecar;
- the artifact is always `<name>/<version>/model.joblib`: the sidecar may only name
  that file, and its name and version must equal the pointer's, so what is served is
  what the pointer names;
- below the root nothing is a symbolic link: each folder and file is opened relative to
  its parent's descriptor with `O_NOFOLLOW`, so a symlink anywhere (pointer, sidecar,
  artifact, name or version folder) is refused and no path leaves the root; the root
  itself is the configured directory and may be a link;
- the artifact is a regular file, read once from one open descriptor; those bytes are
  hashed, compared with the sidecar's sha256 and unpickled, so a file swapped or
  rewritten during the load is refused or has no effect.

The compiled scorer (`tickml.modeling.fastpath`) is held to the same rules: its sha256
and size are in the sidecar, it is read once through the same no-follow opens, and the
hashed bytes are the bytes loaded. It is only a faster form of the pipeline: one that is
missing is built at load (and cached when the folder is writable); one that is changed,
built for another platform or compiler, or that scores differently from the pipeline is
never used, and the pipeline serves with the reason in `LoadedModel.scoring`.

Notebooks, the API and the CLI go through this module; nothing else opens model files.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import logging
import os
import platform
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from tickml import schema
from tickml.files import write_bytes_atomically, write_json_atomically
from tickml.modeling import fastpath
from tickml.modeling.fastpath import FastScorer

log = logging.getLogger(__name__)

POINTER = "production.json"
ARTIFACT = "model.joblib"
METADATA = "metadata.json"
FASTPATH = fastpath.ARTEFACT
#: The sidecar's record of the compiled scorer: its file, or why there is none.
FASTPATH_KEY = "fastpath"
_FASTPATH_LOCK = ".fastpath.lock"
TRACKED_LIBRARIES = ("tickml", "scikit-learn", "imbalanced-learn", "lightgbm", "numpy",
                     "pandas", "joblib")
#: A model name: one path component that can never be `.` or `..`.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MAX_JSON_BYTES = 1 << 20  # a pointer or sidecar is a few kB; anything this big is not one
_VERSION_FOLDER = re.compile(r"[1-9][0-9]{0,17}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_RESERVED_KEYS = frozenset({"name", "version", "artifact", FASTPATH_KEY})
_NOFOLLOW = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class RegistryError(RuntimeError):
    """A registry operation failed; the message says what to do."""


class IntegrityError(RegistryError):
    """An artifact does not match its recorded checksum: it is refused unloaded."""


class UnsafeEntryError(RegistryError):
    """A registry entry is a symbolic link or not a plain file or folder: refused unread."""


@dataclass(frozen=True)
class ModelRef:
    """A model version in the registry; the name and version are checked on creation.

    Raises:
        RegistryError: the name does not match `NAME_PATTERN` or the version is not a
            positive integer.
    """

    name: str
    version: int

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_version(self.version)

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def folder(self) -> str:
        """The version folder relative to the registry root, e.g. `fraud-lgbm/1`."""
        return f"{self.name}/{self.version}"


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


class ModelRegistry:
    """Versioned model artifacts under one directory, read without following links."""

    def __init__(self, root: Path, *, verification_split: Path | None = None) -> None:
        """Args:
            root: the registry folder.
            verification_split: the prepared test split (a parquet file) that checks a
                compiled scorer built at load; without it, or when it cannot be read,
                `fastpath.deterministic_rows()` check it.
        """
        self.root = Path(root)
        self.verification_split = verification_split

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
        verification_rows: pd.DataFrame | np.ndarray | None = None,
    ) -> ModelRef:
        """Save `pipeline` as the next version of `name` and return its reference.

        When the pipeline has a compiled form it is built, checked against the pipeline
        on `verification_rows` (default: `fastpath.deterministic_rows()`) and saved as
        `fastpath.zip` beside the artifact; the sidecar records its sha256, compiler and
        the comparison, or why the pipeline serves instead.

        Raises:
            RegistryError: a bad name, `extra` naming a key the registry owns, or the
                name's folder being a symbolic link.
        """
        _check_name(name)
        reserved = _RESERVED_KEYS & set(extra or {})
        if reserved:
            raise RegistryError(f"extra metadata may not set {sorted(reserved)}: the "
                                "registry writes those itself")
        ref = self._new_version(name)
        buffer = io.BytesIO()
        joblib.dump(pipeline, buffer)
        data = buffer.getvalue()
        _write_new_file(self.path(ref) / ARTIFACT, data)
        rows = (fastpath.deterministic_rows() if verification_rows is None
                else schema.as_feature_matrix(verification_rows))
        scorer, record = _compiled(pipeline, rows, threshold)
        if scorer is not None:
            compiled = scorer.to_bytes()
            _write_new_file(self.path(ref) / FASTPATH, compiled)
            record = {**_file_record(FASTPATH, compiled), **record}
        metadata = {
            "name": name,
            "version": ref.version,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "columns": list(schema.FEATURES),
            "label": schema.LABEL,
            "threshold": float(threshold),
            "metrics": metrics,
            "params": params,
            "seed": seed,
            "data_sha256": data_sha256,
            "libraries": library_versions(),
            "artifact": _file_record(ARTIFACT, data),
            FASTPATH_KEY: record,
            **(extra or {}),
        }
        write_json_atomically(self.path(ref) / METADATA, metadata)
        return ref

    def _new_version(self, name: str) -> ModelRef:
        parent = self.root / name
        parent.mkdir(parents=True, exist_ok=True)
        if parent.is_symlink():
            raise UnsafeEntryError(f"{name} in the registry is a symbolic link; the registry "
                                   "follows none, so nothing is saved there")
        version = max((v.version for v in self.versions(name)), default=0) + 1
        while True:  # mkdir is atomic: two writers never get the same version
            try:
                (parent / str(version)).mkdir()
                return ModelRef(name, version)
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
        """The version folder of `ref` (for plots saved next to the model)."""
        return self.root / ref.name / str(ref.version)

    def metadata(self, ref: ModelRef) -> dict[str, Any]:
        """The sidecar of `ref`, checked: its name, version and artifact entry are valid."""
        try:
            data = self._read(ref.name, str(ref.version), METADATA,
                              limit=MAX_JSON_BYTES + 1)
        except FileNotFoundError:
            raise RegistryError(f"{ref} is not in the registry") from None
        return _checked_sidecar(ref, _parse_json(f"{ref.folder}/{METADATA}", data))

    def versions(self, name: str | None = None) -> list[ModelRef]:
        """Every registered version, sorted by name then version.

        Only real folders with valid names and a sidecar count; symbolic links are skipped.
        """
        names = [name] if name is not None else sorted(_plain_entries(self.root, dirs=True))
        refs = []
        for model in names:
            if not NAME_PATTERN.fullmatch(model):
                continue
            for version in _plain_entries(self.root / model, dirs=True):
                if (_VERSION_FOLDER.fullmatch(version)
                        and METADATA in _plain_entries(self.root / model / version, dirs=False)):
                    refs.append(ModelRef(model, int(version)))
        return sorted(refs, key=lambda r: (r.name, r.version))

    def production(self) -> ModelRef | None:
        """The version the production pointer names, or None if nothing was promoted.

        Raises:
            RegistryError: the pointer is a link, not JSON, or names an invalid model.
        """
        try:
            data = self._read(POINTER, limit=MAX_JSON_BYTES + 1)
        except FileNotFoundError:
            return None
        pointer = _parse_json(POINTER, data)
        if not isinstance(pointer, dict):
            raise RegistryError(f"the production pointer {POINTER} is malformed, not a JSON object")
        try:
            return ModelRef(pointer.get("name"), pointer.get("version"))
        except RegistryError as exc:
            raise RegistryError(f"the production pointer {POINTER} is refused: {exc}") from None

    def verify(self, ref: ModelRef) -> dict[str, Any]:
        """Check the artifact's sha256 against its metadata; return the metadata."""
        return self._verified_artifact(ref)[0]

    def load(self, ref: ModelRef) -> LoadedModel:
        """Read the artifact once, verify those bytes, then unpickle the same bytes."""
        metadata, data = self._verified_artifact(ref)
        try:
            pipeline = joblib.load(io.BytesIO(data))
        except Exception as exc:  # unpickling can fail in many ways; all mean "unusable"
            raise RegistryError(f"{ref}: the artifact could not be loaded: {exc!r}") from exc
        if not hasattr(pipeline, "predict_proba"):
            raise RegistryError(f"{ref}: the artifact is not a classifier (no predict_proba)")
        fast, scoring = self._fast_scorer(ref, metadata, pipeline)
        return LoadedModel(pipeline, metadata, fast, scoring)

    def load_production(self) -> LoadedModel:
        """Load the production model, verified."""
        ref = self.production()
        if ref is None:
            raise RegistryError(
                f"no production model in {self.root}: run `tickml train` (it promotes "
                "its model) or `tickml models promote NAME VERSION`"
            )
        return self.load(ref)

    # -- the compiled scorer ---------------------------------------------------------------
    def _fast_scorer(self, ref: ModelRef, metadata: dict[str, Any],
                     pipeline: Any) -> tuple[FastScorer | None, dict[str, Any]]:
        """The compiled scorer that may serve `ref`, and what `LoadedModel.scoring` says.

        A recorded `fastpath.zip` is read like the artifact and checked again on the
        deterministic rows; any refusal leaves the pipeline serving, with the reason.
        Without a recorded file (an older model, or compilation failed at register) the
        scorer is built here.
        """
        if fastpath.lightgbm_booster(pipeline) is None:
            return None, {"path": "pipeline", "reason": fastpath.no_form_reason(pipeline)}
        record = metadata.get(FASTPATH_KEY)
        if isinstance(record, dict) and "file" in record:
            try:
                return self._saved_fast_scorer(ref, record, pipeline, metadata)
            except FileNotFoundError:
                log.warning("%s: %s is missing; building the compiled scorer", ref, FASTPATH)
            except Exception as exc:  # changed, foreign or unequal: never trusted
                reason = f"{FASTPATH} refused: {exc}"
                log.error("%s: %s; the pipeline serves", ref, reason)
                return None, {"path": "pipeline", "reason": reason}
        return self._built_fast_scorer(ref, pipeline, float(metadata["threshold"]))

    def _saved_fast_scorer(self, ref: ModelRef, record: dict[str, Any], pipeline: Any,
                           metadata: dict[str, Any]) -> tuple[FastScorer, dict[str, Any]]:
        if record.get("file") != FASTPATH:
            raise RegistryError(f"the sidecar names {record.get('file')!r}; only {FASTPATH} "
                                "in the version folder is ever loaded")
        scorer = FastScorer.from_bytes(self._read_recorded(ref, record))
        if not scorer.built_from(pipeline):
            raise fastpath.FastPathIntegrityError("it was compiled from another booster")
        check = scorer.verify(pipeline, fastpath.deterministic_rows(), metadata["threshold"])
        recorded = record.get("verification", {})
        return scorer, {**scorer.describe(), "source": FASTPATH,
                        "max_abs_difference": recorded.get("max_abs_difference"),
                        "rows_verified": recorded.get("rows"),
                        "load_check": {"rows": check.rows,
                                       "max_abs_difference": check.max_abs_difference}}

    def _built_fast_scorer(self, ref: ModelRef, pipeline: Any,
                           threshold: float) -> tuple[FastScorer | None, dict[str, Any]]:
        """Build, check and use the compiled scorer; cache it when the folder is writable.

        A lock file in the version folder makes concurrent loaders (gunicorn workers)
        take turns: the first builds and caches, the others load its file.
        """
        try:
            lock = os.open(self.path(ref) / _FASTPATH_LOCK,
                           os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                           0o644)
        except OSError:  # a read-only models folder (the API's mount): build in memory
            return self._build_in_memory(pipeline, threshold)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            record = self.metadata(ref).get(FASTPATH_KEY)
            if isinstance(record, dict) and "file" in record:  # another loader cached it
                try:
                    return self._saved_fast_scorer(ref, record, pipeline, self.metadata(ref))
                except Exception as exc:  # rebuilt from the pipeline below
                    log.warning("%s: the cached %s is refused (%s); rebuilding", ref,
                                FASTPATH, exc)
            scorer, scoring = self._build_in_memory(pipeline, threshold)
            if scorer is not None:
                self._cache(ref, scorer, scoring)
            return scorer, scoring
        finally:
            os.close(lock)

    def _build_in_memory(self, pipeline: Any,
                         threshold: float) -> tuple[FastScorer | None, dict[str, Any]]:
        scorer, record = _compiled(pipeline, self._verification_rows(), threshold)
        if scorer is None:
            return None, record
        verification = record["verification"]
        return scorer, {**scorer.describe(), "source": "built at load",
                        "max_abs_difference": verification["max_abs_difference"],
                        "rows_verified": verification["rows"]}

    def _cache(self, ref: ModelRef, scorer: FastScorer, scoring: dict[str, Any]) -> None:
        """Save `scorer` beside the artifact and record it; a failure only costs the cache."""
        try:
            data = scorer.to_bytes()
            write_bytes_atomically(self.path(ref) / FASTPATH, data)
            metadata = self.metadata(ref)
            metadata[FASTPATH_KEY] = {
                **_file_record(FASTPATH, data), **scorer.describe(),
                "libraries": scorer.manifest["libraries"],
                "verification": {"rows": scoring["rows_verified"],
                                 "max_abs_difference": scoring["max_abs_difference"]}}
            write_json_atomically(self.path(ref) / METADATA, metadata)
            scoring["source"] = f"built at load, cached as {FASTPATH}"
        except OSError as exc:
            log.warning("%s: the compiled scorer serves but is not cached: %s", ref, exc)

    def _verification_rows(self) -> np.ndarray:
        """The test split when it can be read, else the deterministic rows."""
        if self.verification_split is not None:
            try:
                return schema.as_feature_matrix(pd.read_parquet(self.verification_split))
            except (OSError, ValueError) as exc:
                log.info("the test split %s cannot be read (%s); checking on the "
                         "deterministic rows", self.verification_split, exc)
        return fastpath.deterministic_rows()

    # -- verified reads -------------------------------------------------------------------
    def _verified_artifact(self, ref: ModelRef) -> tuple[dict[str, Any], bytes]:
        metadata = self.metadata(ref)
        try:
            return metadata, self._read_recorded(ref, metadata["artifact"])
        except FileNotFoundError:
            raise IntegrityError(f"{ref}: artifact {ref.folder}/{ARTIFACT} is missing") from None

    def _read_recorded(self, ref: ModelRef, recorded: dict[str, Any]) -> bytes:
        """The file a sidecar entry names, read once and checked against its size and sha256.

        Raises:
            FileNotFoundError: the file does not exist.
            IntegrityError: its size or sha256 differs from the record.
            UnsafeEntryError: it or a folder on the way is a link or not a plain entry.
        """
        where = f"{ref.folder}/{recorded['file']}"
        size, digest = recorded.get("bytes"), recorded.get("sha256")
        if not isinstance(size, int) or not isinstance(digest, str):
            raise RegistryError(f"{where}: the sidecar records no valid size and sha256")
        # One byte past the recorded size is enough to see that the file grew.
        data = self._read(ref.name, str(ref.version), recorded["file"], limit=size + 1)
        if len(data) != size:
            found = f"over {size:,} bytes" if len(data) > size else f"{len(data):,} bytes"
            difference = f"it has {found}, the registry recorded {size:,}"
        elif (actual := hashlib.sha256(data).hexdigest()) != digest:
            difference = (f"it has sha256 {actual[:12]}…, the registry recorded "
                          f"{digest[:12]}…")
        else:
            return data
        raise IntegrityError(f"{ref}: {where} does not match its recorded size and sha256 "
                             f"({difference}); the file was changed or truncated after it "
                             "was saved, so it is not loaded")

    def _read(self, *parts: str, limit: int) -> bytes:
        """Up to `limit` bytes of the regular file `root/parts...`, following no link.

        Raises:
            FileNotFoundError: the file or a folder on the way does not exist.
            UnsafeEntryError: a component is a link, or not a folder or regular file.
        """
        with _opened_no_follow(self.root, parts) as fd:
            chunks, remaining = [], limit
            while remaining > 0:
                chunk = os.read(fd, min(remaining, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
            return b"".join(chunks)


@contextmanager
def _opened_no_follow(root: Path, parts: tuple[str, ...]) -> Iterator[int]:
    """A descriptor of the regular file `root/parts...`, each part opened with O_NOFOLLOW.

    Every part is a single name validated by the caller, and each is opened relative to
    its parent's descriptor, so no link is followed and no path leaves `root`, even if
    the tree changes while it is walked.
    """
    try:
        fds = [os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))]
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise RegistryError(f"the registry folder (TICKML_MODELS_DIR) cannot be opened: "
                            f"{exc.strerror}") from None
    try:
        for depth, part in enumerate(parts):
            is_file = depth == len(parts) - 1
            # O_NONBLOCK: opening a FIFO planted as the artifact must not hang the loader.
            flags = _NOFOLLOW | (os.O_NONBLOCK if is_file else os.O_DIRECTORY)
            try:
                fds.append(os.open(part, flags, dir_fd=fds[-1]))
            except FileNotFoundError:
                raise
            except OSError:
                raise _unsafe("/".join(parts[:depth + 1]), part, fds[-1]) from None
        mode = os.fstat(fds[-1]).st_mode
        if not stat.S_ISREG(mode):
            raise UnsafeEntryError(f"{'/'.join(parts)} in the registry is not a regular file, "
                                   "so it is not read")
        yield fds[-1]
    finally:
        for fd in reversed(fds):
            os.close(fd)


def _unsafe(where: str, part: str, parent_fd: int) -> RegistryError:
    """The error for a part that exists but could not be opened as a plain entry."""
    try:
        mode = os.stat(part, dir_fd=parent_fd, follow_symlinks=False).st_mode
    except OSError as exc:
        return RegistryError(f"{where} in the registry cannot be read: {exc.strerror}")
    if stat.S_ISLNK(mode):
        return UnsafeEntryError(f"{where} in the registry is a symbolic link; the registry "
                                "follows none, so it is refused unread")
    return UnsafeEntryError(f"{where} in the registry is not a plain folder or file, so it "
                            "is refused unread")


def _plain_entries(folder: Path, *, dirs: bool) -> list[str]:
    """Names of the real folders (or regular files) in `folder`; links are left out."""
    try:
        with os.scandir(folder) as entries:
            return [entry.name for entry in entries
                    if not entry.is_symlink() and (entry.is_dir(follow_symlinks=False) if dirs
                                                   else entry.is_file(follow_symlinks=False))]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _write_new_file(path: Path, data: bytes) -> None:
    """Create `path` (which must not exist, nor be a link) with `data`, flushed to disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _parse_json(where: str, data: bytes) -> Any:
    if len(data) > MAX_JSON_BYTES:
        raise RegistryError(f"{where} in the registry is over {MAX_JSON_BYTES} bytes, so it "
                            "is not read")
    try:
        return json.loads(data)
    except ValueError as exc:
        raise RegistryError(f"{where} in the registry is malformed, not valid JSON: "
                            f"{exc}") from None


def _checked_sidecar(ref: ModelRef, metadata: Any) -> dict[str, Any]:
    """`metadata` if it describes exactly `ref` and a well-formed artifact entry."""
    where = f"{ref}: its sidecar {ref.folder}/{METADATA}"
    if not isinstance(metadata, dict):
        raise RegistryError(f"{where} is not a JSON object")
    named = (metadata.get("name"), metadata.get("version"))
    if named != (ref.name, ref.version) or isinstance(named[1], bool):
        raise RegistryError(f"{where} names {named[0]!r} version {named[1]!r}, not {ref}; a "
                            "model is served under the name and version that point to it")
    artifact = metadata.get("artifact")
    if not isinstance(artifact, dict) or artifact.get("file") != ARTIFACT:
        file = artifact.get("file") if isinstance(artifact, dict) else artifact
        raise RegistryError(f"{where} names the artifact {file!r}; only {ARTIFACT} in the "
                            "version folder is ever loaded")
    size, digest = artifact.get("bytes"), artifact.get("sha256")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise RegistryError(f"{where} records the sha256 {digest!r}, not 64 hex digits")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RegistryError(f"{where} records the size {size!r}, not a number of bytes")
    return metadata


def _file_record(name: str, data: bytes) -> dict[str, Any]:
    """A sidecar entry for a file of the version folder: its name, sha256 and size."""
    return {"file": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _compiled(pipeline: Any, rows: np.ndarray,
              threshold: float) -> tuple[FastScorer | None, dict[str, Any]]:
    """The pipeline's compiled scorer checked on `rows`, or None, and its sidecar record.

    Any failure to compile or to match the pipeline is a reason to keep the pipeline
    path, never an error: the pipeline is the model.
    """
    try:
        scorer = fastpath.build_fast_scorer(pipeline)
        if scorer is None:
            return None, {"path": "pipeline", "reason": fastpath.no_form_reason(pipeline)}
        verification = scorer.verify(pipeline, rows, threshold)
    except Exception as exc:  # a compiler failure of any kind means "no compiled form"
        log.warning("the compiled scorer is not used: %r", exc)
        return None, {"path": "pipeline", "reason": f"compilation or verification failed: "
                      f"{exc}"}
    return scorer, {**scorer.describe(), "libraries": scorer.manifest["libraries"],
                    "verification": verification.as_dict()}


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a pickled pipeline depends on."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = package_version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise RegistryError(f"model name {name!r} is not valid: use 1 to 100 ASCII letters, "
                            "digits, '-', '_' and '.', starting with a letter or digit")


def _check_version(version: object) -> None:
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RegistryError(f"model version {version!r} is not valid: use a positive integer")
