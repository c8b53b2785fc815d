"""Commands that manage the stream: `tickml tasks`, `tickml watchdog`, `tickml rescore`."""

from __future__ import annotations

import logging
import re
import signal
import time
from datetime import datetime
from typing import Annotated

import typer

from tickml.config import Settings, get_settings

log = logging.getLogger(__name__)
tasks_app = typer.Typer(help="Define and inspect tickml's Kapacitor tasks.", no_args_is_help=True)
DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
#: Kapacitor syncs its subscriptions every 10 s by default; allow three rounds.
SUBSCRIPTION_WAIT_SECONDS = 30
#: A watchdog that starts (or restarts) first sweeps this far back.
SWEEP_LOOKBACK_SECONDS = 600


def parse_duration(text: str) -> float:
    """Seconds in a duration such as '90s', '15m', '2h' or '1d'."""
    match = DURATION.match(text.strip())
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration like 30s, 15m, 2h or 1d")
    return float(match.group(1)) * UNIT_SECONDS[match.group(2)]


def task_variables(settings: Settings) -> dict[str, dict]:
    """Per-task TICKscript `var` overrides taken from the settings."""
    from tickml.kapacitor import task_vars

    return {"fraud_alerts": task_vars({"alert_log": settings.alert_log})
            if settings.alert_log else {}}


@tasks_app.command("define")
def tasks_define() -> None:
    """Create the database, then create or update tickml's tasks (safe to repeat).

    Waits until Kapacitor has subscribed to the database, so the first
    transactions written afterwards reach the stream task.
    """
    from tickml.influx import InfluxClient, InfluxError
    from tickml.kapacitor import KapacitorClient, KapacitorError, define_tasks, read_scripts

    settings = get_settings()
    client = KapacitorClient(settings.kapacitor_url)
    influx = InfluxClient(settings.influx_url, settings.influx_db,
                          username=settings.influx_user, password=settings.influx_password)
    try:
        influx.create_database()
        actions = define_tasks(client, read_scripts(settings.kapacitor_scripts),
                               task_variables(settings))
        subscribed = influx.wait_for_subscription(timeout=SUBSCRIPTION_WAIT_SECONDS)
    except (KapacitorError, InfluxError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for task_id, action in actions.items():
        typer.echo(f"{task_id}: {action}")
    if not subscribed:
        typer.echo(f"warning: after {SUBSCRIPTION_WAIT_SECONDS}s Kapacitor has not subscribed "
                   f"to database {settings.influx_db!r}; transactions written before it does "
                   "are scored only by `tickml rescore`", err=True)


@tasks_app.command("status")
def tasks_status() -> None:
    """Show whether each task is enabled and executing, with its error if any."""
    from tickml.kapacitor import TASKS, KapacitorClient, KapacitorError

    client = KapacitorClient(get_settings().kapacitor_url)
    try:
        for task_id in TASKS:
            state = client.task(task_id)
            if state is None:
                typer.echo(f"{task_id}: not defined (run `tickml tasks define`)")
            else:
                running = "executing" if state.executing else "NOT executing"
                typer.echo(f"{task_id}: {state.status}, {running}"
                           + (f", error: {state.error}" if state.error else ""))
    except KapacitorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def watchdog(
    interval: Annotated[float | None, typer.Option(
        min=0.1, help="Seconds between checks (default: TICKML_WATCHDOG_INTERVAL, 2)."
    )] = None,
    rescore_after: Annotated[bool, typer.Option(
        help="After restarting a task, rescore the transactions since it last ran; and "
             "every TICKML_WATCHDOG_SWEEP_INTERVAL seconds rescore transactions still "
             "unscored TICKML_WATCHDOG_SWEEP_GRACE seconds after they were written."
    )] = True,
) -> None:
    """Restart tickml's Kapacitor tasks whenever they stop executing.

    Kapacitor does not reconnect a socket UDF: when the agent restarts or a
    keepalive is missed, the task stays enabled but stops. The watchdog
    notices, restarts it (disable, then enable) and, by default, rescores the
    window in which it was down.
    """
    from tickml.kapacitor import TASKS, KapacitorClient, watch_tasks
    from tickml.rescore import GapSweeper

    settings = get_settings()
    client = KapacitorClient(settings.kapacitor_url)
    stopping = False
    last_healthy = time.time_ns()

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    def after_restart(task_ids: list[str]) -> None:
        if rescore_after and "fraud_scoring" in task_ids:
            # Points arrive at Kapacitor a little after their timestamp: look back a bit.
            try:
                report = _rescore_window(settings, last_healthy - 60 * 10**9, time.time_ns())
            except Exception as exc:  # the gap sweep retries; the watchdog must live on
                log.warning("rescore after the restart failed: %s", exc)
            else:
                log.info("rescore after the restart: %s", report)

    sweeper = GapSweeper(lambda start, end: _rescore_window(settings, start, end),
                         interval=settings.watchdog_sweep_interval,
                         grace=settings.watchdog_sweep_grace, lookback=SWEEP_LOOKBACK_SECONDS)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    log.info("watching %s every %.1fs", ", ".join(TASKS), interval or settings.watchdog_interval)
    watch_tasks(client, list(TASKS), interval or settings.watchdog_interval,
                should_stop=lambda: stopping, on_restart=after_restart,
                on_check=sweeper.maybe_sweep if rescore_after else None)


def _rescore_window(settings: Settings, start_ns: int, end_ns: int):
    from tickml.influx import InfluxClient
    from tickml.rescore import rescore
    from tickml.udf.client import PredictClient

    influx = InfluxClient(settings.influx_url, settings.influx_db,
                          username=settings.influx_user, password=settings.influx_password)
    api = PredictClient(settings.api_url, timeout=10.0, retry_for=30.0)
    try:
        report = rescore(influx, api, start_ns, end_ns)
    finally:
        influx.close()
        api.close()
    return report


def rescore_command(
    since: Annotated[str, typer.Option(
        help="How far back to look, e.g. 15m, 2h, 1d (ignored with --start)."
    )] = "1h",
    start: Annotated[datetime | None, typer.Option(
        help="Start of the range (ISO 8601, UTC when no offset is given)."
    )] = None,
    end: Annotated[datetime | None, typer.Option(help="End of the range (default: now).")] = None,
) -> None:
    """Score transactions that have no scored point yet (after an outage), into `scored`."""
    from tickml.influx import InfluxError

    end_ns = _to_ns(end) if end else time.time_ns()
    start_ns = _to_ns(start) if start else end_ns - int(parse_duration(since) * 1e9)
    if start_ns >= end_ns:
        raise typer.BadParameter("the start of the range must lie before its end")
    try:
        report = _rescore_window(get_settings(), start_ns, end_ns)
    except InfluxError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{report.transactions} transactions: {report.already_scored} already scored, "
               f"{report.rescored} rescored, {report.unscorable} unscorable, "
               f"{report.failed} failed")
    if report.failed:
        raise typer.Exit(2)


def _to_ns(moment: datetime) -> int:
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1e9)
