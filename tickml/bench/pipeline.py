"""`tickml bench pipeline`: throughput and latency of the whole stream, measured for real.

One run starts influxd, the model API, the UDF agent and kapacitord on free ports
and measures, on that same stack, three ways through it:

* micro-batched: the scoring task as shipped (up to 200 points per /predict call);
* the ceiling: the same stream with no UDF, a task that writes every transaction
  through `influxDBOut` (the scoring task's own, buffer and flush included) into
  another measurement. No agent can be faster than kapacitord and influxd alone;
* batch size 1: one synchronous HTTP call per point, as a naive agent does.

For each it measures

* capacity: a burst of transactions written at once, and the rate at which they
  come out (the highest rate the pipeline sustains);
* CPU seconds each process spent during the burst, which names the bottleneck, and
  the agent's CPU per point and its peak resident memory (VmHWM);
* latency from the write to the point being readable in InfluxDB, at a moderate rate
  and at a high one (1,000 transactions/s by default): a reader polls InfluxDB and
  notes when each point first appears; with it the agent's own `latency_ms` (from the
  transaction's timestamp to the moment it was scored).
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

from tickml import schema
from tickml.config import Settings
from tickml.data.prepare import load_split
from tickml.generator import transaction_lines
from tickml.influx import InfluxClient, influx_for
from tickml.kapacitor import SCORING_TASK, TaskDefinition, read_scripts
from tickml.stack.process import Service
from tickml.stack.services import LocalPipeline, local_pipeline
from tickml.udf.options import DEFAULTS

MICRO, CEILING, NAIVE = "micro-batched", "no UDF (ceiling)", "batch size 1"
#: The agent settings of the two scoring modes: batch size and longest wait.
AGENT_MODES = {MICRO: (DEFAULTS.batch_size, timedelta(seconds=DEFAULTS.max_wait)),
               NAIVE: (1, timedelta(0))}
CEILING_TASK = "bench_ceiling"
CEILING_MEASUREMENT = "bench_passthrough"
#: How often the reader asks InfluxDB for new points: the resolution of write→queryable.
POLL_SECONDS = 0.02
#: The shortest time between two writes of a paced run (a live source batches as much).
WRITE_TICK = 0.01
#: A paced run is left out when its rate is above this share of the burst capacity: the
#: pipeline could not keep up, and the latency would only measure the backlog.
PACED_LOAD_LIMIT = 1.0
#: The published targets, for the table (ratios are against baselines of the same run).
TARGETS = {"ceiling_share": 0.7, "speedup_over_naive": 20.0, "agent_cpu_us_per_point": 20.0,
           "queryable_p99_ms_at_high_rate": 250.0}


@dataclass(frozen=True)
class Latency:
    """Write→queryable latency of points written at `rate` per second."""

    rate: float
    points: int
    queryable_p50_ms: float
    queryable_p99_ms: float
    agent_p50_ms: float | None  # the agent's latency_ms; None without an agent
    agent_p99_ms: float | None


@dataclass(frozen=True)
class ModeResult:
    mode: str
    batch_size: int | None
    burst: int
    burst_seconds: float
    capacity_per_s: float
    cpu_seconds: dict[str, float]
    agent_cpu_us_per_point: float | None
    agent_peak_rss_mb: float | None  # VmHWM of the agent process after the burst
    latency: dict[str, Latency | None]  # "moderate"/"high"; None: above the capacity


def run_pipeline_benchmark(settings: Settings, burst: int, naive_burst: int, rate: float,
                           high_rate: float, seconds: float) -> dict[str, Any]:
    """Measure the micro-batched agent, the no-UDF ceiling and batch size 1 on one stack."""
    rows = load_split(settings, "test")
    load_before = psutil.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tickml-bench-") as tmp, \
            local_pipeline(settings, Path(tmp), api_workers=2) as pipeline:
        services = {s.name: s for s in (pipeline.influxd, pipeline.api, pipeline.agent,
                                        pipeline.kapacitord)}
        probe = Probe(pipeline.influx, influx_for(pipeline.settings), rows, services)
        try:
            _use_batching(pipeline, *AGENT_MODES[MICRO])
            micro = probe.measure(MICRO, AGENT_MODES[MICRO][0], burst, rate, high_rate, seconds)
            with ceiling_task(pipeline):
                ceiling = probe.measure(CEILING, None, burst, rate, high_rate, seconds)
            _use_batching(pipeline, *AGENT_MODES[NAIVE])
            naive = probe.measure(NAIVE, 1, naive_burst, rate, high_rate, seconds)
        finally:
            probe.reader.close()
    return summarise([micro, ceiling, naive], load_before)


def _use_batching(pipeline: LocalPipeline, batch_size: int, max_wait: timedelta) -> None:
    pipeline.define_tasks({SCORING_TASK: {"batch_size": batch_size, "max_wait": max_wait}})
    _wait_healthy(pipeline, SCORING_TASK)


def _wait_healthy(pipeline: LocalPipeline, task_id: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = pipeline.kapacitor.task(task_id)
        if state is not None and state.healthy:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{task_id} did not start")


def ceiling_script(scoring_script: str) -> str:
    """The scoring task without its UDF, writing to CEILING_MEASUREMENT instead of `scored`.

    Derived from the shipped script, so the ceiling always has the same `influxDBOut`
    (buffer, flush interval) as the scoring it is compared with.
    """
    # A UDF call and its property lines (`@fraud()` then `.batchSize(...)`, ...).
    without_udf, found = re.subn(r"^[ \t]*@\w+\(\)[^\n]*\n(?:[ \t]*(?:\.|//)[^\n]*\n)*", "",
                                 scoring_script, flags=re.MULTILINE)
    target = f".measurement('{schema.SCORED_POINTS}')"
    if found != 1 or target not in without_udf:
        raise ValueError(f"the scoring script has no single UDF call and {target}")
    return without_udf.replace(target, f".measurement('{CEILING_MEASUREMENT}')")


@contextmanager
def ceiling_task(pipeline: LocalPipeline) -> Iterator[None]:
    """The scoring task stopped and the no-UDF task running in its place, for a block."""
    script = read_scripts(pipeline.settings.kapacitor_scripts)[SCORING_TASK]
    definition = TaskDefinition.of(ceiling_script(script))
    pipeline.kapacitor.set_status(SCORING_TASK, "disabled")
    pipeline.kapacitor.create(CEILING_TASK, definition.script, {}, definition.dbrps)
    try:
        _wait_healthy(pipeline, CEILING_TASK)
        yield
    finally:
        pipeline.kapacitor.set_status(CEILING_TASK, "disabled")
        pipeline.kapacitor.set_status(SCORING_TASK, "enabled")


@dataclass
class Probe:
    """Writes transactions into the running stream and reads back what comes out."""

    writer: InfluxClient
    reader: InfluxClient  # a second client: the reader polls while the writer writes
    rows: pd.DataFrame
    services: dict[str, Service]

    def measure(self, mode: str, batch_size: int | None, burst: int, rate: float,
                high_rate: float, seconds: float) -> ModeResult:
        """Burst capacity and CPU, then write→queryable latency at each rate."""
        out = _output_of(mode)
        run = re.sub(r"\W+", "-", mode).strip("-")
        agent = psutil.Process(self.services["udf"].process.pid)
        sample = self.rows.sample(burst, replace=True, random_state=1)
        # Formatted before the clock starts: the figure is the pipeline's, not this client's.
        lines = transaction_lines(sample, time.time_ns(), {"run": f"{run}-burst"})
        cpu_before = _cpu_seconds(self.services)
        started = time.monotonic()
        for start in range(0, burst, 5000):
            self.writer.write_lines(lines[start:start + 5000])
        _wait_for_count(self.reader, out, f"{run}-burst", burst, timeout=600)
        burst_seconds = time.monotonic() - started
        cpu = {name: after - cpu_before[name]
               for name, after in _cpu_seconds(self.services).items()}
        capacity = burst / burst_seconds
        latency = {}
        for name, paced_rate in (("moderate", rate), ("high", high_rate)):
            fits = paced_rate <= PACED_LOAD_LIMIT * capacity
            latency[name] = (self.paced(out, f"{run}-{name}", paced_rate, seconds)
                             if fits else None)
        scored = out[0] == schema.SCORED_POINTS
        return ModeResult(
            mode, batch_size, burst, round(burst_seconds, 2), round(capacity, 1),
            {k: round(v, 2) for k, v in cpu.items()},
            round(1e6 * cpu["udf"] / burst, 1) if scored else None,
            round(_peak_rss_mb(agent), 1) if scored else None, latency)

    def paced(self, out: tuple[str, str], run: str, rate: float, seconds: float) -> Latency:
        """Write `rate` points a second for `seconds`, each stamped when it is sent, while a
        reader notes when each first becomes readable."""
        count = max(1, int(rate * seconds))
        paced = self.rows.sample(count, replace=True, random_state=2)
        reader = Reader(self.reader, out, run, count)
        thread = threading.Thread(target=reader.run, daemon=True)
        thread.start()
        started, sent = time.monotonic(), 0
        while sent < count:
            wrote_at = time.monotonic()
            due = min(count, int((wrote_at - started) * rate) + 1)
            stamp = time.time_ns()
            self.writer.write_lines(transaction_lines(paced.iloc[sent:due], stamp,
                                                      {"run": run}))
            reader.written.extend(range(stamp, stamp + due - sent))
            sent = due
            # At high rates the points due in each WRITE_TICK go in one write.
            time.sleep(max(0.0, max(started + sent / rate, wrote_at + WRITE_TICK)
                           - time.monotonic()))
        thread.join(timeout=seconds + 120)
        if reader.error is not None or len(reader.seen) < count:
            raise RuntimeError(f"only {len(reader.seen)} of {count} points of run {run} "
                               f"became readable: {reader.error or 'timed out'}")
        queryable = np.array([seen - stamp for stamp, seen in reader.seen.items()]) / 1e6
        agent = (_agent_latencies(self.reader, run) if out[0] == schema.SCORED_POINTS
                 else None)
        return Latency(rate, count, _p(queryable, 50), _p(queryable, 99),
                       None if agent is None else _p(agent, 50),
                       None if agent is None else _p(agent, 99))


class Reader:
    """Polls InfluxDB every POLL_SECONDS for the points of one run; notes when each appears.

    A point's timestamp is the moment it was written, so the time it is first read
    minus its timestamp is its write→queryable latency (too high by at most one poll).
    """

    def __init__(self, influx: InfluxClient, out: tuple[str, str], run: str,
                 expected: int, timeout: float = 120.0) -> None:
        self.influx, self.out, self.tag = influx, out, run
        self.expected, self.timeout = expected, timeout
        self.seen: dict[int, int] = {}  # point timestamp (ns) → first read (ns)
        self.written: list[int] = []  # timestamps in the order written (by the writer)
        self.error: Exception | None = None

    def run(self) -> None:
        measurement, field = self.out
        oldest = 0  # index in `written` of the oldest point not read yet
        deadline = time.monotonic() + self.timeout
        try:
            while len(self.seen) < self.expected and time.monotonic() < deadline:
                while oldest < len(self.written) and self.written[oldest] in self.seen:
                    oldest += 1
                if oldest < len(self.written):
                    # Only from the oldest unread point on, so each poll returns little.
                    self._poll(measurement, field, self.written[oldest])
                time.sleep(POLL_SECONDS)
        except Exception as exc:  # handed to the writer's thread, which raises it
            self.error = exc

    def _poll(self, measurement: str, field: str, since_ns: int) -> None:
        series = self.influx.query(f'SELECT "{field}" FROM "{measurement}" '
                                   f"WHERE \"run\" = '{self.tag}' AND time >= {since_ns}")
        now = time.time_ns()
        for one in series:
            for stamp, *_ in one.values:
                self.seen.setdefault(stamp, now)


def _output_of(mode: str) -> tuple[str, str]:
    """The measurement a mode writes to, and a field every one of its points carries."""
    return ((CEILING_MEASUREMENT, "Amount") if mode == CEILING
            else (schema.SCORED_POINTS, schema.LATENCY))


def _wait_for_count(influx: InfluxClient, out: tuple[str, str], run: str, expected: int,
                    timeout: float) -> None:
    measurement, field = out
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if influx.count(measurement, field, f"\"run\" = '{run}'") >= expected:
            return
        time.sleep(0.25)
    raise RuntimeError(f"only part of run {run} came out within {timeout:.0f}s")


def _agent_latencies(influx: InfluxClient, run: str) -> np.ndarray:
    records = influx.records(f'SELECT "{schema.LATENCY}" FROM "{schema.SCORED_POINTS}" '
                             f"WHERE \"run\" = '{run}'")
    return np.array([r[schema.LATENCY] for r in records])


def _p(values: np.ndarray, q: float) -> float:
    return round(float(np.percentile(values, q)), 2)


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


def _peak_rss_mb(process: psutil.Process) -> float:
    """The process's resident-memory high-water mark (Linux VmHWM), else its RSS now."""
    try:
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return process.memory_info().rss / 2**20


