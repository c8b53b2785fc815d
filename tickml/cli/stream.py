"""Commands that run and mend the stream: `udf`, `tasks`, `watchdog`, `rescore`, `generate`."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from tickml.cli.output import fail
from tickml.config import get_settings
from tickml.udf.options import DEFAULTS, MAX_BATCH

log = logging.getLogger(__name__)
tasks_app = typer.Typer(help="Define and inspect tickml's Kapacitor tasks.", no_args_is_help=True)


def udf(
    socket_path: Annotated[Path | None, typer.Option(
        "--socket", help="Unix socket to listen on (default: TICKML_UDF_SOCKET, run/fraud.sock)."
    )] = None,
    api_url: Annotated[str | None, typer.Option(
        help="Model API URL (default: TICKML_SCORING_URL, else TICKML_API_URL): tickml's "
             "API, such as "
             "http://api:5000, whose /predict gets the batches, or an Open Inference "
             "Protocol (V2) endpoint ending in /v2/models/NAME/infer, such as MLServer's. "
             "A TICKscript's .url() overrides it."
    )] = None,
    resolve_interval: Annotated[float | None, typer.Option(
        min=0, max=3600, help="Seconds between look-ups of the API's host name: each "
                              "address it stands for (every replica of a scaled service) "
                              "gets batches in turn (default: TICKML_API_RESOLVE_INTERVAL, "
                              "5)."
    )] = None,
    batch_size: Annotated[int, typer.Option(
        min=1, max=MAX_BATCH, help="Points per API call (.batchSize() overrides)."
    )] = DEFAULTS.batch_size,
    max_wait_ms: Annotated[float, typer.Option(
        min=0, max=10_000, help="Milliseconds to wait for a batch to fill (.maxWait())."
    )] = round(DEFAULTS.max_wait * 1000),
    timeout: Annotated[float, typer.Option(
        min=0.001, max=60, help="Seconds per HTTP request (.timeout())."
    )] = DEFAULTS.timeout,
    retry_for: Annotated[float, typer.Option(
        min=0, max=300, help="Seconds to retry an unreachable API before points go out "
                             "unscored (.retryFor())."
    )] = DEFAULTS.retry_for,
) -> None:
    """Run the Kapacitor UDF agent: score streamed points through the model API.

    Start it before kapacitord: Kapacitor asks every configured UDF for its
    options at startup and refuses to start when the socket is missing. When the API's
    host name stands for several replicas, batches go to each in turn, and one that
    fails passes its batch to the next at once.
    """
    from tickml.udf.options import ScoringOptions, validate
    from tickml.udf.server import AgentLimits, SocketInUse, SocketSetupError, run_agent

    settings = get_settings()
    defaults = ScoringOptions(
        url=api_url or settings.score_url, batch_size=batch_size, max_wait=max_wait_ms / 1000,
        timeout=timeout, retry_for=retry_for,
        resolve_interval=settings.api_resolve_interval if resolve_interval is None
        else resolve_interval)
    problems = validate(defaults)
    if problems:
        raise typer.BadParameter("; ".join(problems))
    try:
        run_agent(socket_path or settings.udf_socket, defaults,
                  limits=AgentLimits.from_settings(settings))
    except (SocketInUse, SocketSetupError) as exc:
        raise fail(str(exc)) from None


def _task_ids(names: list[str] | None) -> list[str] | None:
    from tickml.kapacitor import TASKS

    unknown = [name for name in names or () if name not in TASKS]
    if unknown:
        raise typer.BadParameter(f"unknown task {', '.join(unknown)}: tickml's tasks are "
                                 f"{', '.join(TASKS)}", param_hint="TASK")
    return names or None


TaskNames = Annotated[list[str] | None, typer.Argument(
    metavar="TASK", help="Only these tasks (default: all of tickml's).", show_default=False)]


@tasks_app.command("define")
def tasks_define(
    task_names: TaskNames = None,
    reset: Annotated[bool, typer.Option(
        "--reset", help="Define the shipped scripts over any edit made since (in Chronograf "
                        "or the API), and enable the tasks."
    )] = False,
) -> None:
    """Create the database, then define tickml's tasks where they are still tickml's (safe
    to repeat).

    A missing task is created; one still as tickml defined it follows a changed shipped
    script. A task edited since tickml defined it is kept, and a disabled task stays
    disabled, unless --reset. Waits until Kapacitor has subscribed to the database, so
    the first transactions written afterwards reach the stream task.
    """
    from tickml.influx import SUBSCRIPTION_WAIT_SECONDS, InfluxError, influx_for
    from tickml.kapacitor import KapacitorError, define_on_every_shard, shard_clients
    from tickml.subscriptions import keep_stream_subscription

    task_ids = _task_ids(task_names)
    settings = get_settings()
    clients = shard_clients(settings)
    influx = influx_for(settings)
    try:
        influx.create_database()
        actions = define_on_every_shard(clients, settings, reset=reset, task_ids=task_ids)
        mending = keep_stream_subscription(influx, settings, clients[0],
                                           timeout=SUBSCRIPTION_WAIT_SECONDS)
    except (KapacitorError, InfluxError, OSError, ValueError) as exc:
        raise fail(str(exc)) from None
    finally:
        influx.close()
    for task_id, action in actions.items():
        typer.echo(f"{task_id}: {action}")
    if any(action.startswith("kept") for action in actions.values()):
        typer.echo("tasks edited since tickml defined them are kept as they are; "
                   "`tickml tasks define --reset TASK` restores the shipped one", err=True)
    for dropped in mending.dropped:
        typer.echo(dropped.describe(), err=True)
    refused = [c for c in mending.checks if c.answer.value == "refused"]
    if refused:
        typer.echo(f"warning: {', '.join(c.destination for c in refused)} refuses the login "
                   f"InfluxDB's subscription sends it ({refused[0].detail})", err=True)
    if not mending.subscribed:
        typer.echo(f"warning: after {SUBSCRIPTION_WAIT_SECONDS}s no subscription on database "
                   f"{settings.influx_db!r} reaches Kapacitor; transactions written before one "
                   "does are scored only by the watchdog's sweep or `tickml rescore`", err=True)


#: What `tickml tasks status` says after its table, for each standing it shows.
STANDING_NOTES = {
    "missing": "missing: `tickml tasks define` creates it",
    "outdated": "outdated: as tickml defined it, but the shipped script changed since; "
                "`tickml tasks define` updates it",
    "edited": "edited: changed (in Chronograf or the API) since tickml defined it; "
              "`tickml tasks define` keeps it, `tickml tasks define --reset TASK` restores "
              "the shipped script",
    "not tickml's": "not tickml's: defined without tickml's record and unlike the shipped "
                    "script; kept, unless `tickml tasks define --reset TASK`",
    "disabled": "disabled: stays disabled (neither `tickml tasks define` nor the watchdog "
                "enables it); enable it in Chronograf or with `tickml tasks define --reset TASK`",
}


@tasks_app.command("status")
def tasks_status() -> None:
    """Show, per task, how it stands against the shipped script, whether it is enabled and
    executing, and its error if any."""
    from rich.console import Console
    from rich.table import Table

    from tickml.kapacitor import (
        KapacitorError,
        shard_clients,
        shard_task_ids,
        task_standings,
        tickml_definitions,
    )

    settings = get_settings()
    definitions = tickml_definitions(settings)
    clients = shard_clients(settings)
    try:
        standings = [task_standings(client, {t: definitions[t] for t in shard_task_ids(shard)})
                     for shard, client in enumerate(clients)]
    except (KapacitorError, OSError) as exc:
        raise fail(str(exc)) from None
    table = Table()
    sharded = len(clients) > 1
    for column in ("task", *(["shard"] if sharded else []), "definition", "status",
                   "executing", "error"):
        table.add_column(column)
    shown = set()
    for shard, shard_standings in enumerate(standings):
        where = [str(shard + 1)] if sharded else []
        for task_id, (place, state) in shard_standings.items():
            shown.add(place.value)
            if state is None:
                table.add_row(task_id, *where, place.value, "-", "-", "")
                continue
            shown.add(state.status)
            table.add_row(task_id, *where, place.value, state.status,
                          "yes" if state.executing else "no", state.error)
    Console(width=max(100, Console().width)).print(table)
    for key, note in STANDING_NOTES.items():
        if key in shown:
            typer.echo(note)


def watchdog(
    interval: Annotated[float | None, typer.Option(
        min=0.1, help="Seconds between checks (default: TICKML_WATCHDOG_INTERVAL, 2)."
    )] = None,
    rescore_after: Annotated[bool, typer.Option(
        help="Every TICKML_WATCHDOG_SWEEP_INTERVAL seconds, rescore transactions still "
             "unscored TICKML_WATCHDOG_SWEEP_GRACE seconds after they were written; after "
             "restarting the scoring task, sweep as soon as that grace has passed."
    )] = True,
) -> None:
    """Restart tickml's Kapacitor tasks whenever they stop executing, and keep the stream live.

    Kapacitor does not reconnect a socket UDF: when the agent restarts or a
    keepalive is missed, the task stays enabled but stops. The watchdog
    notices and restarts it (disable, then enable). It notices too when transactions
    are written but the scoring task takes in none, logs why, and (given InfluxDB's
    admin login, TICKML_INFLUX_ADMIN_USER/_PASSWORD) has a refused subscription made
    anew. By default it also sweeps for transactions still unscored a little after
    they were written, whatever left them so, and sweeps early once the scoring task
    was restarted.
    """
    from tickml.watchdog import run_watchdog

    settings = get_settings()
    run_watchdog(settings, interval or settings.watchdog_interval, sweep=rescore_after,
                 should_stop=stop_on_signals())


def rescore(
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
    from tickml.rescore import parse_duration, rescore_range, to_ns

    end_ns = to_ns(end) if end else time.time_ns()
    try:
        start_ns = to_ns(start) if start else end_ns - int(parse_duration(since) * 1e9)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if start_ns >= end_ns:
        raise typer.BadParameter("the start of the range must lie before its end")
    try:
        report = rescore_range(get_settings(), start_ns, end_ns)
    except InfluxError as exc:
        raise fail(str(exc)) from None
    log.info("rescore: %s", report)
    typer.echo(f"{report.transactions} transactions: {report.already_scored} already scored, "
               f"{report.rescored} rescored, {report.unscorable} unscorable, "
               f"{report.failed} failed"
               + (f", {report.unwritable} refused by InfluxDB" if report.unwritable else ""))
    if report.failed:
        raise typer.Exit(2)


def generate(
    rate: Annotated[float, typer.Option(min=0.01, help="Transactions per second.")] = 5.0,
    count: Annotated[int | None, typer.Option(min=1, help="Stop after this many.")] = None,
    duration: Annotated[float | None, typer.Option(
        min=0.1, help="Stop after this many seconds (default: run until stopped).")] = None,
    fraud_share: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="Share of frauds drawn, e.g. 0.05 so a demo shows one every few "
                               "seconds (default: the test split's own share, about 0.17 %)."
    )] = None,
    seed: Annotated[int, typer.Option(help="Seed for drawing rows.")] = 42,
) -> None:
    """Publish test-split transactions to InfluxDB (measurement `transactions`), stamped now.

    Points are written in batches; while InfluxDB is unreachable they are kept in a
    bounded buffer and sent once it is back.
    """
    from tickml.data.prepare import load_split
    from tickml.data.transactions import DatasetError
    from tickml.generator import Publisher, PublishOptions
    from tickml.influx import influx_for

    settings = get_settings()
    try:
        rows = load_split(settings, "test")
    except DatasetError as exc:
        raise fail(str(exc)) from None
    influx = influx_for(settings)
    options = PublishOptions(rate=rate, count=count, duration=duration, fraud_share=fraud_share,
                             seed=seed)
    report = Publisher(influx, rows, options).run(should_stop=stop_on_signals())
    influx.close()
    typer.echo(f"generated {report.generated}, written {report.written}, "
               f"dropped {report.dropped}")


def stop_on_signals() -> Callable[[], bool]:
    """A check that turns true once SIGTERM or SIGINT arrives: long runs end cleanly."""
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    return lambda: stopping
