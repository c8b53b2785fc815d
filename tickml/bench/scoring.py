"""`tickml bench scoring`: the pipeline against its fast path, in process, same run.

Three paths are timed: `pipeline` (`LoadedModel` scoring through the pipeline, as it
did before the compiled path), `fast_path` (the bare compiled scorer) and `served`
(`LoadedModel.predict_proba` as the loader gives it, which is what the API calls).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from tickml.bench.api import BATCH_ROWS, sample_matrix, timings
from tickml.config import Settings
from tickml.loader import LoadedModel, load_production
from tickml.modeling.fastpath import build_fast_scorer
from tickml.registry import ModelRegistry

#: Targets of the fast path: one row in at most 30 µs, 1,000 rows at 1M rows/s or more.
TARGET_SINGLE_ROW_US = 30.0
TARGET_BATCH_ROWS_PER_S = 1_000_000.0


def run_scoring_benchmark(settings: Settings, *, rounds: int = 3, single_calls: int = 2_000,
                          batch_calls: int = 50) -> dict[str, Any]:
    """Build the production model's fast path, check it, then time the paths in turns.

    Each round times the pipeline, the fast path and the served model one after the
    other on the same rows, so every ratio compares figures taken moments apart on a
    shared machine.
    """
    model = load_production(ModelRegistry(settings.models_dir),
                            verification_split=settings.processed_dir / "test.parquet")
    started = time.perf_counter()
    fast = build_fast_scorer(model.pipeline)
    build_seconds = time.perf_counter() - started
    if fast is None:
        raise ValueError(f"{model.ref} has no fast form (only features → LightGBM has one)")
    matrix = sample_matrix(BATCH_ROWS)
    verification = fast.verify(model.pipeline, matrix, model.threshold)
    pipeline_only = LoadedModel(model.pipeline, model.metadata)
    paths: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "pipeline": pipeline_only.predict_proba, "fast_path": fast.predict_proba,
        "served": model.predict_proba}
    results: dict[str, Any] = {
        "model": str(model.ref),
        "served": model.scoring,
        "fast_path": {**fast.describe(), "build_seconds": build_seconds,
                      "verification": verification.as_dict()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "rounds": [measure_round(paths, matrix, single_calls, batch_calls)
                   for _ in range(rounds)],
    }
    results["summary"] = summarise(results["rounds"])
    return results


def measure_round(paths: dict[str, Callable[[np.ndarray], np.ndarray]], matrix: np.ndarray,
                  single_calls: int, batch_calls: int) -> dict[str, Any]:
    """One row and 1,000 rows through each path; medians and the ratios to the pipeline."""
    figures: dict[str, Any] = {"load_average": os.getloadavg()[0]}
    one = np.ascontiguousarray(matrix[:1])
    for name, score in paths.items():
        single = statistics.median(timings(lambda s=score: s(one), single_calls))
        batch = statistics.median(timings(lambda s=score: s(matrix), batch_calls))
        figures[name] = {
            "single_row_us": 1e6 * single, "batch_rows_per_s": len(matrix) / batch,
            "single_row_cpu_us": 1e6 * cpu_seconds_per_call(lambda s=score: s(one), single_calls),
            "batch_rows_per_cpu_s": len(matrix) / cpu_seconds_per_call(
                lambda s=score: s(matrix), batch_calls)}
    figures["speedup"] = speedup(figures["pipeline"], figures["fast_path"])
    if "served" in figures:
        figures["served_speedup"] = speedup(figures["pipeline"], figures["served"])
    return figures


def speedup(pipeline: dict[str, float], other: dict[str, float]) -> dict[str, float]:
    """How many times faster `other` is than the pipeline, per figure."""
    return {"single_row": pipeline["single_row_us"] / other["single_row_us"],
            "batch": other["batch_rows_per_s"] / pipeline["batch_rows_per_s"],
            "single_row_cpu": pipeline["single_row_cpu_us"] / other["single_row_cpu_us"],
            "batch_cpu": other["batch_rows_per_cpu_s"] / pipeline["batch_rows_per_cpu_s"]}


def cpu_seconds_per_call(call: Callable[[], object], repeat: int) -> float:
    """CPU seconds of this process (all its threads) per call, over `repeat` calls.

    On a loaded machine wall time also counts the time spent waiting for a core;
    CPU time shows what a call costs once it has one.
    """
    started = time.process_time()
    for _ in range(repeat):
        call()
    return (time.process_time() - started) / repeat


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and range over the rounds of each figure and ratio."""
    def spread(values: list[float]) -> dict[str, float]:
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    return {f"{path}.{figure}": spread([r[path][figure] for r in rounds])
            for path in ("pipeline", "fast_path", "served", "speedup", "served_speedup")
            if path in rounds[0]
            for figure in rounds[0][path]}


def format_table(results: dict[str, Any]) -> str:
    """The rounds as a Markdown table, then the targets.

    `served` is `LoadedModel.predict_proba` as the loader loads the model; its
    speed-up is against `LoadedModel` on the pipeline path.
    """
    lines = ["| round | load | clock | pipeline 1 row µs | fast 1 row µs | served 1 row µs | "
             "speed-up | pipeline rows/s | fast rows/s | served rows/s | speed-up |",
             "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for number, r in enumerate(results["rounds"], 1):
        p, f, v, x = r["pipeline"], r["fast_path"], r["served"], r["served_speedup"]
        for clock, suffix, rate in (("wall", "", "batch_rows_per_s"),
                                    ("CPU", "_cpu", "batch_rows_per_cpu_s")):
            single = "single_row" + suffix + "_us"
            lines.append(
                f"| {number} | {r['load_average']:.1f} | {clock} | {p[single]:,.1f} | "
                f"{f[single]:,.1f} | {v[single]:,.1f} | {x['single_row' + suffix]:.1f}x | "
                f"{p[rate]:,.0f} | {f[rate]:,.0f} | {v[rate]:,.0f} | {x['batch' + suffix]:.1f}x |")
    s, fast, served = results["summary"], results["fast_path"], results["served"]
    lines += [
        "",
        f"{results['model']}, {fast['compiler']}, {fast['trees']} trees, built in "
        f"{fast['build_seconds']:.1f} s; largest difference from the pipeline "
        f"{fast['verification']['max_abs_difference']:.2g} on "
        f"{fast['verification']['rows']} rows, "
        f"{fast['verification']['verdict_differences']} verdicts differ.",
        f"fast path, median of rounds: one row {s['fast_path.single_row_us']['median']:.1f} µs "
        f"(target ≤ {TARGET_SINGLE_ROW_US:.0f}), 1,000 rows "
        f"{s['fast_path.batch_rows_per_s']['median']:,.0f} rows/s "
        f"(target ≥ {TARGET_BATCH_ROWS_PER_S:,.0f}).",
        f"served ({served['path']} path), median of rounds: one row "
        f"{s['served.single_row_us']['median']:.1f} µs, 1,000 rows "
        f"{s['served.batch_rows_per_s']['median']:,.0f} rows/s; against the pipeline "
        f"{s['served_speedup.single_row']['median']:.1f}x and "
        f"{s['served_speedup.batch']['median']:.1f}x."]
    return "\n".join(lines)
