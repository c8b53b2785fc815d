"""`tickml bootstrap|up|down|status|users` for the stacks, and `tickml lab`."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer

from tickml import schema
from tickml.cli.output import fail
from tickml.config import Settings, get_settings
from tickml.lab import (
    DEFAULT_BIND,
    TOKEN_ENV,
    lab_command,
    lab_env,
    notebooks_dir,
    parse_bind,
    save_token,
)
from tickml.stack.bootstrap import ensure_dataset_and_model


def bootstrap(
    rows: Annotated[int, typer.Option(
        min=1000, help="Rows of the synthetic stand-in if no dataset is prepared yet.")
    ] = schema.REAL_ROWS,
) -> None:
    """Prepare the dataset and train the default model, unless they already exist."""
    ensure_dataset_and_model(get_settings(), rows, report=typer.echo)
    typer.echo("dataset and production model are in place")


def up(
    with_jupyter: Annotated[bool, typer.Option(
        help="Also start JupyterLab on port 10000 (token from TICKML_LAB_TOKEN).")] = False,
    rate: Annotated[float, typer.Option(min=0.1, help="Generator transactions per second.")] = 5.0,
    fraud_share: Annotated[float, typer.Option(
        min=0, max=1, help="Share of frauds the generator draws (the real rate is 0.0017).")
    ] = 0.02,
    rows: Annotated[int, typer.Option(
        min=1000, help="Rows of the synthetic stand-in if no dataset is prepared yet.")
    ] = schema.REAL_ROWS,
    shards: Annotated[int | None, typer.Option(
        min=1, max=16, help="Kapacitor + agent pairs to spread the stream over, through one "
                            "InfluxDB subscription in ANY mode; shard N listens on "
                            "Kapacitor's port + N - 1 (default: TICKML_SHARDS, 1).")] = None,
) -> None:
    """Start the whole stack natively: influxd, model API, each shard's UDF agent and
    kapacitord, task definitions, watchdog and generator, each waited on until healthy.

    Running it again only starts what is not running; another shard count needs
    `./down.sh` first. Logs: run/logs/<service>.log.
    """
    import dataclasses

    from tickml.stack.binaries import MissingBinary
    from tickml.stack.native import NativeStack, StackError
    from tickml.stack.users import ProvisionError

    settings = get_settings()
    if shards is not None:
        settings = dataclasses.replace(settings, shards=shards)
    ensure_dataset_and_model(settings, rows, report=typer.echo)
    stack = NativeStack(settings, generator_rate=rate, fraud_share=fraud_share,
                        with_jupyter=with_jupyter)
    try:
        stack.up(report=typer.echo)
    except (StackError, MissingBinary, ProvisionError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"InfluxDB   {settings.influx_url}  (database {settings.influx_db})")
    typer.echo(f"Kapacitor  {', '.join(settings.kapacitor_urls)}")
    typer.echo(f"model API  {settings.api_url}  (docs at /docs)")
    if with_jupyter:
        typer.echo(f"JupyterLab http://127.0.0.1:{stack.jupyter_port}/lab")
    typer.echo(f"logs       {stack.logs}")


def users() -> None:
    """Create InfluxDB's databases and tickml's users from the logins in .env.

    The admin must exist already (the InfluxDB image creates it from
    INFLUXDB_ADMIN_USER) or the server must have no user yet. Safe to repeat: a
    changed password in .env is set again.
    """
    from tickml.influx import InfluxError
    from tickml.stack.users import ProvisionError, StackLogins, provision_influx

    settings = get_settings()
    try:
        provision_influx(settings.influx_url, settings.influx_db, StackLogins.from_env())
    except (ProvisionError, InfluxError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"InfluxDB users and databases in place on {settings.influx_url}")


def down(
    wipe: Annotated[bool, typer.Option(
        help="Also delete InfluxDB's and Kapacitor's data and the logs.")] = False,
) -> None:
    """Stop every process `tickml up` started. Data is kept unless --wipe."""
    from tickml.stack.native import NativeStack, StackError

    try:
        NativeStack(get_settings()).down(wipe=wipe)
    except StackError as exc:
        raise fail(str(exc)) from None
    typer.echo("stack stopped" + (" and data wiped" if wipe else " (data kept)"))


def status() -> None:
    """Show the state of each native service, and the share of transactions the stream
    scored live (not the watchdog's sweep) over the last five minutes.

    The live share is read from InfluxDB (TICKML_INFLUX_URL), on Docker too. Exits 3
    when neither the native stack runs nor InfluxDB answers.
    """
    from tickml.influx import InfluxError, influx_for
    from tickml.live import LIVE_WINDOW_SECONDS, live_share
    from tickml.stack.native import NativeStack

    settings = get_settings()
    states = NativeStack(settings).status()
    for name, state in states.items():
        typer.echo(f"{name:<11}{state}")
    if not states:
        typer.echo("the native stack is not running")
    influx = influx_for(settings)
    try:
        share = live_share(influx, LIVE_WINDOW_SECONDS)
    except InfluxError as exc:
        typer.echo(f"live share: unknown, {exc}")
        if not states:
            raise typer.Exit(3) from None
        return
    finally:
        influx.close()
    typer.echo(f"live share (last {LIVE_WINDOW_SECONDS // 60} min): {share.describe()}")
    if share.share is not None and share.share < 0.99:
        typer.echo("the stream is not scoring everything itself: the watchdog's log says why "
                   "(run/logs/watchdog.log, or `docker compose logs watchdog`)")


def lab(
    bind: Annotated[str, typer.Option(
        help="HOST:PORT to listen on; 0.0.0.0:10000 inside a container.")] = DEFAULT_BIND,
    notebook_dir: Annotated[Path | None, typer.Option(
        help="Folder JupyterLab opens (default: the project's notebooks/).")] = None,
    open_browser: Annotated[bool, typer.Option(help="Open a browser tab.")] = False,
) -> None:
    """Open JupyterLab on the notebooks (01-06), with tickml importable.

    The token comes from {TOKEN_ENV} (never the command line, which other local
    users can read). Without it a random token is made: shown when this runs in a
    terminal, otherwise written to run/lab-token, readable by you only.
    """
    try:
        host, port = parse_bind(bind)
    except ValueError as exc:
        raise fail(str(exc)) from None
    settings = get_settings()
    root_dir = (notebook_dir or notebooks_dir(settings)).resolve()
    if not root_dir.is_dir():
        raise fail(f"{root_dir} is not a folder")
    token = settings.lab_token or secrets.token_urlsafe(24)
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    typer.echo(f"JupyterLab on {root_dir}: http://{shown}:{port}/lab "
               f"({token_hint(settings, token)})", err=True)
    argv = lab_command(host, port, root_dir, open_browser, allow_root=os.geteuid() == 0)
    sys.stdout.flush()
    os.execve(argv[0], argv, lab_env(settings, token))


def token_hint(settings: Settings, token: str) -> str:
    """Where the user finds the token, without writing it where others read (a log)."""
    if settings.lab_token:
        return f"token: the value of {TOKEN_ENV}"
    if sys.stderr.isatty():
        return f"token: {token}"
    path = settings.run_dir / "lab-token"
    save_token(token, path)
    return f"token in {path}"
