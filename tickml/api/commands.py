"""`tickml serve` and `tickml bench api`.

Nothing heavy is imported at module level: the CLI imports this module, and
prometheus_client must not be imported before `serve` has chosen its metrics directory.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Annotated

import typer

from tickml.config import get_settings

WORKER_CLASSES = ("gthread", "sync")
log = logging.getLogger(__name__)


def serve(
    bind: Annotated[str | None, typer.Option(
        help="HOST:PORT to listen on (default: TICKML_API_BIND, 127.0.0.1:5000; use "
             "0.0.0.0:5000 in a container).")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, help="Worker processes, each with its own copy of the model "
                    "(default: TICKML_API_WORKERS, 2).")] = None,
    threads: Annotated[int | None, typer.Option(
        min=1, help="Threads per worker with --worker-class gthread "
                    "(default: TICKML_API_THREADS, 4).")] = None,
    worker_class: Annotated[str, typer.Option(
        help="gunicorn worker class: 'gthread' (threads, keep-alive) or 'sync'.")] = "gthread",
    timeout: Annotated[int | None, typer.Option(
        min=1, help="Seconds a worker may spend on one request before gunicorn restarts it "
                    "(default: TICKML_API_TIMEOUT, 30).")] = None,
    graceful_timeout: Annotated[int | None, typer.Option(
        min=1, help="Seconds workers get to finish requests in flight at shutdown "
                    "(default: TICKML_API_GRACEFUL_TIMEOUT, 10).")] = None,
    models_dir: Annotated[Path | None, typer.Option(
        help="Model registry to serve the production model of "
             "(default: TICKML_MODELS_DIR, models/).")] = None,
    max_instances: Annotated[int | None, typer.Option(
        min=1, help="Most transactions in one request (default: TICKML_API_MAX_INSTANCES, "
                    "10000).")] = None,
    max_body_bytes: Annotated[int | None, typer.Option(
        min=1024, help="Largest request body in bytes (default: TICKML_API_MAX_BODY_BYTES, "
                       "16 MiB).")] = None,
    reload_interval: Annotated[float | None, typer.Option(
        min=0.0, help="Seconds between looks at the production pointer; a newly promoted "
                      "model is swapped in without downtime (default: "
                      "TICKML_API_RELOAD_INTERVAL, 2).")] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request to stderr.")] = False,
) -> None:
    """Serve the production model over HTTP with gunicorn (POST /predict, /v2, /metrics).

    Starts even when no model has been promoted yet: /ready answers 503 and /predict
    503 until one is, then the model is picked up without a restart. Docs at /docs.
    """
    if worker_class not in WORKER_CLASSES:
        raise _fail(f"--worker-class must be one of {', '.join(WORKER_CLASSES)}")
    overrides = {"api_bind": bind, "api_workers": workers, "api_threads": threads,
                 "api_timeout": timeout, "api_graceful_timeout": graceful_timeout,
                 "models_dir": models_dir,
                 "api_max_instances": max_instances, "api_max_body_bytes": max_body_bytes,
                 "api_reload_interval": reload_interval}
    settings = dataclasses.replace(
        get_settings(), **{k: v for k, v in overrides.items() if v is not None})
    from tickml.api.server import run

    log.info("serving the production model of %s on http://%s", settings.models_dir,
             settings.api_bind)
    run(settings, bind=settings.api_bind, workers=settings.api_workers,
        threads=settings.api_threads, worker_class=worker_class, timeout=settings.api_timeout,
        graceful_timeout=settings.api_graceful_timeout, access_log=access_log)


def bench_api(
    requests_per_level: Annotated[int, typer.Option(
        min=10, help="Single-row requests sent at each concurrency level.")] = 600,
    batches: Annotated[int, typer.Option(
        min=2, help="Batches of 1,000 rows sent to the API (and scored in-process).")] = 40,
    workers: Annotated[int, typer.Option(min=1, help="gunicorn workers of the server.")] = 2,
    threads: Annotated[int, typer.Option(min=1, help="Threads per worker.")] = 4,
    worker_class: Annotated[str, typer.Option(help="'gthread' or 'sync'.")] = "gthread",
    models_dir: Annotated[Path | None, typer.Option(
        help="Registry whose production model is measured (default: TICKML_MODELS_DIR).")
    ] = None,
    output: Annotated[Path | None, typer.Option(
        help="Results file (default: benchmarks/results/api.json under TICKML_ROOT).")
    ] = None,
) -> None:
    """Measure the model API against in-process predict_proba on the same model.

    In one run: predict_proba on 1 and 1,000 rows; the API on single rows at
    concurrency 1, 8 and 32 (p50, p99, requests/s); the API on batches of 1,000
    rows (rows/s). Prints a table and writes the figures as JSON.
    """
    from tickml.api.bench import print_results, run_benchmark, write_results
    from tickml.registry import RegistryError

    if worker_class not in WORKER_CLASSES:
        raise _fail(f"--worker-class must be one of {', '.join(WORKER_CLASSES)}")
    settings = get_settings()
    if models_dir is not None:
        settings = dataclasses.replace(settings, models_dir=models_dir)
    try:
        results = run_benchmark(settings, requests_per_level=requests_per_level,
                                batches=batches, workers=workers, threads=threads,
                                worker_class=worker_class)
    except RegistryError as exc:
        raise _fail(str(exc)) from None
    path = output or settings.root / "benchmarks" / "results" / "api.json"
    write_results(results, path)
    print_results(results)
    typer.echo(f"wrote {path}", err=True)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)