def summarise(results: list[ModeResult], load_before: tuple[float, ...]) -> dict[str, Any]:
    """Every mode's figures, and the headline figures against their same-run baselines."""
    by_mode = {r.mode: r for r in results}
    micro, ceiling, naive = by_mode[MICRO], by_mode[CEILING], by_mode[NAIVE]
    high = micro.latency["high"]
    headline = {
        "ceiling_share": round(micro.capacity_per_s / ceiling.capacity_per_s, 3),
        "speedup_over_naive": round(micro.capacity_per_s / naive.capacity_per_s, 1),
        # The same share by CPU cost: steadier than capacities when other work takes cores.
        "ceiling_share_by_cpu": round(_cpu_per_point(ceiling) / _cpu_per_point(micro), 3),
        "agent_cpu_us_per_point": micro.agent_cpu_us_per_point,
        "agent_peak_rss_mb": micro.agent_peak_rss_mb,
        "queryable_p99_ms_at_high_rate": high.queryable_p99_ms if high else None,
        "ceiling_queryable_p99_ms_at_high_rate":
            ceiling.latency["high"].queryable_p99_ms if ceiling.latency["high"] else None,
    }
    return {"headline": headline, "targets": TARGETS, "machine_cpus": psutil.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in psutil.getloadavg()],
            "poll_seconds": POLL_SECONDS, "measured_at": time.strftime("%Y-%m-%d %H:%M"),
            "modes": [asdict(r) for r in results]}


