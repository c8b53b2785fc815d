"""The benchmarks' derived parts: the no-UDF ceiling task and the spread over runs."""

from __future__ import annotations

from tickml.bench.pipeline import CEILING_MEASUREMENT, ceiling_script
from tickml.bench.runs import repeated, spread
from tickml.kapacitor import TaskDefinition, read_scripts

from ..conftest import SCRIPTS


def test_the_ceiling_is_the_shipped_scoring_task_without_its_udf() -> None:
    shipped = read_scripts(SCRIPTS)["fraud_scoring"]
    ceiling = ceiling_script(shipped)
    assert "@" not in ceiling and "batchSize" not in ceiling
    assert f".measurement('{CEILING_MEASUREMENT}')" in ceiling
    assert ".measurement('scored')" not in ceiling
    # the same influxDBOut settings as the scoring it is compared with
    out = shipped[shipped.index("|influxDBOut()"):].replace("'scored'", f"'{CEILING_MEASUREMENT}'")
    assert ceiling.rstrip().endswith(out.rstrip())
    assert TaskDefinition.of(ceiling).dbrps == (("fraud", "autogen"),)


def test_spread_lists_each_run_and_skips_figures_a_run_could_not_measure() -> None:
    figures = spread([{"share": 0.5, "p99": None}, {"share": 0.9, "p99": 200.0},
                      {"share": 0.7, "p99": 300.0}])
    assert figures["share"] == {"runs": [0.5, 0.9, 0.7], "min": 0.5, "median": 0.7, "max": 0.9}
    assert figures["p99"] == {"runs": [None, 200.0, 300.0], "min": 200.0, "median": 250.0,
                              "max": 300.0}


def test_one_run_keeps_the_figures_as_they_are_and_more_add_the_spread() -> None:
    results = iter([{"ratios": {"x": 1.0}, "n": 1}, {"ratios": {"x": 3.0}, "n": 2}])
    assert repeated(lambda: {"ratios": {"x": 1.0}}, 1, "ratios") == {"ratios": {"x": 1.0}}
    two = repeated(lambda: next(results), 2, "ratios")
    assert two["n"] == 2 and two["spread"]["x"]["runs"] == [1.0, 3.0]
