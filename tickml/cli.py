"""The `tickml` command line: one entry point, one subcommand per stage."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tickml import schema
from tickml.api.commands import bench_api, serve
from tickml.config import get_settings
from tickml.generator_command import generate as generate_command
from tickml.lab import lab
from tickml.stack import commands as stack_commands
from tickml.stream_commands import rescore_command, tasks_app
from tickml.stream_commands import watchdog as watchdog_command
from tickml.udf.commands import udf as udf_command

app = typer.Typer(
    help="tickml: train a fraud model, serve it, and score a live stream on the TICK stack.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Prepare the transaction dataset.", no_args_is_help=True)
models_app = typer.Typer(help="Inspect and promote models in the registry.", no_args_is_help=True)
bench_app = typer.Typer(help="Measure speed; figures go to benchmarks/results/.",
                        no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
app.add_typer(bench_app, name="bench")
app.command("serve")(serve)
bench_app.command("api")(bench_api)
app.command("udf")(udf_command)
app.add_typer(tasks_app, name="tasks")
app.command("watchdog")(watchdog_command)
app.command("rescore")(rescore_command)
app.command("generate")(generate_command)
app.command("lab")(lab)
app.command("bootstrap")(stack_commands.bootstrap)
app.command("up")(stack_commands.up)
app.command("down")(stack_commands.down)
app.command("status")(stack_commands.status)
bench_app.command("pipeline")(stack_commands.bench_pipeline)
console = Console(stderr=True)


@app.callback()
def main(
    log_level: Annotated[
        str, typer.Option(help="Logging level: DEBUG, INFO, WARNING or ERROR.")
    ] = "INFO",
) -> None:
    """tickml: train a fraud model, serve it, and score a live stream on the TICK stack."""
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)


def fail(message: str) -> typer.Exit:
    """Print a one-line error and return the exit to raise."""
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    return typer.Exit(code=1)


@data_app.command("prepare")
def data_prepare(
    rows: Annotated[int, typer.Option(
        min=100, help="Rows of the synthetic stand-in (ignored when data/creditcard.csv exists)."
    )] = schema.REAL_ROWS,
    seed: Annotated[int, typer.Option(help="Seed for the stand-in and the random split.")] = 42,
    split: Annotated[str, typer.Option(
        help="'time': train on the earlier period, test on the later one (honest for fraud). "
             "'stratified': a random split keeping the fraud share."
    )] = "time",
    test_size: Annotated[float, typer.Option(
        min=0.01, max=0.99, help="Share of rows in the test split."
    )] = 0.2,
) -> None:
    """Validate data/creditcard.csv, or generate a synthetic stand-in; write the splits.

    Drop the real Kaggle file at data/creditcard.csv to use it; otherwise a
    realistic synthetic stand-in is written to data/creditcard-synthetic.csv.
    """
    from tickml.data.prepare import prepare_dataset
    from tickml.data.transactions import DatasetError

    if split not in ("time", "stratified"):
        raise fail(f"--split must be 'time' or 'stratified', not {split!r}")
    settings = get_settings()
    with console.status("preparing the dataset…"):
        try:
            prepared = prepare_dataset(settings, rows=rows, seed=seed, split=split,
                                       test_size=test_size)
        except DatasetError as exc:
            raise fail(str(exc)) from None
    table = Table(title=f"{prepared.source} dataset ({prepared.source_file}), {split} split")
    for column in ("split", "rows", "frauds", "fraud share"):
        table.add_column(column, justify="right")
    for name, rows_, frauds in (("train", prepared.train_rows, prepared.train_frauds),
                                ("test", prepared.test_rows, prepared.test_frauds)):
        table.add_row(name, f"{rows_:,}", f"{frauds:,}", f"{frauds / rows_:.3%}")
    Console().print(table)
    console.print(f"wrote {settings.processed_dir}/{{train,test}}.parquet")


@app.command("train")
def train(
    name: Annotated[str, typer.Option(help="Registry name of the model.")] = "fraud-lgbm",
    seed: Annotated[int | None, typer.Option(help="Seed (default: TICKML_SEED or 42).")] = None,
    precision_target: Annotated[float | None, typer.Option(
        min=0.01, max=1.0,
        help="Pick the lowest threshold whose validation precision reaches this value "
             "(default: the threshold with the best validation F1)."
    )] = None,
    promote: Annotated[bool, typer.Option(
        help="Point production at the new model (a running API picks it up)."
    )] = True,
) -> None:
    """Train the default LightGBM pipeline, evaluate it on the test split, register it."""
    from tickml.data.transactions import DatasetError
    from tickml.modeling.train import train_default_model
    from tickml.registry import RegistryError

    settings = get_settings()
    with _training_progress() as progress:
        steps = progress.add_task("starting", total=None)
        trees = progress.add_task("boosting", total=None, visible=False)

        def on_step(description: str) -> None:
            progress.update(steps, description=description)
            progress.update(trees, visible=False)

        def on_iteration(done: int, total: int) -> None:
            progress.update(trees, completed=done, total=total, visible=True)

        try:
            result = train_default_model(settings, name=name, seed=seed,
                                         precision_target=precision_target, promote=promote,
                                         on_step=on_step, on_iteration=on_iteration)
        except (DatasetError, RegistryError, ValueError) as exc:
            raise fail(str(exc)) from None
    _print_report(result.ref, result.fitted.test)
    console.print(f"precision-recall curve: {result.pr_curve}")
    if result.promoted:
        console.print(f"[green]{result.ref} is now the production model[/]")


def _training_progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=True)


def _print_report(ref: object, report: dict) -> None:
    table = Table(title=f"{ref} on the test split ({report['rows']:,} rows)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("average_precision", "roc_auc", "precision", "recall", "f1", "threshold",
                "base_rate"):
        table.add_row(key, f"{report[key]:.4f}")
    matrix = report["confusion_matrix"]
    table.add_row("confusion (tn fp / fn tp)",
                  f"{matrix['tn']:,} {matrix['fp']:,} / {matrix['fn']:,} {matrix['tp']:,}")
    Console().print(table)


@models_app.command("list")
def models_list() -> None:
    """List registered models; the production one is marked."""
    from tickml.registry import ModelRegistry, RegistryError

    registry = ModelRegistry(get_settings().models_dir)
    try:
        production = registry.production()
    except RegistryError as exc:
        raise fail(str(exc)) from None
    table = Table()
    for column in ("model", "version", "created", "test AUPRC", "threshold", "production"):
        table.add_column(column)
    for ref in registry.versions():
        meta = registry.metadata(ref)
        auprc = meta.get("metrics", {}).get("test", {}).get("average_precision")
        table.add_row(ref.name, str(ref.version), meta.get("created", ""),
                      "" if auprc is None else f"{auprc:.4f}", f"{meta['threshold']:.4f}",
                      "yes" if ref == production else "")
    Console().print(table)


@models_app.command("promote")
def models_promote(
    name: Annotated[str, typer.Argument(help="Model name, e.g. fraud-lgbm.")],
    version: Annotated[int, typer.Argument(help="Version number to put in production.")],
) -> None:
    """Verify a model version and point production at it."""
    from tickml.registry import ModelRef, ModelRegistry, RegistryError

    registry = ModelRegistry(get_settings().models_dir)
    ref = ModelRef(name, version)
    try:
        registry.promote(ref)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    console.print(f"[green]{ref} is now the production model[/]")
