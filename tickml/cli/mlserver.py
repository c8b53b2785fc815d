"""`tickml mlserver write` and `tickml mlserver serve`: the production model behind MLServer."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Annotated

import typer

from tickml.cli.output import console, fail
from tickml.config import Settings, get_settings

mlserver_app = typer.Typer(
    help="Serve the production model with MLServer (the Open Inference Protocol V2 server "
         "KServe runs), through tickml's runtime and its checks.",
    no_args_is_help=True)

Folder = Annotated[Path | None, typer.Argument(
    help="Where to write settings.json and <model>/model-settings.json "
         "(default: run/mlserver under TICKML_ROOT).")]
ModelsDir = Annotated[Path | None, typer.Option(
    help="Registry whose production model MLServer serves (default: TICKML_MODELS_DIR, "
         "models/).")]
Host = Annotated[str, typer.Option(
    help="Address MLServer listens on (0.0.0.0 in a container).")]
HttpPort = Annotated[int, typer.Option(min=1, max=65535, help="REST port (V2 over HTTP).")]
GrpcPort = Annotated[int, typer.Option(min=1, max=65535, help="gRPC port (V2 over gRPC).")]
MetricsPort = Annotated[int | None, typer.Option(
    min=1, max=65535, help="Serve Prometheus metrics at /metrics on this port "
                           "(default: no metrics).")]


@mlserver_app.command("write")
def write(folder: Folder = None, models_dir: ModelsDir = None, host: Host = "127.0.0.1",
          http_port: HttpPort = 8080, grpc_port: GrpcPort = 8081,
          metrics_port: MetricsPort = None) -> None:
    """Write the files MLServer reads to serve the production model; print how to start it.

    The model settings name the production model and version of the moment: after a
    promotion, write them again and restart MLServer. Its runtime loads the model
    through tickml's loader, and refuses one that fails its checks.
    """
    target = _write(folder, models_dir, host, http_port, grpc_port, metrics_port)
    from tickml.serving.mlserver_settings import start_command

    typer.echo(shlex.join(start_command(target)))


@mlserver_app.command("serve")
def serve(folder: Folder = None, models_dir: ModelsDir = None, host: Host = "127.0.0.1",
          http_port: HttpPort = 8080, grpc_port: GrpcPort = 8081,
          metrics_port: MetricsPort = None) -> None:
    """Write the files as `write` does, then run `mlserver start FOLDER` in this process."""
    target = _write(folder, models_dir, host, http_port, grpc_port, metrics_port)
    from tickml.serving.mlserver_settings import mlserver_executable, start_command

    if mlserver_executable() is None:
        raise fail("mlserver is not installed here: install tickml with its mlserver extra "
                   "(pip install 'tickml[mlserver]')")
    command = start_command(target)
    console.print(f"running {shlex.join(command)}", highlight=False)
    # exec: MLServer becomes this process, so a container's stop signal reaches it.
    os.execv(command[0], command)


def _write(folder: Path | None, models_dir: Path | None, host: str, http_port: int,
           grpc_port: int, metrics_port: int | None) -> Path:
    """Read the production pointer and write MLServer's settings; return the folder."""
    from tickml.registry import ModelRegistry, RegistryError
    from tickml.serving.mlserver_settings import ServerOptions, write_settings

    settings = get_settings()
    models = models_dir or settings.models_dir
    target = folder or settings.run_dir / "mlserver"
    ports = [http_port, grpc_port] + ([] if metrics_port is None else [metrics_port])
    if len(set(ports)) != len(ports):
        raise fail(f"the REST, gRPC and metrics ports must differ, not {ports}")
    try:
        ref = ModelRegistry(models).require_production()
    except RegistryError as exc:
        raise fail(str(exc)) from None
    written = write_settings(
        target, models, ref, ServerOptions(host, http_port, grpc_port, metrics_port),
        max_instances=settings.api_max_instances, verification_split=_test_split(settings))
    for path in written:
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    console.print(f"MLServer will serve {ref} from {models} on http://{host}:{http_port} "
                  f"(gRPC {grpc_port}, metrics {metrics_port or 'off'})", highlight=False,
                  soft_wrap=True)
    return target


def _test_split(settings: Settings) -> Path | None:
    """The prepared test split, which checks a compiled scorer built at load, if there is one."""
    split = settings.processed_dir / "test.parquet"
    return split if split.is_file() else None
