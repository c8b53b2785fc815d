"""The `tickml udf` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tickml.config import get_settings


def udf(
    socket_path: Annotated[Path | None, typer.Option(
        "--socket", help="Unix socket to listen on (default: TICKML_UDF_SOCKET, run/fraud.sock)."
    )] = None,
    api_url: Annotated[str | None, typer.Option(
        help="Model API base URL (default: TICKML_API_URL). A TICKscript's .url() overrides it."
    )] = None,
    batch_size: Annotated[int, typer.Option(
        min=1, max=10_000, help="Points per /predict call (.batchSize() overrides)."
    )] = 200,
    max_wait_ms: Annotated[float, typer.Option(
        min=0, max=10_000, help="Milliseconds to wait for a batch to fill (.maxWait())."
    )] = 50,
    timeout: Annotated[float, typer.Option(
        min=0.001, max=60, help="Seconds per HTTP request (.timeout())."
    )] = 2.0,
    retry_for: Annotated[float, typer.Option(
        min=0, max=300, help="Seconds to retry an unreachable API before points go out "
                             "unscored (.retryFor())."
    )] = 5.0,
) -> None:
    """Run the Kapacitor UDF agent: score streamed points through the model API.

    Start it before kapacitord: Kapacitor asks every configured UDF for its
    options at startup and refuses to start when the socket is missing.
    """
    from tickml.udf.options import ScoringOptions, validate
    from tickml.udf.server import SocketInUse, run_agent

    settings = get_settings()
    defaults = ScoringOptions(url=api_url or settings.api_url, batch_size=batch_size,
                              max_wait=max_wait_ms / 1000, timeout=timeout, retry_for=retry_for)
    problems = validate(defaults)
    if problems:
        raise typer.BadParameter("; ".join(problems))
    try:
        run_agent(socket_path or settings.udf_socket, defaults)
    except SocketInUse as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
