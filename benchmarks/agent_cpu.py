"""The UDF agent's CPU time per point, through a real influxd, kapacitord and model API.

    .venv/bin/python benchmarks/agent_cpu.py            # 20,000 points, about a minute
    .venv/bin/python benchmarks/agent_cpu.py --points 5000 --bursts 3

Trains a small model in a throw-away project, starts the stream on free ports
(`local_pipeline`), writes a warm-up burst, then `--bursts` bursts of `--points`
transactions. For each burst it reads the agent process's user+system CPU time from
/proc/<pid>/stat before the burst is written and after every point of it reached
`scored`, and prints microseconds per point. The agent is one process with no children,
so its own /proc entry holds all its CPU time (both threads of every connection).
Run it before and after a change to the agent, on the same machine, and compare; the
other processes on the machine share the cores, so only ratios within a day mean much.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from tickml import schema
from tickml.config import Settings
from tickml.data.prepare import load_split, prepare_dataset
from tickml.generator import transaction_lines
from tickml.influx import InfluxClient
from tickml.modeling.train import train_default_model
from tickml.stack.services import local_pipeline

SCRIPTS = Path(__file__).resolve().parents[1] / "compose" / "kapacitor"
WRITE_CHUNK = 5000


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of process `pid`, from /proc (fields 14 and 15 of stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scored_count(influx: InfluxClient, run: str) -> int:
    return influx.count(schema.SCORED_POINTS, schema.SCORED, f"\"run\" = '{run}'")


def burst(influx: InfluxClient, rows, run: str, timeout: float = 600) -> None:
    """Write `rows` tagged `run=<run>` and wait until all of them are in `scored`."""
    lines = transaction_lines(rows, time.time_ns(), tags={"run": run}, spacing_ns=1000)
    for start in range(0, len(lines), WRITE_CHUNK):
        influx.write_lines(lines[start:start + WRITE_CHUNK])
    deadline = time.monotonic() + timeout
    while scored_count(influx, run) < len(lines):
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run}: not every point reached scored in {timeout:.0f}s")
        time.sleep(0.25)


def wait_until_scoring(pipeline, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = pipeline.kapacitor.task("fraud_scoring")
        if state is not None and state.healthy:
            return
        time.sleep(0.2)
    raise RuntimeError("fraud_scoring never started")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=20_000, help="transactions per burst")
    parser.add_argument("--bursts", type=int, default=1, help="measured bursts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tickml-agent-cpu-") as tmp:
        settings = Settings(root=Path(tmp) / "project", kapacitor_scripts=SCRIPTS)
        prepare_dataset(settings, rows=60_000, seed=7)
        train_default_model(settings, params={"n_estimators": 80, "learning_rate": 0.1}, seed=7)
        rows = load_split(settings, "test")
        with local_pipeline(settings, Path(tmp) / "stack", api_workers=1) as pipeline:
            pid = pipeline.agent.process.pid
            wait_until_scoring(pipeline)
            burst(pipeline.influx, rows.sample(2000, replace=True, random_state=0), "warm-up")
            for i in range(args.bursts):
                sample = rows.sample(args.points, replace=True, random_state=i + 1)
                before = cpu_seconds(pid)
                started = time.monotonic()
                burst(pipeline.influx, sample, f"burst-{i}")
                used = cpu_seconds(pid) - before
                print(f"burst {i}: {args.points} points in {time.monotonic() - started:.1f}s, "
                      f"agent CPU {used:.2f}s = {used / args.points * 1e6:.1f} µs/point")


if __name__ == "__main__":
    main()
