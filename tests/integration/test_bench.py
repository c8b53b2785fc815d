"""`tickml bench pipeline` runs end to end on a small model and a short burst (figures are
not asserted: they are the benchmark's to report, and these machines are shared)."""

from __future__ import annotations

from tickml.bench.pipeline import CEILING, MICRO, NAIVE, run_pipeline_benchmark
from tickml.config import Settings


def test_one_run_measures_the_agent_its_no_udf_ceiling_and_batch_size_1(
        small_project: Settings) -> None:
    summary = run_pipeline_benchmark(small_project, burst=300, naive_burst=100, rate=20,
                                     high_rate=100, seconds=1)
    modes = {m["mode"]: m for m in summary["modes"]}
    assert list(modes) == [MICRO, CEILING, NAIVE]
    # every paced point was read back, and the agent's own latency sits beside it
    moderate = modes[MICRO]["latency"]["moderate"]
    assert moderate["points"] == 20 and moderate["agent_p99_ms"] is not None
    assert modes[CEILING]["latency"]["moderate"]["agent_p50_ms"] is None
    # the scoring task scored again after the ceiling ran in its place
    assert modes[NAIVE]["capacity_per_s"] > 0 and modes[NAIVE]["agent_cpu_us_per_point"] > 0
    headline = summary["headline"]
    assert headline["ceiling_share"] == round(
        modes[MICRO]["capacity_per_s"] / modes[CEILING]["capacity_per_s"], 3)
    assert headline["agent_peak_rss_mb"] > 0
