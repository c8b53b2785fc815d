"""`tickml bench scoring` runs end to end on a small model (figures are not asserted:
they are the benchmark's to report, and these machines are shared)."""

from __future__ import annotations

from tickml.bench.scoring import format_table, run_scoring_benchmark
from tickml.config import Settings


def test_the_benchmark_times_every_path_in_every_round(small_project: Settings) -> None:
    results = run_scoring_benchmark(small_project, rounds=2, single_calls=10, batch_calls=2)
    assert len(results["rounds"]) == 2
    for figures in results["rounds"]:
        for path in ("pipeline", "fast_path", "served"):
            assert figures[path]["single_row_us"] > 0 and figures[path]["batch_rows_per_s"] > 0
        for ratios in ("speedup", "served_speedup"):
            assert set(figures[ratios]) == {"single_row", "batch", "single_row_cpu",
                                            "batch_cpu"}
    assert results["fast_path"]["verification"]["verdict_differences"] == 0
    assert results["served"]["path"] == "compiled"
    assert results["summary"]["fast_path.single_row_us"]["min"] <= \
        results["summary"]["fast_path.single_row_us"]["max"]
    assert "| 2 |" in format_table(results)
