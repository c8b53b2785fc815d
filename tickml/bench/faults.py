"""The faults `tickml bench soak` injects, and the seeded schedule it injects them by.

Each fault acts on a `SoakTarget` (the native stack or the Docker one) the way the
outside world would: a process killed or frozen, the scoring task disabled or edited as
Chronograf does it, `./up.sh` run again, another model promoted, malformed points
written among good ones.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tickml.kapacitor import SCORING_TASK, KapacitorClient

#: Seconds a frozen API stays frozen.
FREEZE_SECONDS = 20.0


class SoakTarget(Protocol):
    """What the faults need of a running stack."""

    def pid(self, name: str) -> int:
        """The pid of program `name` (influxd, kapacitord, udf, api) now; 0 when down."""

    def api_worker_pids(self) -> list[int]:
        """The API server's worker processes."""

    def send(self, name: str, signum: int, with_children: bool = False) -> None:
        """Send `signum` to program `name` (and its children)."""

    def kapacitor(self) -> KapacitorClient:
        """A client of Kapacitor's task API, logged in as tickml."""

    def up_again(self) -> None:
        """Start the stack again as a user would while it runs (`./up.sh`)."""

    def promote_another_model(self) -> str:
        """Promote a production model other than the current one; its reference."""

    def write_bad_points(self) -> dict[str, str]:
        """Write malformed transactions among good ones: {transaction id: expected reason}."""


@dataclass(frozen=True)
class Fault:
    """One kind of fault: how to inject it, and how long it lasts by itself."""

    kind: str
    description: str
    inject: Callable[[SoakTarget], str]  # returns a note for the record
    duration: float = 0.0  # seconds the fault holds before it is lifted (a freeze)


def _kill(name: str, with_children: bool = False) -> Callable[[SoakTarget], str]:
    def inject(target: SoakTarget) -> str:
        pid = target.pid(name)
        target.send(name, signal.SIGKILL, with_children)
        return f"pid {pid}"
    return inject


def _kill_api_worker(target: SoakTarget) -> str:
    workers = target.api_worker_pids()
    if not workers:
        return "no worker running"
    victim = min(workers)
    signal_process(victim, signal.SIGKILL)
    return f"worker pid {victim} of {len(workers)}"


def _freeze_api(target: SoakTarget) -> str:
    target.send("api", signal.SIGSTOP, with_children=True)
    try:
        time.sleep(FREEZE_SECONDS)
    finally:
        target.send("api", signal.SIGCONT, with_children=True)
    return f"frozen {FREEZE_SECONDS:.0f} s"


def _toggle_scoring(target: SoakTarget) -> str:
    """Disable and enable the scoring task, then save it as Chronograf's editor does."""
    kapacitor = target.kapacitor()
    try:
        kapacitor.set_status(SCORING_TASK, "disabled")
        kapacitor.set_status(SCORING_TASK, "enabled")
        task = kapacitor.task(SCORING_TASK)
        # Chronograf saves a script with the task's dbrps, disabled, then enables it.
        body = {"script": task.script, "status": "disabled", "type": "stream",
                "dbrps": [{"db": db, "rp": rp} for db, rp in task.dbrps]}
        saved = kapacitor.session.patch(f"{kapacitor.url}/kapacitor/v1/tasks/{SCORING_TASK}",
                                        json=body, timeout=kapacitor.timeout)
        saved.raise_for_status()
        kapacitor.set_status(SCORING_TASK, "enabled")
    finally:
        kapacitor.close()
    return "disabled, enabled, saved as Chronograf does"


def _up_again(target: SoakTarget) -> str:
    target.up_again()
    return "up again"


def _promote(target: SoakTarget) -> str:
    return f"promoted {target.promote_another_model()}"


def _bad_points(target: SoakTarget) -> str:
    return f"{len(target.write_bad_points())} malformed among good ones"


def signal_process(pid: int, signum: int) -> None:
    """Send `signum` to `pid`, ignoring a process that has just gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


FAULTS: dict[str, Fault] = {fault.kind: fault for fault in (
    Fault("kill-agent", "SIGKILL of the UDF agent", _kill("udf")),
    Fault("kill-kapacitord", "SIGKILL of kapacitord", _kill("kapacitord")),
    Fault("kill-api-worker", "SIGKILL of one API worker", _kill_api_worker),
    Fault("kill-api", "SIGKILL of the whole API server", _kill("api", with_children=True)),
    Fault("kill-influxd", "SIGKILL of influxd", _kill("influxd")),
    Fault("freeze-api", f"SIGSTOP of the API for {FREEZE_SECONDS:.0f} s", _freeze_api,
          duration=FREEZE_SECONDS),
    Fault("toggle-task", "the scoring task disabled, enabled and saved as Chronograf does",
          _toggle_scoring),
    Fault("up-again", "./up.sh again mid-stream", _up_again),
    Fault("promote", "another model promoted", _promote),
    Fault("bad-points", "malformed points among good ones", _bad_points),
)}


@dataclass(frozen=True)
class Planned:
    at: float  # seconds after the soak began
    kind: str


def schedule(seconds: float, seed: int, per_minute: float, kinds: list[str] | None = None,
             lead: float = 20.0, quiet_tail: float = 60.0) -> list[Planned]:
    """Fault times for a soak of `seconds`: every kind once, then more at random.

    Faults fall between `lead` seconds after the start and `quiet_tail` seconds before
    the end (the stream must be seen live at the end); random times make some overlap.
    """
    rng = random.Random(seed)
    kinds = list(kinds or FAULTS)
    window = max(seconds - lead - quiet_tail, 1.0)
    total = max(len(kinds), round(per_minute * seconds / 60))
    chosen = rng.sample(kinds, len(kinds)) + [rng.choice(kinds)
                                                for _ in range(total - len(kinds))]
    times = sorted(lead + rng.uniform(0, window) for _ in chosen)
    return [Planned(round(at, 1), kind) for at, kind in zip(times, chosen, strict=True)]
