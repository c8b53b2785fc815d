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
import threading
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
    """Measure each shard count in turn, on a stack of its own, then InfluxDB's write
    ceiling alone; the figures, the capacity model they give, and the machine."""
    rows = load_split(settings, "test")
    results = []
    for shards in shard_counts:
        with tempfile.TemporaryDirectory(prefix="tickml-scaling-") as tmp, \
                local_pipeline(settings, Path(tmp), api_workers=2, shards=shards,
                               backend=backend) as pipeline:
            results.append(measure_shards(pipeline, rows, shards, backend, burst, rate,
                                          seconds))
    ceiling = measure_influx_ceiling(rows, points=max(burst, 100_000))
    return {"backend": backend, "machine_cpus": psutil.cpu_count(),
            "measured_at": time.strftime("%Y-%m-%d %H:%M"),
            "load_average_after": [round(x, 2) for x in psutil.getloadavg()],
            "results": [asdict(r) for r in results], "influxd_alone": ceiling,
            "capacity_model": capacity_model(results[0].cpu_s_per_1000)}


def measure_influx_ceiling(rows, points: int, writers: int = 2) -> dict[str, float]:
    """influxd alone (no subscription): transactions written in batches of 5,000 by
    `writers` clients at once, as fast as it takes them; points/s and CPU per point."""
    from tickml.stack.services import start_influxd
    from tickml.stack.users import StackLogins

    admin = StackLogins.generated().influx_admin
    with tempfile.TemporaryDirectory(prefix="tickml-ceiling-") as tmp:
        service, config = start_influxd(Path(tmp), admin)
        try:
            clients = [InfluxClient(config.url, "ceiling", username=admin.user,
                                    password=admin.password, timeout=120)
                       for _ in range(writers)]
            clients[0].create_database()
            share = points // writers
            batches = [[transaction_lines(rows.sample(5000, replace=True, random_state=i),
                                          time.time_ns() + i * 10_000_000, {"writer": str(w)})
                        for i in range(share // 5000)] for w in range(writers)]
            process = psutil.Process(service.process.pid)
            cpu_before, started = sum(process.cpu_times()[:2]), time.monotonic()
            threads = [threading.Thread(target=lambda c=c, b=b: [c.write_lines(x) for x in b])
                       for c, b in zip(clients, batches, strict=True)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.monotonic() - started
            cpu = sum(process.cpu_times()[:2]) - cpu_before
        finally:
            service.stop()
    written = sum(len(batch) for writer in batches for batch in writer)
    return {"points": written, "writers": writers, "points_per_s": round(written / seconds),
            "cpu_s_per_1000_points": round(1000 * cpu / written, 4),
            "cores_busy": round(cpu / seconds, 2)}


def capacity_model(cpu_s_per_1000: dict[str, float], rates: tuple[int, ...] = (10_000, 50_000,
                   100_000), utilisation: float = 0.7) -> dict[str, dict[str, float]]:
    """Cores each stage needs at each rate, from its measured CPU per transaction, kept
    at `utilisation` of each core (headroom for bursts and faults)."""
    return {f"{rate}_tx_per_s": {stage: round(rate * cpu / 1000 / utilisation, 1)
                                 for stage, cpu in cpu_s_per_1000.items()}
            for rate in rates}


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
    """The figures as Markdown tables: per shard count, InfluxDB alone, the capacity model."""
    ceiling = summary["influxd_alone"]
    model = summary["capacity_model"]
    stages = list(STAGES)
    lines = [format_shards(summary), "",
             f"influxd alone: {ceiling['points_per_s']:,} points/s from {ceiling['writers']} "
             f"writers, {ceiling['cpu_s_per_1000_points']:.3f} CPU s per 1,000 points, "
             f"{ceiling['cores_busy']} cores busy", "",
             "| cores at 70 % (one shard's costs) | " + " | ".join(stages) + " |",
             "| ---: |" + " ---: |" * len(stages)]
    for rate, cores in model.items():
        lines.append(f"| {rate.split('_')[0]} tx/s | "
                     + " | ".join(f"{cores[s]}" for s in stages) + " |")
    return "\n".join(lines)


def format_shards(summary: dict[str, Any]) -> str:
    """The per-shard-count figures as a Markdown table."""
    stages = list(STAGES)
    lines = [f"backend {summary['backend']}, {summary['machine_cpus']} CPUs",
             "| shards | capacity tx/s | " + " | ".join(f"{s} CPU s/1k tx" for s in stages)
             + " | all |", "| ---: | ---: |" + " ---: |" * (len(stages) + 1)]
    for r in summary["results"]:
        lines.append(f"| {r['shards']} | {r['capacity_per_s']:,.0f} | "
                     + " | ".join(f"{r['cpu_s_per_1000'][s]:.3f}" for s in stages)
                     + f" | {r['cpu_s_per_1000_total']:.3f} |")
    return "\n".join(lines)
