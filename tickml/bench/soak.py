"""`tickml bench soak`: the stack under the generator, with faults, judged by what matters.

For a given time and rate, faults from a seeded schedule (`bench.faults`, several
overlapping) hit the running stack. Then, by `transaction_id`: every transaction scored
exactly once (none missing, none twice), every malformed point marked with its reason,
the share scored live (not by the sweep) outside the fault windows, the time from each
fault to live scoring again (p50 and max per kind), one UDF connection per task run,
no panic or traceback in any log, and no memory growth trend in any process.
"""

from __future__ import annotations

import contextlib
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from tickml import schema
from tickml.bench.faults import FAULTS, Planned, SoakTarget, schedule
from tickml.bench.soak_stack import PROGRAMS, SoakStack, native_soak_stack
from tickml.config import Settings
from tickml.influx import InfluxClient, influx_for
from tickml.kapacitor import error_line

#: Seconds after a fault (after it is lifted) during which the stream may be not live.
RECOVERY_ALLOWANCE = 15.0
#: The longest a fault is followed to see the stream live again.
RECOVERY_HORIZON = 90.0
#: Seconds of transactions all scored live that make the stream live again.
LIVE_RUN_SECONDS = 5.0
#: The verdict's floor for the live share outside fault windows.
MIN_LIVE_SHARE = 0.99
#: A process whose memory grows faster than this (MB per minute) over its longest run,
#: and by more than LEAK_MIN_GROWTH_MB in all, shows a growth trend. The first
#: WARM_UP_SECONDS of a run (a model loading, caches filling) are left out, and a run
#: shorter than JUDGED_MINUTES after them is not judged.
LEAK_MB_PER_MINUTE = 2.0
LEAK_MIN_GROWTH_MB = 20.0
WARM_UP_SECONDS = 60.0
JUDGED_MINUTES = 2.0
#: influxd's cache grows with the data until it snapshots: reported, not judged.
NOT_JUDGED_FOR_MEMORY = {"influxd": "its write cache grows with the data until it snapshots"}
#: Lines that must not appear in any log.
LOG_PROBLEMS = ("panic:", "Traceback (most recent call last)", "fatal error:")
QUERY_CHUNK_NS = 60 * 1_000_000_000


@dataclass(frozen=True)
class SoakOptions:
    minutes: float = 5.0
    rate: float = 200.0
    seed: int = 1
    faults_per_minute: float = 3.0
    kinds: tuple[str, ...] = tuple(FAULTS)
    sample_seconds: float = 5.0


@dataclass
class Injected:
    """One fault as it happened."""

    kind: str
    planned_at: float
    started_ns: int = 0
    ended_ns: int = 0
    note: str = ""
    error: str = ""
    recovery_s: float | None = None

    def window(self) -> tuple[int, int]:
        """The fault's window: from its start until the allowance after it is lifted."""
        return self.started_ns, self.ended_ns + int(RECOVERY_ALLOWANCE * 1e9)


