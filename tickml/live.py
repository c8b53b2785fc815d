"""Is the stream scoring live? The share it scores itself, and noticing when it scores nothing.

The stream scores a transaction within a second or so. The watchdog's gap sweep (and
`tickml rescore`) scores what the stream missed, 15 to 45 s late, and marks those
points `rescored`: a safety net, never the way points should normally get scored.
`StreamWatch` notices when transactions are written but the scoring task takes in
none (InfluxDB's subscription refused or gone, most often), says why in one line, and
has the subscription made anew when it holds InfluxDB's admin login.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from tickml import schema
from tickml.config import Settings
from tickml.influx import InfluxClient
from tickml.kapacitor import SCORING_TASK, KapacitorClient, error_line
from tickml.subscriptions import Answer, Mending, keep_stream_subscription, mend_refused

log = logging.getLogger(__name__)
#: Seconds of transactions written with none reaching the scoring task that make a stall.
STALL_AFTER_SECONDS = 10.0
#: A transaction younger than this may still be on its way to Kapacitor.
IN_FLIGHT_SECONDS = 2.0
#: Seconds between two repairs of the same stall.
MEND_EVERY_SECONDS = 30.0
#: The window `tickml status` and the dashboard report the live share over.
LIVE_WINDOW_SECONDS = 300
#: What a user can do when the watchdog cannot mend the subscription itself.
FIX_WITHOUT_ADMIN = ("run ./up.sh again (or `tickml tasks define` with InfluxDB's admin "
                     "login): it checks InfluxDB's subscription and has a refused one made anew")


@dataclass(frozen=True)
class LiveShare:
    """Transactions scored in a window, and how many of them the sweep scored."""

    scored: int
    swept: int  # scored late, by the gap sweep or `tickml rescore` (`rescored` = true)

    @property
    def live(self) -> int:
        return self.scored - self.swept

    @property
    def share(self) -> float | None:
        """Scored live ÷ scored; None when nothing was scored."""
        return self.live / self.scored if self.scored else None

    def describe(self) -> str:
        if not self.scored:
            return "nothing scored"
        return (f"{self.share:.1%} scored live ({self.live:,} of {self.scored:,}; "
                f"{self.swept:,} by the sweep)")


def live_share(influx: InfluxClient, window_seconds: int = LIVE_WINDOW_SECONDS) -> LiveShare:
    """The live share of the transactions scored in the last `window_seconds`."""
    rows = influx.records(
        f'SELECT count("{schema.SCORED}") AS scored, count("{schema.RESCORED}") AS swept '
        f'FROM "{schema.SCORED_POINTS}" WHERE "{schema.SCORED}" = true '
        f"AND time > now() - {int(window_seconds)}s")
    if not rows:
        return LiveShare(0, 0)
    return LiveShare(int(rows[0]["scored"] or 0), int(rows[0]["swept"] or 0))


def transactions_written(influx: InfluxClient, start_ns: int, end_ns: int) -> int:
    """Transactions stamped in [start, end)."""
    return influx.count(schema.TRANSACTIONS, schema.TRANSACTION_ID,
                        f"time >= {start_ns} AND time < {end_ns}")


def subscription_doctor(admin: InfluxClient, kapacitor: KapacitorClient,
                        settings: Settings) -> Callable[[], str]:
    """A check of the stream's subscription that mends what it can; returns what it found."""
    database = settings.influx_db

    def diagnose() -> str:
        if settings.sharded:
            return sharded_diagnosis(keep_stream_subscription(admin, settings, kapacitor, 0))
        mending = mend_refused(admin, kapacitor, database)
        if mending.dropped:
            names = ", ".join(d.subscription.name for d in mending.dropped)
            outcome = "Kapacitor made a new one" if mending.subscribed else \
                "Kapacitor has not made a new one yet"
            return (f"InfluxDB's subscription {names} was refused by Kapacitor (its token "
                    f"was revoked); dropped it and {outcome}")
        if not mending.checks:
            kapacitor.link_subscriptions()
            return f"InfluxDB had no subscription on {database}; asked Kapacitor to make one"
        unreachable = [c for c in mending.checks if c.answer is Answer.UNREACHABLE]
        if unreachable and not mending.subscribed:
            return (f"InfluxDB's subscription sends to {unreachable[0].destination}, which "
                    f"does not answer ({unreachable[0].detail}): Kapacitor's hostname must "
                    "name the host InfluxDB reaches it at (KAPACITOR_HOSTNAME)")
        return ("InfluxDB's subscription is accepted by Kapacitor, yet the scoring task takes "
                "in nothing: check that the task reads the database and measurement "
                "transactions are written to (`tickml tasks status`)")
    return diagnose


