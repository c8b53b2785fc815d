"""The `tickml` command line: one entry point, one subcommand per stage.

Each module of this package holds one group of commands; `output.fail` is the one
way a command stops with a message and an exit code. No module outside this
package imports Typer.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from tickml.cli import api, bench, data, mlserver, models, stack, stream

app = typer.Typer(
    help="tickml: train a fraud model, serve it, and score a live stream on the TICK stack.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data.data_app, name="data")
app.add_typer(models.models_app, name="models")
app.add_typer(bench.bench_app, name="bench")
app.command("serve")(api.serve)
app.add_typer(mlserver.mlserver_app, name="mlserver")
app.command("udf")(stream.udf)
app.add_typer(stream.tasks_app, name="tasks")
app.command("watchdog")(stream.watchdog)
app.command("rescore")(stream.rescore)
app.command("generate")(stream.generate)
app.command("lab")(stack.lab)
app.command("bootstrap")(stack.bootstrap)
app.command("up")(stack.up)
app.command("down")(stack.down)
app.command("status")(stack.status)
app.command("users")(stack.users)
app.command("train")(models.train)


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
