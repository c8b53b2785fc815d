"""`tickml up`, `tickml down` and `tickml status` for the native stack."""

from __future__ import annotations

from typing import Annotated

import typer

from tickml import schema
from tickml.config import Settings, get_settings


def ensure_dataset_and_model(settings: Settings, rows: int, report=typer.echo) -> None:
    """Prepare the dataset and train the default model when they are missing."""
    from tickml.data.prepare import prepare_dataset
    from tickml.modeling.train import train_default_model
    from tickml.registry import ModelRegistry

    if not (settings.processed_dir / "test.parquet").is_file():
        report("dataset: preparing (first run)…")
        prepare_dataset(settings, rows=rows, seed=settings.seed)
    if ModelRegistry(settings.models_dir).production() is None:
        report("model: training the default model (first run)…")
        result = train_default_model(settings)
        report(f"model: {result.ref} in production, test AUPRC "
               f"{result.fitted.test['average_precision']:.3f}")


def bootstrap(
    rows: Annotated[int, typer.Option(
        min=1000, help="Rows of the synthetic stand-in if no dataset is prepared yet.")
    ] = schema.REAL_ROWS,
) -> None:
    """Prepare the dataset and train the default model, unless they already exist."""
    ensure_dataset_and_model(get_settings(), rows)
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
) -> None:
    """Start the whole stack natively: influxd, model API, UDF agent, kapacitord,
    task definitions, watchdog and generator, each waited on until healthy.

    Running it again only starts what is not running. Logs: run/logs/<service>.log.
    """
    from tickml.stack.binaries import MissingBinary
    from tickml.stack.native import NativeStack, StackError

    settings = get_settings()
    ensure_dataset_and_model(settings, rows)
    stack = NativeStack(settings, generator_rate=rate, fraud_share=fraud_share,
                        with_jupyter=with_jupyter)
    try:
        stack.up(report=typer.echo)
    except (StackError, MissingBinary) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"InfluxDB   {settings.influx_url}  (database {settings.influx_db})")
    typer.echo(f"Kapacitor  {settings.kapacitor_url}")
    typer.echo(f"model API  {settings.api_url}  (docs at /docs)")
    if with_jupyter:
        typer.echo(f"JupyterLab http://127.0.0.1:{stack.jupyter_port}/lab")
    typer.echo(f"logs       {stack.logs}")


def down(
    wipe: Annotated[bool, typer.Option(
        help="Also delete InfluxDB's and Kapacitor's data and the logs.")] = False,
) -> None:
    """Stop every process `tickml up` started. Data is kept unless --wipe."""
    from tickml.stack.native import NativeStack, StackError

    try:
        NativeStack(get_settings()).down(wipe=wipe)
    except StackError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo("stack stopped" + (" and data wiped" if wipe else " (data kept)"))


def status() -> None:
    """Show the state of each native service."""
    from tickml.stack.native import NativeStack

    states = NativeStack(get_settings()).status()
    if not states:
        typer.echo("the native stack is not running")
        raise typer.Exit(3)
    for name, state in states.items():
        typer.echo(f"{name:<11}{state}")


def bench_pipeline(
    burst: Annotated[int, typer.Option(
        min=100, help="Transactions written at once to measure the micro-batched capacity.")
    ] = 50_000,
    naive_burst: Annotated[int, typer.Option(
        min=100, help="Burst size for batch size 1 (one HTTP call per point; slower).")
    ] = 3_000,
    rate: Annotated[float, typer.Option(
        min=1, help="Moderate rate (transactions/s) at which latency is measured.")] = 50.0,
    seconds: Annotated[float, typer.Option(min=1, help="Seconds of paced writing.")] = 10.0,
) -> None:
    """Measure the whole stream (influxd, kapacitord, agent, API) on this machine.

    Starts its own stack on free ports, then measures the micro-batched agent and
    batch size 1 in the same run: burst capacity (transactions/s) and latency from
    write to scored point (p50, p99) at a moderate rate. Writes
    benchmarks/results/pipeline.json.
    """
    from tickml.stack.bench import format_table, run_pipeline_benchmark, write_results

    settings = get_settings()
    ensure_dataset_and_model(settings, 50_000)
    results = run_pipeline_benchmark(settings, burst, naive_burst, rate, seconds)
    path = settings.root / "benchmarks" / "results" / "pipeline.json"
    write_results(results, path)
    typer.echo(format_table(results))
    typer.echo(f"written to {path}")
