"""`tickml data prepare`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tickml import schema
from tickml.cli.output import console, fail
from tickml.config import get_settings

data_app = typer.Typer(help="Prepare the transaction dataset.", no_args_is_help=True)


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