def _cpu_per_point(result: ModeResult) -> float:
    """CPU seconds of all four processes over the burst, per transaction."""
    return sum(result.cpu_seconds.values()) / result.burst


def format_table(summary: dict[str, Any]) -> str:
    """The figures as Markdown tables, with the headline ratios below them."""
    lines = ["| mode | burst | capacity tx/s | CPU s (kapacitord / agent / API / influxd) | "
             "agent µs/point | agent peak MB |", "| --- | ---: | ---: | --- | ---: | ---: |"]
    for r in summary["modes"]:
        cpu = r["cpu_seconds"]
        lines.append(f"| {r['mode']} | {r['burst']:,} | {r['capacity_per_s']:,.0f} | "
                     f"{cpu['kapacitord']:.1f} / {cpu['udf']:.1f} / {cpu['api']:.1f} / "
                     f"{cpu['influxd']:.1f} | {_show(r['agent_cpu_us_per_point'])} | "
                     f"{_show(r['agent_peak_rss_mb'])} |")
    lines += ["", "| mode | rate tx/s | write→queryable p50 / p99 ms | agent latency_ms "
              "p50 / p99 |", "| --- | ---: | ---: | ---: |"]
    for r in summary["modes"]:
        for name, figures in r["latency"].items():
            if figures is None:
                lines.append(f"| {r['mode']} | ({name}: above {PACED_LOAD_LIMIT:.0%} of "
                             "capacity, not run) | | |")
                continue
            agent = (f"{figures['agent_p50_ms']:.1f} / {figures['agent_p99_ms']:.1f}"
                     if figures["agent_p50_ms"] is not None else "")
            lines.append(f"| {r['mode']} | {figures['rate']:,.0f} | "
                         f"{figures['queryable_p50_ms']:.1f} / "
                         f"{figures['queryable_p99_ms']:.1f} | {agent} |")
    lines.append("")
    for name, value in summary["headline"].items():
        target = summary["targets"].get(name)
        lines.append(f"{name}: {_show(value)}" + (f" (target {target})" if target else ""))
    return "\n".join(lines)


def _show(value: float | None) -> str:
    return "" if value is None else f"{value:,.1f}" if value >= 10 else f"{value:.3g}"
