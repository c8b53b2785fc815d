"""Tree compilers for the fast scoring path, measured on the production model.

Why tickml/modeling/fastpath.py compiles with lleaves: this script puts the same
NumPy feature step in front of each candidate and times one row (µs) and 1,000
rows (rows/s) through each, with the pipeline measured in the same round, for
three rounds. It also compares each candidate's probabilities with the
pipeline's on the test split. The candidates other than lleaves are not
dependencies of tickml; install them first:

    .venv/bin/uv pip install --python .venv/bin/python treelite tl2cgen onnxmltools onnxruntime
    .venv/bin/python benchmarks/compilers.py        # writes benchmarks/results/compilers.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before LightGBM loads, as serving does

import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from tickml import schema  # noqa: E402
from tickml.bench.api import BATCH_ROWS, timings  # noqa: E402
from tickml.config import get_settings  # noqa: E402
from tickml.data.prepare import load_split  # noqa: E402
from tickml.loader import load_production  # noqa: E402
from tickml.modeling.fastpath import build_fast_scorer  # noqa: E402
from tickml.modeling.features import DERIVED_WIDTH, derive_features  # noqa: E402
from tickml.registry import ModelRegistry  # noqa: E402

Scorer = Callable[[np.ndarray], np.ndarray]


def lleaves_scorer(pipeline: Any, scratch: Path) -> Scorer:
    scorer = build_fast_scorer(pipeline)
    assert scorer is not None
    return scorer.predict_proba


def tl2cgen_scorer(pipeline: Any, scratch: Path) -> Scorer:
    import tl2cgen
    import treelite

    model = treelite.frontend.from_lightgbm(pipeline.steps[-1][1].booster_)
    library = scratch / "forest.so"
    tl2cgen.export_lib(model, toolchain="gcc", libpath=str(library),
                       params={"parallel_comp": 8}, nthread=1)
    predictor = tl2cgen.Predictor(str(library), nthread=1)
    return lambda rows: predictor.predict(
        tl2cgen.DMatrix(derive_features(schema.as_feature_matrix(rows)))).reshape(-1)


def onnxruntime_scorer(pipeline: Any, scratch: Path) -> Scorer:
    import onnxmltools
    import onnxruntime
    from onnxmltools.convert.common.data_types import FloatTensorType

    # The LightGBM converter takes float32 input only (ai.onnx.ml TreeEnsemble v3).
    onnx_model = onnxmltools.convert_lightgbm(
        pipeline.steps[-1][1], initial_types=[("x", FloatTensorType([None, DERIVED_WIDTH]))],
        zipmap=False, target_opset=15)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(onnx_model.SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
    output = session.get_outputs()[1].name
    return lambda rows: session.run([output], {"x": derive_features(
        schema.as_feature_matrix(rows)).astype(np.float32)})[0][:, 1].astype(np.float64)


CANDIDATES = {"lleaves": lleaves_scorer, "tl2cgen": tl2cgen_scorer,
              "onnxruntime": onnxruntime_scorer}


def main() -> None:
    settings = get_settings()
    model = load_production(ModelRegistry(settings.models_dir))
    test = schema.as_feature_matrix(load_split(settings, "test"))
    batch, one = test[:BATCH_ROWS].copy(), test[:1].copy()
    expected = model.predict_proba(test)
    results: dict[str, Any] = {"model": str(model.ref), "test_rows": len(test),
                               "when": datetime.now(UTC).isoformat(timespec="seconds"),
                               "candidates": {}, "rounds": []}
    scorers: dict[str, Scorer] = {"pipeline": model.predict_proba}
    with tempfile.TemporaryDirectory() as scratch:
        for name, build in CANDIDATES.items():
            started = time.perf_counter()
            try:
                scorers[name] = build(model.pipeline, Path(scratch))
            except ImportError as exc:
                print(f"{name}: not installed ({exc})")
                continue
            actual = scorers[name](test)
            results["candidates"][name] = {
                "build_seconds": time.perf_counter() - started,
                "max_abs_difference": float(np.max(np.abs(actual - expected))),
                "verdict_differences": int(np.sum(
                    (actual >= model.threshold) != (expected >= model.threshold)))}
        for _ in range(3):
            results["rounds"].append(measure_round(scorers, one, batch))
            print_round(results["rounds"][-1])
    path = settings.root / "benchmarks" / "results" / "compilers.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["candidates"], indent=2), f"\nwrote {path}")


def measure_round(scorers: dict[str, Scorer], one: np.ndarray,
                  batch: np.ndarray) -> dict[str, Any]:
    figures: dict[str, Any] = {"load_average": os.getloadavg()[0]}
    for name, score in scorers.items():
        single = statistics.median(timings(lambda s=score: s(one), 300 if name == "pipeline"
                                           else 2_000))
        many = statistics.median(timings(lambda s=score: s(batch), 30))
        figures[name] = {"single_row_us": 1e6 * single, "batch_rows_per_s": len(batch) / many}
    pipeline = figures["pipeline"]
    for name in scorers:
        figures[name]["single_row_speedup"] = pipeline["single_row_us"] / figures[name][
            "single_row_us"]
        figures[name]["batch_speedup"] = figures[name]["batch_rows_per_s"] / pipeline[
            "batch_rows_per_s"]
    return figures


def print_round(figures: dict[str, Any]) -> None:
    print(f"load average {figures['load_average']:.1f}")
    for name, f in figures.items():
        if name != "load_average":
            print(f"  {name:12s} 1 row {f['single_row_us']:9.1f} µs "
                  f"({f['single_row_speedup']:6.1f}x)   1,000 rows "
                  f"{f['batch_rows_per_s']:11,.0f} rows/s ({f['batch_speedup']:5.1f}x)")


if __name__ == "__main__":
    main()
