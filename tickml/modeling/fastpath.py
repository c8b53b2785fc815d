"""The fast scoring path: the default pipeline's feature step in NumPy and its
LightGBM booster compiled to machine code by lleaves.

The pipeline stays the model. A `FastScorer` is derived from it, checked equal
to it (`verify`), and serves in its place: on one row it skips pandas, scikit-learn's
input validation and LightGBM's prediction setup; on a batch the compiled trees
run faster than LightGBM's own traversal.

lleaves was chosen by measuring it on the default model against treelite/tl2cgen
and ONNX Runtime (benchmarks/compilers.py): it was the fastest on one row and on
1,000 rows, and it compares in float64 as LightGBM does, so its probabilities
match the pipeline's to the last few bits. ONNX Runtime's tree ensemble
compares float32 values and missed by up to 4e-7.

The compiled form is saved as one zip file (`ARTEFACT`) that holds the booster's
text, the object code and a manifest; `load` reads it once, checks its sha256,
and compiles nothing: the object code is handed to LLVM from memory-backed files
written from those same bytes.
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np

from tickml import schema
from tickml.files import write_bytes_atomically
from tickml.modeling.features import DERIVED_WIDTH, TransactionFeatures, derive_features
from tickml.registry import FASTPATH

log = logging.getLogger(__name__)

#: The file a compiled scorer is saved as, beside the model artifact (the registry's name).
ARTEFACT = FASTPATH
#: Largest difference allowed between the fast path's probabilities and the pipeline's.
TOLERANCE = 1e-9
#: Layout of the zip file; a different one is rebuilt, not read.
FORMAT = 1
#: Object code for any x86-64 processor: the trees are scalar compares and adds,
#: which gain nothing measurable from the host's vector extensions, and a cached
#: artefact then stays valid when the models folder moves to another machine.
TARGET_CPU = "x86-64"
#: How many deterministic rows check a scorer when no test split is given.
VERIFICATION_ROWS = 2_000
_MANIFEST, _BOOSTER, _OBJECT = "manifest.json", "booster.txt", "forest.o"
_ENTRY = "forest_root"  # the compiled function's name (lleaves' froot_func_name)


class FastPathError(RuntimeError):
    """The fast path cannot serve; the pipeline serves instead."""


class FastPathIntegrityError(FastPathError):
    """A saved artefact does not match its recorded sha256, or was built elsewhere."""


class FastPathMismatch(FastPathError):
    """The fast path's scores differ from the pipeline's."""


@dataclass(frozen=True)
class Verification:
    """How the fast path compared with the pipeline on some rows."""

    rows: int
    max_abs_difference: float
    verdict_differences: int
    threshold: float
    tolerance: float = TOLERANCE

    @property
    def ok(self) -> bool:
        return self.max_abs_difference <= self.tolerance and self.verdict_differences == 0

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "max_abs_difference": self.max_abs_difference,
                "verdict_differences": self.verdict_differences,
                "threshold": self.threshold, "tolerance": self.tolerance}


def build_fast_scorer(pipeline: Any) -> FastScorer | None:
    """Compile `pipeline`'s fast form, or None when it has none.

    A pipeline has a fast form when, at prediction time, it is exactly
    `TransactionFeatures` then a binary `LGBMClassifier` (resamplers are skipped
    at prediction, so they may sit between). Ensembles, other boosters and other
    feature steps return None and keep the pipeline path. Compiling takes a few
    seconds for 300 trees: do it when a model is registered or first loaded, and
    `save` the result beside the artifact.
    """
    booster = lightgbm_booster(pipeline)
    if booster is None:
        return None
    import lleaves

    text = booster.model_to_string().encode()
    with tempfile.TemporaryDirectory(prefix="tickml-fastpath-") as scratch:
        booster_file, object_file = Path(scratch) / _BOOSTER, Path(scratch) / _OBJECT
        booster_file.write_bytes(text)
        model = lleaves.Model(model_file=str(booster_file))
        # lleaves writes the object code to `cache` as it compiles.
        model.compile(cache=str(object_file), froot_func_name=_ENTRY,
                      target_cpu=TARGET_CPU, target_cpu_features="")
        object_code = object_file.read_bytes()
    manifest = {
        "format": FORMAT,
        "compiler": "lleaves",
        "libraries": {name: package_version(name) for name in ("lleaves", "llvmlite")},
        "target": {"triple": _process_triple(), "cpu": TARGET_CPU},
        "trees": model.num_trees(),
        "booster_sha256": hashlib.sha256(text).hexdigest(),
        "tolerance": TOLERANCE,
    }
    return FastScorer(model, manifest, {_BOOSTER: text, _OBJECT: object_code})


def compile_checked(pipeline: Any, rows: np.ndarray,
                    threshold: float) -> tuple[FastScorer | None, dict[str, Any]]:
    """`pipeline`'s compiled scorer checked on `rows`, or None, and the sidecar's record.

    The record names the compiler, its libraries and the comparison (`verification`);
    without a scorer it says why the pipeline serves. Any failure to compile or to match
    the pipeline is a reason to keep the pipeline path, never an error: the pipeline is
    the model.
    """
    try:
        scorer = build_fast_scorer(pipeline)
        if scorer is None:
            return None, {"path": "pipeline", "reason": no_form_reason(pipeline)}
        verification = scorer.verify(pipeline, rows, threshold)
    except Exception as exc:  # a compiler failure of any kind means "no compiled form"
        log.warning("the compiled scorer is not used: %r", exc)
        return None, {"path": "pipeline", "reason": f"compilation or verification failed: "
                      f"{exc}"}
    return scorer, {**scorer.describe(), "libraries": scorer.manifest["libraries"],
                    "verification": verification.as_dict()}


def no_form_reason(pipeline: Any) -> str:
    """Why `pipeline` keeps the pipeline path, named by its final estimator."""
    steps = getattr(pipeline, "steps", None)
    final = steps[-1][1] if isinstance(steps, list) and steps else pipeline
    return (f"{type(final).__name__}: no compiled form (only a features → LightGBM "
            "pipeline has one)")


def deterministic_rows(rows: int = VERIFICATION_ROWS, seed: int = 0) -> np.ndarray:
    """The rows a compiled scorer is checked on when no test split is at hand.

    Always the same for the same arguments: Time spread over two days, V1..V28
    standard normal with a tail of larger values (like PCA components of real
    transactions), Amount log-normal, plus an all-zero row. They reach every tree's
    branches that ordinary traffic reaches, which is what the comparison needs.
    """
    generator = np.random.default_rng(seed)
    matrix = np.empty((rows, len(schema.FEATURES)))
    matrix[:, 0] = generator.uniform(0, 2 * 86_400, rows)
    matrix[:, 1:-1] = generator.standard_t(df=3, size=(rows, len(schema.FEATURES) - 2))
    matrix[:, -1] = generator.lognormal(mean=3.0, sigma=1.5, size=rows)
    matrix[0] = 0.0
    return matrix


def lightgbm_booster(pipeline: Any) -> Any | None:
    """The LightGBM booster of a features → LightGBM pipeline, or None for any other model."""
    steps = getattr(pipeline, "steps", None)
    if not isinstance(steps, list):
        return None
    served = [step for _, step in steps
              if step not in (None, "passthrough") and not hasattr(step, "fit_resample")]
    if len(served) != 2:
        return None
    features, classifier = served
    from lightgbm import LGBMClassifier

    if type(features) is not TransactionFeatures or type(classifier) is not LGBMClassifier:
        return None
    if getattr(classifier, "objective_", None) != "binary" or classifier.n_classes_ != 2:
        return None
    booster = classifier.booster_
    return booster if booster.num_feature() == DERIVED_WIDTH else None


class FastScorer:
    """A compiled pipeline: schema-order rows in, fraud probabilities out."""

    def __init__(self, model: Any, manifest: dict[str, Any], files: dict[str, bytes]) -> None:
        self._model = model  # keeps the compiled code alive
        self._forest = _entry_function(model)
        self.manifest = manifest
        self._files = files

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        """Fraud probability per row of a schema-order float matrix (n, 30).

        A frame is accepted too (read by column name), but costs pandas' time.
        Returns a float64 array, empty for no rows.
        """
        matrix = schema.as_feature_matrix(rows)
        if len(matrix) == 0:
            return np.empty(0)
        return self._forest(derive_features(matrix))

    def verify(self, pipeline: Any, rows: np.ndarray, threshold: float) -> Verification:
        """Score `rows` both ways; raise FastPathMismatch unless they agree.

        They agree when every probability is within `TOLERANCE` of the pipeline's
        and every verdict (probability >= threshold) is the same.
        """
        matrix = schema.as_feature_matrix(rows)
        expected = np.asarray(pipeline.predict_proba(matrix)[:, 1], dtype=np.float64)
        actual = self.predict_proba(matrix)
        result = Verification(
            rows=len(matrix),
            max_abs_difference=float(np.max(np.abs(actual - expected), initial=0.0)),
            verdict_differences=int(np.sum((actual >= threshold) != (expected >= threshold))),
            threshold=float(threshold))
        if not result.ok:
            raise FastPathMismatch(
                f"the compiled scorer differs from the pipeline on {result.rows} rows: "
                f"largest difference {result.max_abs_difference:.3g} (allowed {TOLERANCE:g}), "
                f"{result.verdict_differences} verdicts differ at threshold {threshold}")
        return result

    def built_from(self, pipeline: Any) -> bool:
        """True when this scorer was compiled from `pipeline`'s booster."""
        booster = lightgbm_booster(pipeline)
        return booster is not None and hashlib.sha256(
            booster.model_to_string().encode()).hexdigest() == self.manifest["booster_sha256"]

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """`predict_proba` for a non-empty schema-order float64 matrix, unchecked."""
        return self._forest(derive_features(matrix))

    def describe(self) -> dict[str, Any]:
        """What serves, for `/model` and the model's metadata."""
        libraries = self.manifest["libraries"]
        return {"path": "compiled", "compiler": f"lleaves {libraries['lleaves']}",
                "trees": self.manifest["trees"], "tolerance": self.manifest["tolerance"]}

    # -- saving and loading ----------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The artefact: one zip file holding the manifest, the booster and the object code."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(_MANIFEST, json.dumps(self.manifest, indent=2, sort_keys=True))
            for name in (_BOOSTER, _OBJECT):
                archive.writestr(name, self._files[name])
        return buffer.getvalue()

    def save(self, directory: Path) -> str:
        """Write `ARTEFACT` into `directory` atomically; return its sha256 to record."""
        data = self.to_bytes()
        write_bytes_atomically(Path(directory) / ARTEFACT, data)
        return hashlib.sha256(data).hexdigest()

    @classmethod
    def load(cls, directory: Path, expected_sha256: str) -> FastScorer:
        """Load a saved scorer after checking its sha256 against the recorded one.

        The file is read once; the bytes that were hashed are the bytes loaded.
        Raises FileNotFoundError when nothing was saved, FastPathIntegrityError when
        the file changed since it was saved or was built for another platform or
        compiler version (rebuild it then).
        """
        path = Path(directory) / ARTEFACT
        data = path.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256:
            raise FastPathIntegrityError(
                f"{path} has sha256 {actual[:12]}…, but {expected_sha256[:12]}… was recorded; "
                "the file changed after it was saved, so it is not loaded")
        return cls.from_bytes(data)

    @classmethod
    def from_bytes(cls, data: bytes) -> FastScorer:
        """A scorer from an artefact's bytes (already checked by the caller)."""
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            manifest = json.loads(archive.read(_MANIFEST))
            files = {name: archive.read(name) for name in (_BOOSTER, _OBJECT)}
        _check_compatible(manifest)
        import lleaves

        with _memory_file(files[_BOOSTER]) as booster_file, \
                _memory_file(files[_OBJECT]) as object_file:
            model = lleaves.Model(model_file=booster_file)
            # With an existing cache file lleaves loads that object code and compiles nothing.
            model.compile(cache=object_file, froot_func_name=_ENTRY)
        return cls(model, manifest, files)


