"""The `tickml generate` command."""

from __future__ import annotations

import signal
from typing import Annotated

import typer

from tickml.config import get_settings


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
    from tickml.influx import InfluxClient

    settings = get_settings()
    try:
        rows = load_split(settings, "test")
    except DatasetError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    influx = InfluxClient(settings.influx_url, settings.influx_db,
                          username=settings.influx_user, password=settings.influx_password)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    options = PublishOptions(rate=rate, count=count, duration=duration, fraud_share=fraud_share,
                             seed=seed)
    report = Publisher(influx, rows, options).run(should_stop=lambda: stopping)
    influx.close()
    typer.echo(f"generated {report.generated}, written {report.written}, "
               f"dropped {report.dropped}")
