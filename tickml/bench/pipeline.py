"""`tickml bench pipeline`: throughput and latency of the whole stream, measured for real.

One run starts influxd, the model API, the UDF agent and kapacitord on free ports
and measures two agent settings on the same stack: micro-batching (the default,
up to 200 points per /predict call) and batch size 1 (one synchronous HTTP call
per point, as a naive agent does). For each it measures

* capacity: a burst of transactions written at once, and the rate at which they
  come out in `scored` (the highest rate the pipeline sustains);
* latency at a fixed moderate rate: the agent's `latency_ms`, from the
  transaction's timestamp (when it was written) to the moment it was scored;
* CPU seconds each process spent during the burst, which names the bottleneck.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from tickml import schema
from tickml.config import Settings
from tickml.data.prepare import load_split
from tickml.generator import transaction_lines
from tickml.influx import InfluxClient
from tickml.stack.process import Service
from tickml.stack.services import LocalPipeline, local_pipeline
from tickml.udf.options import DEFAULTS

MODES = {"micro-batched": (DEFAULTS.batch_size, timedelta(seconds=DEFAULTS.max_wait)),
         "batch size 1": (1, timedelta(0))}


@dataclass(frozen=True)
class ModeResult:
    mode: str
    batch_size: int
    burst: int
    burst_seconds: float
    capacity_per_s: float
    rate: float
    latency_p50_ms: float
    latency_p99_ms: float
    cpu_seconds: dict[str, float]


def run_pipeline_benchmark(settings: Settings, burst: int, naive_burst: int, rate: float,
                           seconds: float) -> list[ModeResult]:
    """Measure both agent settings on one freshly started stack."""
    rows = load_split(settings, "test")
    with tempfile.TemporaryDirectory(prefix="tickml-bench-") as tmp, \
            local_pipeline(settings, Path(tmp), api_workers=2) as pipeline:
        services = {s.name: s for s in (pipeline.influxd, pipeline.api, pipeline.agent,
                                        pipeline.kapacitord)}
        results = []
        for mode, (batch_size, max_wait) in MODES.items():
            _use_batching(pipeline, batch_size, max_wait)
            size = burst if batch_size > 1 else naive_burst
            results.append(_measure(mode, batch_size, pipeline.influx, rows, size, rate,
                                    seconds, services))
        return results


def _use_batching(pipeline: LocalPipeline, batch_size: int, max_wait: timedelta) -> None:
    pipeline.define_tasks({"fraud_scoring": {"batch_size": batch_size, "max_wait": max_wait}})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = pipeline.kapacitor.task("fraud_scoring")
        if state is not None and state.healthy:
            return
        time.sleep(0.2)
    raise RuntimeError("fraud_scoring did not start")


def _measure(mode: str, batch_size: int, influx: InfluxClient, rows: pd.DataFrame, burst: int,
             rate: float, seconds: float, services: dict[str, Service]) -> ModeResult:
    run = mode.replace(" ", "-")
    sample = rows.sample(burst, replace=True, random_state=1)
    # Formatted before the clock starts: the figure is the pipeline's, not this client's.
    lines = transaction_lines(sample, time.time_ns(), {"run": f"{run}-burst"})
    cpu_before = _cpu_seconds(services)
    started = time.monotonic()
    for start in range(0, burst, 5000):
        influx.write_lines(lines[start:start + 5000])
    _wait_for(influx, f"{run}-burst", burst, timeout=600)
    burst_seconds = time.monotonic() - started
    cpu = {name: after - cpu_before[name] for name, after in _cpu_seconds(services).items()}

    count = int(rate * seconds)
    paced = rows.sample(count, replace=True, random_state=2)
    for i in range(count):  # one point per write, as a live source sends them
        influx.write_lines(transaction_lines(paced.iloc[i:i + 1], time.time_ns(),
                                             {"run": f"{run}-paced"}))
        time.sleep(max(0.0, started + burst_seconds + (i + 1) / rate - time.monotonic()))
    latencies = _wait_for(influx, f"{run}-paced", count, timeout=120)
    return ModeResult(mode, batch_size, burst, round(burst_seconds, 2),
                      round(burst / burst_seconds, 1), rate,
                      round(float(np.percentile(latencies, 50)), 2),
                      round(float(np.percentile(latencies, 99)), 2),
                      {k: round(v, 2) for k, v in cpu.items()})


def _wait_for(influx: InfluxClient, run: str, expected: int, timeout: float) -> np.ndarray:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if influx.count(schema.SCORED_POINTS, schema.LATENCY, f"\"run\" = '{run}'") >= expected:
            break
        time.sleep(0.25)
    else:
        raise RuntimeError(f"only part of run {run} was scored within {timeout:.0f}s")
    records = influx.records(f'SELECT "{schema.LATENCY}" FROM "{schema.SCORED_POINTS}" '
                             f"WHERE \"run\" = '{run}'")
    return np.array([r[schema.LATENCY] for r in records])


def _cpu_seconds(services: dict[str, Service]) -> dict[str, float]:
    """User+system CPU of each service, its child processes (gunicorn workers) included."""
    totals = {}
    for name, service in services.items():
        process = psutil.Process(service.process.pid)
        total = 0.0
        for p in [process, *process.children(recursive=True)]:
            times = p.cpu_times()
            total += times.user + times.system
        totals[name] = total
    return totals


def write_results(results: list[ModeResult], path: Path) -> None:
    """Write both modes' figures, the speed-up and the machine's CPU count as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    micro, naive = results
    summary = {"speedup": round(micro.capacity_per_s / naive.capacity_per_s, 1),
               "machine_cpus": psutil.cpu_count(), "measured_at": time.strftime("%Y-%m-%d"),
               "modes": [asdict(r) for r in results]}
    path.write_text(json.dumps(summary, indent=2) + "\n")


def format_table(results: list[ModeResult]) -> str:
    """The figures as a Markdown table, with the speed-up below it."""
    lines = ["| agent | burst | capacity tx/s | p50 ms | p99 ms | CPU s (kapacitord / agent / "
             "API / influxd) |", "| --- | ---: | ---: | ---: | ---: | --- |"]
    for r in results:
        cpu = r.cpu_seconds
        lines.append(f"| {r.mode} | {r.burst:,} | {r.capacity_per_s:,.0f} | "
                     f"{r.latency_p50_ms:.1f} | {r.latency_p99_ms:.1f} | {cpu['kapacitord']:.1f} / "
                     f"{cpu['udf']:.1f} / {cpu['api']:.1f} / {cpu['influxd']:.1f} |")
    micro, naive = results
    lines.append(f"\nmicro-batching sustains {micro.capacity_per_s / naive.capacity_per_s:.1f}x "
                 "the rate of one HTTP call per point")
    return "\n".join(lines)
