"""`tickml train` and `tickml models list|promote`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tickml.cli.output import console, fail
from tickml.config import get_settings

models_app = typer.Typer(help="Inspect and promote models in the registry.", no_args_is_help=True)


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
    refused = []
    for ref in registry.versions():
        try:
            meta = registry.metadata(ref)
        except RegistryError as exc:
            refused.append(str(exc))
            continue
        auprc = meta.get("metrics", {}).get("test", {}).get("average_precision")
        table.add_row(ref.name, str(ref.version), meta.get("created", ""),
                      "" if auprc is None else f"{auprc:.4f}", f"{meta['threshold']:.4f}",
                      "yes" if ref == production else "")
    Console().print(table)
    for reason in refused:
        console.print(f"[yellow]not listed:[/] {escape(reason)}", soft_wrap=True,
                      highlight=False)


@models_app.command("promote")
def models_promote(
    name: Annotated[str, typer.Argument(help="Model name, e.g. fraud-lgbm.")],
    version: Annotated[int, typer.Argument(help="Version number to put in production.")],
) -> None:
    """Verify a model version and point production at it."""
    from tickml.registry import ModelRef, ModelRegistry, RegistryError

    registry = ModelRegistry(get_settings().models_dir)
    try:
        ref = ModelRef(name, version)
        registry.promote(ref)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    console.print(f"[green]{ref} is now the production model[/]")
