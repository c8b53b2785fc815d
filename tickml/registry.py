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

The compiled scorer (`fastpath.zip`, made by `tickml.modeling.fastpath`) is stored and
read under the same rules: its sha256 and size are in the sidecar, it is read once
through the same no-follow opens, and the hashed bytes are the bytes handed back. The
registry never compiles, checks or runs it, and imports nothing of `tickml.modeling`:
it stores bytes and says whether they are the ones recorded. Turning a version into the
model that serves (the pipeline, and the compiled scorer when it may stand in for it)
is `tickml.loader`'s; registering a trained model with its compiled scorer is
`tickml.modeling.register`'s.

Everything that opens model files goes through this module.
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
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import joblib

from tickml import schema
from tickml.files import write_bytes_atomically, write_json_atomically

log = logging.getLogger(__name__)

POINTER = "production.json"
ARTIFACT = "model.joblib"
METADATA = "metadata.json"
#: The compiled scorer's file in a version folder (`tickml.modeling.fastpath` writes it).
FASTPATH = "fastpath.zip"
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
class StoredModel:
    """A version's pipeline, unpickled from the verified bytes, and its checked sidecar."""

    ref: ModelRef
    pipeline: Any
    metadata: dict[str, Any]


class ModelRegistry:
    """Versioned model artifacts under one directory, read without following links."""

    def __init__(self, root: Path) -> None:
        """Args:
            root: the registry folder.
        """
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
        fastpath: bytes | None = None,
        fastpath_record: dict[str, Any] | None = None,
    ) -> ModelRef:
        """Save `pipeline` as the next version of `name` and return its reference.

        Args:
            fastpath: the compiled scorer's bytes, saved as `fastpath.zip` beside the
                artifact with their sha256 and size in the sidecar; the registry stores
                them as given (`tickml.modeling.register` builds and checks them).
            fastpath_record: what the sidecar says about the compiled scorer besides
                its file (compiler, comparison), or why there is none. Without either,
                the sidecar says nothing and the loader builds the scorer at first load.

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
        record = dict(fastpath_record or {})
        if fastpath is not None:
            _write_new_file(self.path(ref) / FASTPATH, fastpath)
            record = {**_file_record(FASTPATH, fastpath), **record}
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
            **({FASTPATH_KEY: record} if record else {}),
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

    def store_fastpath(self, ref: ModelRef, data: bytes, record: dict[str, Any]) -> None:
        """Save a compiled scorer built after registration, and record it in the sidecar.

        Args:
            data: the scorer's bytes, written atomically as `fastpath.zip`.
            record: what the sidecar says about it besides its file, sha256 and size.

        Raises:
            OSError: the version folder cannot be written (a read-only `models/`).
        """
        write_bytes_atomically(self.path(ref) / FASTPATH, data)
        metadata = self.metadata(ref)
        metadata[FASTPATH_KEY] = {**_file_record(FASTPATH, data), **record}
        write_json_atomically(self.path(ref) / METADATA, metadata)

    @contextmanager
    def fastpath_lock(self, ref: ModelRef) -> Iterator[bool]:
        """Hold the version folder's lock for building its compiled scorer.

        Concurrent loaders (gunicorn workers) take turns: the first builds and stores,
        the others read what it stored. Yields False, holding nothing, when the lock
        file cannot be created (a read-only `models/`) or is a link, which is not
        followed: the caller then builds in memory and stores nothing.
        """
        try:
            lock = os.open(self.path(ref) / _FASTPATH_LOCK,
                           os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                           0o644)
        except OSError:
            yield False
            return
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield True
        finally:
            os.close(lock)

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

    def require_production(self) -> ModelRef:
        """The production version; RegistryError saying how to get one when there is none."""
        ref = self.production()
        if ref is None:
            raise RegistryError(
                f"no production model in {self.root}: run `tickml train` (it promotes "
                "its model) or `tickml models promote NAME VERSION`"
            )
        return ref

    def verify(self, ref: ModelRef) -> dict[str, Any]:
        """Check the artifact's sha256 against its metadata; return the metadata."""
        return self._verified_artifact(ref)[0]

    def load_pipeline(self, ref: ModelRef) -> StoredModel:
        """Read the artifact once, verify those bytes, then unpickle the same bytes.

        This is the pipeline alone, as training reads a registered model back; a model
        to serve comes from `tickml.loader`, which adds the compiled scorer.

        Raises:
            IntegrityError: the artifact is missing or not the bytes recorded.
            UnsafeEntryError: a link or a non-plain entry on the way.
            RegistryError: the sidecar is refused, or the artifact does not unpickle
                to a classifier.
        """
        metadata, data = self._verified_artifact(ref)
        try:
            pipeline = joblib.load(io.BytesIO(data))
        except Exception as exc:  # unpickling can fail in many ways; all mean "unusable"
            raise RegistryError(f"{ref}: the artifact could not be loaded: {exc!r}") from exc
        if not hasattr(pipeline, "predict_proba"):
            raise RegistryError(f"{ref}: the artifact is not a classifier (no predict_proba)")
        return StoredModel(ref, pipeline, metadata)

    def read_fastpath(self, ref: ModelRef, record: dict[str, Any]) -> bytes:
        """The compiled scorer's bytes the sidecar records, read once and checked.

        Args:
            record: the sidecar's `fastpath` entry (`file`, `sha256`, `bytes`).

        Raises:
            FileNotFoundError: the file does not exist.
            IntegrityError: its size or sha256 differs from the record.
            UnsafeEntryError: it or a folder on the way is a link or not a plain entry.
            RegistryError: the record names another file, or no valid size and sha256.
        """
        if record.get("file") != FASTPATH:
            raise RegistryError(f"the sidecar names {record.get('file')!r}; only {FASTPATH} "
                                "in the version folder is ever loaded")
        return self._read_recorded(ref, record)

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
