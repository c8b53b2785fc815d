"""`tickml bench pipeline --shards 1,2 --backend tickml|mlserver`: what each stage costs.

For each shard count, one stack on free ports (influxd, the model server, and per shard a
kapacitord and its agent), measured for real:

* capacity: a burst of transactions written at once, and the rate at which they come out
  scored; on one machine more shards share the same cores, so this cannot grow with
  them, and is not expected to;
* CPU seconds per 1,000 transactions of each stage (influxd, every kapacitord, every
  agent, the API or MLServer) at a fixed rate, from the processes' own counters in
  /proc: the per-stage costs a capacity model for several machines is built from.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from tickml import schema
from tickml.config import Settings
from tickml.data.prepare import load_split
from tickml.generator import transaction_lines
from tickml.influx import InfluxClient, influx_for
from tickml.stack.process import Service
from tickml.stack.services import LocalPipeline, local_pipeline

#: The stages a transaction passes, by the program names of the local pipeline.
STAGES = {"influxd": ("influxd",), "kapacitord": ("kapacitord",), "agent": ("udf",),
          "model server": ("api", "mlserver")}
BACKENDS = ("tickml", "mlserver")


@dataclass(frozen=True)
class ShardResult:
    shards: int
    backend: str
    burst: int
    capacity_per_s: float
    rate: float
    transactions: int  # written at `rate`
    cpu_s_per_1000: dict[str, float]  # CPU seconds per 1,000 transactions, per stage
    cpu_s_per_1000_total: float


def run_scaling_benchmark(settings: Settings, shard_counts: list[int], backend: str,
                          burst: int, rate: float, seconds: float) -> dict[str, Any]:
    """Measure each shard count in turn, on a stack of its own; the figures and the machine."""
    rows = load_split(settings, "test")
    results = []
    for shards in shard_counts:
        with tempfile.TemporaryDirectory(prefix="tickml-scaling-") as tmp, \
                local_pipeline(settings, Path(tmp), api_workers=2, shards=shards,
                               backend=backend) as pipeline:
            results.append(measure_shards(pipeline, rows, shards, backend, burst, rate,
                                          seconds))
    return {"backend": backend, "machine_cpus": psutil.cpu_count(),
            "measured_at": time.strftime("%Y-%m-%d %H:%M"),
            "load_average_after": [round(x, 2) for x in psutil.getloadavg()],
            "results": [asdict(r) for r in results]}


def measure_shards(pipeline: LocalPipeline, rows, shards: int, backend: str, burst: int,
                   rate: float, seconds: float) -> ShardResult:
    """Burst capacity, then CPU per 1,000 transactions written at `rate` for `seconds`."""
    writer, reader = pipeline.influx, influx_for(pipeline.settings)
    try:
        lines = transaction_lines(rows.sample(burst, replace=True, random_state=1),
                                  time.time_ns(), {"run": "scaling-burst"})
        started = time.monotonic()
        for start in range(0, burst, 5000):
            writer.write_lines(lines[start:start + 5000])
        wait_for_scored(reader, "scaling-burst", burst)
        capacity = burst / (time.monotonic() - started)

        count = max(1, int(rate * seconds))
        before = stage_cpu(pipeline.services)
        write_paced(writer, rows.sample(count, replace=True, random_state=2), rate,
                    "scaling-paced")
        wait_for_scored(reader, "scaling-paced", count)
        spent = {stage: stage_cpu(pipeline.services)[stage] - before[stage]
                 for stage in before}
    finally:
        reader.close()
    per_1000 = {stage: round(1000 * cpu / count, 4) for stage, cpu in spent.items()}
    return ShardResult(shards, backend, burst, round(capacity, 1), rate, count, per_1000,
                       round(sum(per_1000.values()), 4))


def write_paced(writer: InfluxClient, rows, rate: float, run: str, tick: float = 0.05) -> None:
    """Write `rows` as transactions at `rate` a second, the points due in each tick at once."""
    started, sent = time.monotonic(), 0
    while sent < len(rows):
        due = min(len(rows), int((time.monotonic() - started) * rate) + 1)
        writer.write_lines(transaction_lines(rows.iloc[sent:due], time.time_ns(), {"run": run}))
        sent = due
        time.sleep(max(0.0, started + sent / rate - time.monotonic(), tick))


def wait_for_scored(influx: InfluxClient, run: str, expected: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if influx.count(schema.SCORED_POINTS, schema.SCORED, f"\"run\" = '{run}'") >= expected:
            return
        time.sleep(0.25)
    raise RuntimeError(f"only part of run {run} came out scored within {timeout:.0f}s")


def stage_cpu(services: dict[str, Service]) -> dict[str, float]:
    """User+system CPU seconds of each stage: its programs (every shard's), their children."""
    totals = dict.fromkeys(STAGES, 0.0)
    for name, service in services.items():
        stage = next((s for s, programs in STAGES.items()
                      if name.split("-", 1)[0] in programs), None)
        if stage is None:
            continue
        try:
            process = psutil.Process(service.process.pid)
            for p in [process, *process.children(recursive=True)]:
                times = p.cpu_times()
                totals[stage] += times.user + times.system
        except psutil.Error:
            continue
    return totals


def format_table(summary: dict[str, Any]) -> str:
    """The figures as a Markdown table."""
    stages = list(STAGES)
    lines = [f"backend {summary['backend']}, {summary['machine_cpus']} CPUs",
             "| shards | capacity tx/s | " + " | ".join(f"{s} CPU s/1k tx" for s in stages)
             + " | all |", "| ---: | ---: |" + " ---: |" * (len(stages) + 1)]
    for r in summary["results"]:
        lines.append(f"| {r['shards']} | {r['capacity_per_s']:,.0f} | "
                     + " | ".join(f"{r['cpu_s_per_1000'][s]:.3f}" for s in stages)
                     + f" | {r['cpu_s_per_1000_total']:.3f} |")
    return "\n".join(lines)
