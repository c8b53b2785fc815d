"""The files MLServer reads to serve tickml's production model, and the command to start it.

`mlserver start FOLDER` reads `FOLDER/settings.json` (the server) and every
`model-settings.json` below FOLDER (one per model). tickml writes one model:
`FOLDER/<name>/model-settings.json`, whose `implementation` is tickml's runtime
(`tickml.serving.mlserver.TickmlRuntime`) and whose `parameters.uri` is the registry
folder, so MLServer loads the production model through tickml's loader and its checks.

The server's settings are chosen for a single trusted process: it listens on 127.0.0.1
unless told otherwise, runs no worker processes (`parallel_workers` 0: with the uvloop
that mlserver 1.7 resolves to, its worker processes crash at start; one process also
loads the model once), does not log request bodies (`debug` off), and serves Prometheus
metrics only when given a port. This module imports no `mlserver`.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tickml.api.v2 import INPUT, OUTPUTS, PLATFORM
from tickml.api.validation import N_FEATURES
from tickml.files import write_json_atomically
from tickml.registry import ModelRef

#: The runtime class MLServer imports, by its dotted path.
IMPLEMENTATION = "tickml.serving.mlserver.TickmlRuntime"
SETTINGS = "settings.json"
MODEL_SETTINGS = "model-settings.json"


@dataclass(frozen=True)
class ServerOptions:
    """Where MLServer listens.

    Attributes:
        host: the address of its REST, gRPC and metrics servers.
        http_port: REST (the V2 HTTP/JSON protocol).
        grpc_port: gRPC (the V2 gRPC protocol).
        metrics_port: Prometheus metrics at `/metrics`; None turns them off.
    """

    host: str = "127.0.0.1"
    http_port: int = 8080
    grpc_port: int = 8081
    metrics_port: int | None = None


def server_settings(options: ServerOptions) -> dict[str, Any]:
    """MLServer's `settings.json` for `options`."""
    settings: dict[str, Any] = {
        "server_name": "tickml-mlserver",
        "host": options.host,
        "http_port": options.http_port,
        "grpc_port": options.grpc_port,
        # One process: the model is loaded once, and no worker process is started.
        "parallel_workers": 0,
        # MLServer's default, true, logs every request body.
        "debug": False,
        "load_models_at_startup": True,
        "metrics_endpoint": None if options.metrics_port is None else "/metrics",
    }
    if options.metrics_port is not None:
        settings["metrics_port"] = options.metrics_port
    return settings


def model_settings(models_dir: Path, ref: ModelRef, *, max_instances: int,
                   verification_split: Path | None = None) -> dict[str, Any]:
    """The `model-settings.json` that serves `ref`, the production model of `models_dir`.

    The runtime refuses to serve another model or version than `ref`: when production
    moves on, write the settings again and restart MLServer.
    """
    extra: dict[str, Any] = {"max_instances": max_instances}
    if verification_split is not None:
        extra["verification_split"] = str(verification_split.absolute())
    return {
        "name": ref.name,
        "implementation": IMPLEMENTATION,
        "platform": PLATFORM,
        "inputs": [{"name": INPUT, "datatype": "FP64", "shape": [-1, N_FEATURES]}],
        "outputs": [{"name": name, "datatype": datatype, "shape": [-1]}
                    for name, datatype in OUTPUTS.items()],
        "parameters": {"uri": str(models_dir.absolute()), "version": str(ref.version),
                       "extra": extra},
    }


def write_settings(folder: Path, models_dir: Path, ref: ModelRef, options: ServerOptions, *,
                   max_instances: int, verification_split: Path | None = None) -> list[Path]:
    """Write MLServer's settings for serving `ref` into `folder`; return the files written.

    A `model-settings.json` tickml wrote earlier for another model under `folder` is
    removed, since MLServer would load it too; files of other runtimes are left alone.
    """
    folder.mkdir(parents=True, exist_ok=True)
    ours = folder / ref.name / MODEL_SETTINGS
    for stale in folder.rglob(MODEL_SETTINGS):
        if stale != ours and _written_by_tickml(stale):
            stale.unlink()
    ours.parent.mkdir(exist_ok=True)
    write_json_atomically(folder / SETTINGS, server_settings(options))
    write_json_atomically(ours, model_settings(models_dir, ref, max_instances=max_instances,
                                               verification_split=verification_split))
    return [folder / SETTINGS, ours]


def _written_by_tickml(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("implementation") == IMPLEMENTATION
    except (OSError, ValueError, AttributeError):
        return False


def mlserver_executable() -> str | None:
    """The `mlserver` command of this environment, or None when it is not installed."""
    beside_python = Path(sys.executable).with_name("mlserver")
    return str(beside_python) if beside_python.exists() else shutil.which("mlserver")


def start_command(folder: Path) -> list[str]:
    """`mlserver start FOLDER`, with this environment's mlserver when it has one."""
    return [mlserver_executable() or "mlserver", "start", str(folder.absolute())]
