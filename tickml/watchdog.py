"""`tickml watchdog`: keep tickml's tasks running, the stream live, and no transaction unscored.

Three jobs, each round: restart a task that stopped executing (Kapacitor never
reconnects a socket UDF), notice when transactions are written but the scoring task
takes in none (`live.StreamWatch`), and sweep for transactions still unscored a
little after they were written (`rescore.GapSweeper`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from tickml.config import Settings
from tickml.influx import InfluxClient, influx_for
from tickml.kapacitor import (
    SCORING_TASK,
    TASKS,
    KapacitorClient,
    shard_clients,
    shard_task_ids,
    watch_tasks,
)
from tickml.live import StreamWatch, subscription_doctor, subscription_guess
from tickml.rescore import GapSweeper, rescore_range

log = logging.getLogger(__name__)


def stream_watches(settings: Settings, clients: list[KapacitorClient]) -> list[StreamWatch]:
    """The live check of every shard, mending the subscription when the settings hold
    InfluxDB's admin."""
    diagnose: Callable[[], str] = subscription_guess
    if settings.influx_admin_user:
        admin = InfluxClient(settings.influx_url, settings.influx_db,
                             username=settings.influx_admin_user,
                             password=settings.influx_admin_password)
        diagnose = subscription_doctor(admin, clients[0], settings)
    return [StreamWatch(client, influx_for(settings), diagnose,
                        label=f"shard {shard + 1}" if len(clients) > 1 else "")
            for shard, client in enumerate(clients)]


def run_watchdog(settings: Settings, interval: float, sweep: bool,
                 should_stop: Callable[[], bool]) -> None:
    """Watch until `should_stop`; `sweep` adds the gap sweep (and an early one after a restart)."""
    clients = shard_clients(settings)
    sweeper = GapSweeper(lambda start, end: rescore_range(settings, start, end),
                         interval=settings.watchdog_sweep_interval,
                         grace=settings.watchdog_sweep_grace)
    watches = stream_watches(settings, clients)

    def after_restart(task_ids: list[str]) -> None:
        if SCORING_TASK in task_ids:
            sweeper.sweep_soon()

    def after_check() -> None:
        if sweep:
            sweeper.maybe_sweep()
        for watch in watches:
            watch.check()

    log.info("watching %s on %d shard(s) every %.1fs%s", ", ".join(TASKS), len(clients),
             interval, "" if settings.influx_admin_user else
             " (without InfluxDB's admin login: a refused subscription is reported, not mended)")
    watch_tasks([(client, shard_task_ids(shard)) for shard, client in enumerate(clients)],
                interval, should_stop=should_stop,
                on_restart=after_restart if sweep else None, on_check=after_check)