@dataclass
class MemorySampler:
    """Samples each program's resident memory (VmRSS, with its children) every few seconds."""

    target: SoakStack
    every: float
    samples: dict[str, list[tuple[float, int, float]]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> MemorySampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            for name in PROGRAMS:
                processes = self.target.processes(name)
                if not processes:
                    continue
                rss = 0
                for process in processes:
                    with contextlib.suppress(psutil.Error):
                        rss += process.memory_info().rss
                self.samples.setdefault(name, []).append(
                    (time.monotonic(), processes[0].pid, rss / 2**20))


def run_soak(project: Settings, options: SoakOptions,
             report: Callable[[str], None] = print, docker: bool = False) -> dict[str, Any]:
    """Run a soak of `project`'s model and data on the native stack, or with `docker` on
    the Compose stack; return its figures and verdict."""
    seconds = options.minutes * 60
    plan = schedule(seconds, options.seed, options.faults_per_minute, list(options.kinds))
    report(f"soak: {seconds:.0f} s at {options.rate:g} transactions/s, {len(plan)} faults "
           f"(seed {options.seed}, {'Docker' if docker else 'native'} stack)")
    if docker:
        from tickml.bench.soak_docker import docker_soak_stack as soak_stack
    else:
        soak_stack = native_soak_stack
    with tempfile.TemporaryDirectory(prefix="tickml-soak-") as tmp, \
            soak_stack(project, Path(tmp), options.rate) as soak:
        sampler = MemorySampler(soak, options.sample_seconds).start()
        started_ns = time.time_ns()
        injected = inject_on_schedule(soak, plan, seconds, report)
        bad = soak.bad
        soak.stop_generator()
        ended_ns = time.time_ns()
        sampler.stop()
        influx = influx_for(soak.settings)
        try:
            report("soak: waiting for the sweep to score what the stream missed")
            wait_for_sweep(influx, started_ns, ended_ns, bad)
            results = judge(influx, soak, options, injected, bad, started_ns, ended_ns,
                            sampler.samples)
        finally:
            influx.close()
    results["plan"] = [asdict(p) for p in plan]
    results["stack"] = "docker" if docker else "native"
    return results


def inject_on_schedule(target: SoakTarget, plan: list[Planned], seconds: float,
                       report: Callable[[str], None]) -> list[Injected]:
    """Inject each planned fault at its time, each in its own thread so faults overlap."""
    began = time.monotonic()
    injected: list[Injected] = []
    threads = []
    for planned in plan:
        _sleep_until(began + planned.at)
        record = Injected(planned.kind, planned.at)
        injected.append(record)
        thread = threading.Thread(target=_inject, args=(target, record, report), daemon=True)
        thread.start()
        threads.append(thread)
    _sleep_until(began + seconds)
    for thread in threads:
        thread.join(timeout=120)
    return injected


def _inject(target: SoakTarget, record: Injected, report: Callable[[str], None]) -> None:
    record.started_ns = time.time_ns()
    try:
        record.note = FAULTS[record.kind].inject(target)
    except Exception as exc:  # a fault that could not be injected is recorded, not fatal
        record.error = error_line(exc)
    record.ended_ns = time.time_ns()
    report(f"soak: {record.planned_at:6.1f} s  {record.kind:<16} "
           f"{record.error or record.note}")


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def wait_for_sweep(influx: InfluxClient, start_ns: int, end_ns: int, bad: dict[str, str],
                   timeout: float = 150.0) -> None:
    """Wait until every transaction of the soak has a scored point (the sweep ran)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outcomes = transaction_outcomes(influx, start_ns, end_ns)
        if not any(o.points == 0 or (not o.scored and o.id not in bad) for o in outcomes):
            return
        time.sleep(5)


@dataclass(frozen=True)
class Outcome:
    """How one transaction came out of the pipeline."""

    id: str
    time_ns: int
    points: int  # scored points carrying its id: exactly one is right
    scored: bool
    live: bool  # scored by the stream, not by the sweep
    reason: str


def transaction_outcomes(influx: InfluxClient, start_ns: int, end_ns: int) -> list[Outcome]:
    """Every transaction stamped in [start, end) with its scored points, by transaction id."""
    transactions: dict[str, int] = {}
    points: dict[str, list[dict[str, Any]]] = {}
    for chunk_start in range(start_ns, end_ns, QUERY_CHUNK_NS):
        window = f"time >= {chunk_start} AND time < {min(chunk_start + QUERY_CHUNK_NS, end_ns)}"
        for row in influx.records(f'SELECT "{schema.TRANSACTION_ID}" FROM '
                                  f'"{schema.TRANSACTIONS}" WHERE {window}'):
            transactions[row[schema.TRANSACTION_ID]] = row["time"]
        for row in influx.records(
                f'SELECT "{schema.TRANSACTION_ID}", "{schema.SCORED}", "{schema.RESCORED}", '
                f'"{schema.REASON}" FROM "{schema.SCORED_POINTS}" WHERE {window}'):
            points.setdefault(row[schema.TRANSACTION_ID], []).append(row)
    outcomes = []
    for tx, stamped in {**{tx: rows[0]["time"] for tx, rows in points.items()},
                        **transactions}.items():
        rows = points.get(tx, [])
        scored = any(row[schema.SCORED] is True for row in rows)
        live = scored and not any(row[schema.RESCORED] for row in rows)
        reason = next((row[schema.REASON] for row in rows if row[schema.REASON]), "")
        outcomes.append(Outcome(tx, stamped, len(rows), scored, live, reason or ""))
    return sorted(outcomes, key=lambda o: o.time_ns)


def judge(influx: InfluxClient, soak: SoakStack, options: SoakOptions,
          injected: list[Injected], bad: dict[str, str], start_ns: int, end_ns: int,
          samples: dict[str, list[tuple[float, int, float]]]) -> dict[str, Any]:
    """The soak's figures and its verdict."""
    outcomes = transaction_outcomes(influx, start_ns, end_ns)
    good = [o for o in outcomes if o.id not in bad]
    measure_recoveries(good, injected)
    logs = soak.collect_logs()
    figures = {
        "options": asdict(options),
        "machine": {"cpus": psutil.cpu_count(), "platform": platform.platform()},
        "transactions": len(outcomes),
        "missing": [o.id for o in good if o.points == 0][:20],
        "missing_count": sum(o.points == 0 for o in good),
        "doubled_count": sum(o.points > 1 for o in outcomes),
        "unscored_count": sum(o.points == 1 and not o.scored for o in good),
        "bad_points": marked_bad_points(outcomes, bad),
        "live_share_outside_faults": live_share_outside(good, injected),
        "recovery_seconds": recovery_by_kind(injected),
        "faults": [asdict(record) for record in injected],
        "udf_connections": soak.udf_connections(),
        "log_problems": log_problems(logs),
        "subscription_refusals": _count_in(logs / "influxd.log",
                                           "invalid subscription token"),
        "memory": memory_trends(samples),
    }
    figures["verdict"] = verdict(figures, options)
    return figures


def measure_recoveries(outcomes: list[Outcome], injected: list[Injected]) -> None:
    """Each fault's time to live scoring: from its start to the first transaction that
    begins LIVE_RUN_SECONDS of transactions all scored live (0 when it left none
    otherwise; None when none came within RECOVERY_HORIZON of its end). A fault that
    struck before the stream recovered from an earlier one counts in both."""
    times = np.array([o.time_ns for o in outcomes], dtype=np.int64)
    for record in injected:
        first, last = np.searchsorted(
            times, [record.started_ns, record.ended_ns + int(RECOVERY_HORIZON * 1e9)])
        window = outcomes[first:last]
        if all(o.live for o in window):
            record.recovery_s = 0.0
            continue
        start = first_live_run(window)
        record.recovery_s = (None if start is None
                             else max(0.0, (start.time_ns - record.started_ns) / 1e9))


def first_live_run(outcomes: list[Outcome]) -> Outcome | None:
    """The first transaction after which LIVE_RUN_SECONDS of transactions are all live."""
    run_start: Outcome | None = None
    for outcome in outcomes:
        if not outcome.live:
            run_start = None
            continue
        run_start = run_start or outcome
        if outcome.time_ns - run_start.time_ns >= LIVE_RUN_SECONDS * 1e9:
            return run_start
    return None


def recovery_by_kind(injected: list[Injected]) -> dict[str, dict[str, Any]]:
    """Per fault kind: how many, p50 and max seconds to live scoring, and the unrecovered."""
    out = {}
    for kind in sorted({record.kind for record in injected}):
        times = [r.recovery_s for r in injected if r.kind == kind and not r.error]
        known = [t for t in times if t is not None]
        out[kind] = {"count": len(times), "unrecovered": len(times) - len(known),
                     "p50": round(statistics.median(known), 1) if known else None,
                     "max": round(max(known), 1) if known else None}
    return out


def live_share_outside(outcomes: list[Outcome], injected: list[Injected]) -> dict[str, Any]:
    """The share scored live among transactions stamped outside every fault's window."""
    windows = [record.window() for record in injected]
    outside = [o for o in outcomes
               if o.scored and not any(a <= o.time_ns <= b for a, b in windows)]
    live = sum(o.live for o in outside)
    return {"transactions": len(outside), "live": live,
            "share": round(live / len(outside), 5) if outside else None}


def marked_bad_points(outcomes: list[Outcome], bad: dict[str, str]) -> dict[str, Any]:
    """Each malformed point's scored point: unscored, with the reason expected."""
    by_id = {o.id: o for o in outcomes}
    wrong = {tx: (by_id[tx].reason if tx in by_id else "no scored point")
             for tx, reason in bad.items()
             if tx not in by_id or by_id[tx].scored or by_id[tx].reason != reason}
    return {"written": len(bad), "marked": len(bad) - len(wrong), "wrong": wrong}


def log_problems(logs: Path) -> dict[str, int]:
    """Per log file, the lines that show a panic or a traceback."""
    found = {}
    for log in sorted(logs.glob("*.log")):
        count = sum(_count_in(log, problem) for problem in LOG_PROBLEMS)
        if count:
            found[log.name] = count
    return found


def _count_in(path: Path, text: str) -> int:
    try:
        return path.read_text(errors="replace").count(text)
    except OSError:
        return 0


def memory_trends(samples: dict[str, list[tuple[float, int, float]]]) -> dict[str, Any]:
    """Per program, the growth of its longest run without a restart (MB per minute)."""
    trends = {}
    for name, rows in samples.items():
        runs: dict[int, list[tuple[float, float]]] = {}
        for moment, pid, rss in rows:
            runs.setdefault(pid, []).append((moment, rss))
        warm = [[(m, r) for m, r in run if m - run[0][0] >= WARM_UP_SECONDS]
                for run in runs.values()]
        longest = max(warm, key=lambda run: run[-1][0] - run[0][0] if run else -1.0)
        minutes = (longest[-1][0] - longest[0][0]) / 60 if longest else 0.0
        if len(longest) < 6 or minutes < JUDGED_MINUTES:
            trends[name] = {"judged": False,
                            "why": f"no run of {JUDGED_MINUTES:g} minutes without a restart "
                                   f"after its first {WARM_UP_SECONDS:.0f} s"}
            continue
        t = np.array([m for m, _ in longest])
        rss = np.array([r for _, r in longest])
        slope = float(np.polyfit((t - t[0]) / 60, rss, 1)[0])
        growth = float(rss[-1] - rss[0])
        leak = slope > LEAK_MB_PER_MINUTE and growth > LEAK_MIN_GROWTH_MB
        trends[name] = {"minutes": round(minutes, 1), "mb_first": round(float(rss[0]), 1),
                        "mb_last": round(float(rss[-1]), 1),
                        "mb_per_minute": round(slope, 2), "grows": leak,
                        "judged": name not in NOT_JUDGED_FOR_MEMORY,
                        **({"why": NOT_JUDGED_FOR_MEMORY[name]}
                           if name in NOT_JUDGED_FOR_MEMORY else {})}
    return trends


def verdict(figures: dict[str, Any], options: SoakOptions) -> dict[str, Any]:
    """What failed, by the soak's rules; passed when nothing did."""
    failures = []
    if figures["missing_count"]:
        failures.append(f"{figures['missing_count']} transactions have no scored point")
    if figures["doubled_count"]:
        failures.append(f"{figures['doubled_count']} transactions have more than one")
    if figures["unscored_count"]:
        failures.append(f"{figures['unscored_count']} good transactions left unscored")
    if figures["bad_points"]["wrong"]:
        failures.append(f"malformed points not marked with their reason: "
                        f"{figures['bad_points']['wrong']}")
    share = figures["live_share_outside_faults"]["share"]
    if share is None or share < MIN_LIVE_SHARE:
        failures.append(f"live share outside fault windows {share} < {MIN_LIVE_SHARE}")
    unrecovered = {k: v["unrecovered"] for k, v in figures["recovery_seconds"].items()
                   if v["unrecovered"]}
    if unrecovered:
        failures.append(f"faults after which the stream never scored live again: "
                        f"{unrecovered}")
    injected = {f["kind"] for f in figures["faults"] if not f["error"]}
    if set(options.kinds) - injected:
        failures.append(f"fault kinds never injected: {sorted(set(options.kinds) - injected)}")
    if figures["udf_connections"] != 1:
        failures.append(f"kapacitord holds {figures['udf_connections']} UDF connections, not 1")
    if figures["log_problems"]:
        failures.append(f"panics or tracebacks in the logs: {figures['log_problems']}")
    growing = [name for name, trend in figures["memory"].items()
               if trend.get("judged") and trend.get("grows")]
    if growing:
        failures.append(f"memory grows steadily in {growing}")
    return {"passed": not failures, "failures": failures}


def format_summary(results: dict[str, Any]) -> str:
    """The soak's figures as a few lines, then the verdict."""
    share = results["live_share_outside_faults"]
    lines = [
        f"transactions {results['transactions']:,}: missing {results['missing_count']}, "
        f"twice {results['doubled_count']}, left unscored {results['unscored_count']}",
        f"malformed points marked with their reason: {results['bad_points']['marked']} of "
        f"{results['bad_points']['written']}",
        f"live share outside fault windows: {share['share']} ({share['live']:,} of "
        f"{share['transactions']:,})",
        "seconds to live scoring after each fault kind (p50 / max):",
        *(f"  {kind:<16} {v['p50']} / {v['max']}  ({v['count']}x"
          + (f", {v['unrecovered']} never live again)" if v["unrecovered"] else ")")
          for kind, v in results["recovery_seconds"].items()),
        f"UDF connections at the end: {results['udf_connections']}",
        f"log problems: {results['log_problems'] or 'none'}",
        "memory (MB per minute over the longest run): " + ", ".join(
            f"{name} {t['mb_per_minute']}" for name, t in results["memory"].items()
            if "mb_per_minute" in t),
        "verdict: " + ("passed" if results["verdict"]["passed"] else
                       "FAILED: " + "; ".join(results["verdict"]["failures"])),
    ]
    return "\n".join(lines)