def _check_compatible(manifest: dict[str, Any]) -> None:
    """Refuse object code built by another format, compiler version or platform."""
    wanted = {"format": FORMAT, "triple": _process_triple(),
              "llvmlite": package_version("llvmlite"), "lleaves": package_version("lleaves")}
    found = {"format": manifest.get("format"),
             "triple": manifest.get("target", {}).get("triple"),
             **{name: manifest.get("libraries", {}).get(name) for name in ("llvmlite", "lleaves")}}
    different = {key: found[key] for key in wanted if found[key] != wanted[key]}
    if different:
        raise FastPathIntegrityError(
            f"the artefact was built with {different}, this process has "
            f"{ {key: wanted[key] for key in different} }; rebuild it")


@contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    """A path to an anonymous in-memory file holding `data` (Linux's memfd)."""
    fd = os.memfd_create("tickml-fastpath", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _process_triple() -> str:
    import llvmlite.binding as llvm

    return llvm.get_process_triple()


def _entry_function(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """derived matrix (n, 31) → probabilities, through the compiled function.

    lleaves' `predict` converts its input and may start a thread pool; the rows
    here are already a C-contiguous float64 matrix, so the compiled function (the
    one lleaves itself calls, which releases the GIL) is called directly. It is
    called through a prototype taking plain addresses: building ctypes pointer
    objects for each call cost about as much as the trees on one row. Should a
    future lleaves rename it, its `predict` serves instead.
    """
    forest = getattr(model, "_c_entry_func", None)
    if forest is None:
        return lambda derived: np.asarray(model.predict(derived, n_jobs=1), dtype=np.float64)
    by_address = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                                  ctypes.c_int)(ctypes.cast(forest, ctypes.c_void_p).value)

    def predict(derived: np.ndarray) -> np.ndarray:
        out = np.empty(len(derived))
        by_address(derived.ctypes.data, out.ctypes.data, 0, len(derived))
        return out

    return predict