def sharded_diagnosis(mending: Mending) -> str:
    """What keeping the sharded subscription found: made anew, refused, or sound."""
    said = [dropped.describe() for dropped in mending.dropped]
    refused = [c for c in mending.checks if c.answer is Answer.REFUSED]
    unreachable = [c for c in mending.checks if c.answer is Answer.UNREACHABLE]
    if refused:
        said.append(f"{', '.join(c.destination for c in refused)} refuses the writer login "
                    f"({refused[0].detail}): tickml's kapacitord lets a write_points login "
                    "write (scripts/patches/kapacitor/write-points-databases.patch); upstream "
                    "Kapacitor 1.8 does not")
    if unreachable:
        said.append(f"{', '.join(c.destination for c in unreachable)} does not answer: "
                    "that shard is down, and its share of the stream goes to the sweep")
    return "; ".join(said) or ("InfluxDB's sharded subscription reaches every shard, yet "
                               "this one takes in nothing: check its tasks "
                               "(`tickml tasks status`)")


def subscription_guess() -> str:
    """What a watchdog without InfluxDB's admin login can say of a stall."""
    return ("InfluxDB is not forwarding writes to Kapacitor: most likely its subscription is "
            f"refused (a revoked token); to fix it, {FIX_WITHOUT_ADMIN}")


@dataclass
class _Window:
    started: float  # monotonic seconds
    started_ns: int  # wall clock, to compare with transactions' timestamps
    received: int  # the task's intake count then


class StreamWatch:
    """Notices when transactions are written but the scoring task takes in none.

    Each `check` compares the task's intake counter with the transactions written
    since it last moved: after `stall_after` seconds of transactions and no intake,
    it logs one line with the cause (from `diagnose`, which may mend it too) and
    tries the mend again every `mend_every` seconds; when intake resumes it says so.
    """

    def __init__(
        self,
        kapacitor: KapacitorClient,
        influx: InfluxClient,
        diagnose: Callable[[], str] = subscription_guess,
        *,
        task_id: str = SCORING_TASK,
        label: str = "",
        stall_after: float = STALL_AFTER_SECONDS,
        mend_every: float = MEND_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.kapacitor = kapacitor
        self.influx = influx
        self.diagnose = diagnose
        self.task_id = task_id
        self.label = label  # which shard, in the log lines, when there are several
        self.stall_after = stall_after
        self.mend_every = mend_every
        self.clock = clock
        self.wall_clock = wall_clock
        self.window: _Window | None = None
        self.stalled_at: float | None = None  # when the stall was reported
        self.mended_at = 0.0

    @property
    def stalled(self) -> bool:
        return self.stalled_at is not None

    def check(self) -> None:
        """One look at the scoring task's intake; logs a stall and its end."""
        state = self.kapacitor.task(self.task_id)
        if state is None or not state.healthy or state.received is None:
            self.window = None  # not running: restarting it is the watchdog's other job
            return
        now = self.clock()
        if self.window is None or state.received != self.window.received:
            self._resumed(now)
            self.window = _Window(now, self.wall_clock(), state.received)
            return
        if now - self.window.started < self.stall_after:
            return
        if self.stalled:
            self._mend_again(now)
            return
        end_ns = self.wall_clock() - int(IN_FLIGHT_SECONDS * 1e9)
        written = transactions_written(self.influx, self.window.started_ns, end_ns)
        if written:
            self._report(now, written)

    def _report(self, now: float, written: int) -> None:
        seconds = now - self.window.started
        cause = self._diagnosis()
        log.warning("live scoring stalled: %d transactions written in the last %.0f s, and "
                    "task %s%s took in none; the gap sweep scores them late meanwhile. %s",
                    written, seconds, self.task_id, self._where(), cause)
        self.stalled_at = self.mended_at = now

    def _mend_again(self, now: float) -> None:
        if now - self.mended_at >= self.mend_every:
            self.mended_at = now
            log.info("live scoring still stalled: %s", self._diagnosis())

    def _resumed(self, now: float) -> None:
        if self.stalled:
            log.warning("live scoring resumed: task %s%s takes in transactions again "
                        "(%.0f s after the stall was noticed)", self.task_id, self._where(),
                        now - self.stalled_at)
        self.stalled_at = None

    def _where(self) -> str:
        return f" on {self.label}" if self.label else ""

    def _diagnosis(self) -> str:
        try:
            return self.diagnose()
        except Exception as exc:  # the watchdog goes on whatever the check meets
            return f"the subscription could not be checked ({error_line(exc)})"
