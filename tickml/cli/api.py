"""`tickml serve`.

Nothing heavy is imported at module level: the CLI imports this module, and
prometheus_client must not be imported before `serve` has chosen its metrics directory.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Annotated

import typer

from tickml.cli.output import fail
from tickml.config import get_settings

#: gunicorn worker classes: greenlets (a slow client holds only its own connection),
#: threads with keep-alive, or one request at a time per worker.
WORKER_CLASSES = ("gevent", "gthread", "sync")
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
    worker_class: Annotated[str | None, typer.Option(
        help="gunicorn worker class: 'gevent' (one greenlet per connection), 'gthread' "
             "(--threads per worker) or 'sync' (default: TICKML_API_WORKER_CLASS, "
             "gevent).")] = None,
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
                       "10 MiB).")] = None,
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
    overrides = {"api_bind": bind, "api_workers": workers, "api_threads": threads,
                 "api_worker_class": worker_class,
                 "api_timeout": timeout, "api_graceful_timeout": graceful_timeout,
                 "models_dir": models_dir,
                 "api_max_instances": max_instances, "api_max_body_bytes": max_body_bytes,
                 "api_reload_interval": reload_interval}
    settings = dataclasses.replace(
        get_settings(), **{k: v for k, v in overrides.items() if v is not None})
    if settings.api_worker_class not in WORKER_CLASSES:
        raise fail(f"the worker class must be one of {', '.join(WORKER_CLASSES)}, not "
                   f"{settings.api_worker_class!r}")
    from tickml.api.server import run

    log.info("serving the production model of %s on http://%s", settings.models_dir,
             settings.api_bind)
    run(settings, bind=settings.api_bind, workers=settings.api_workers,
        threads=settings.api_threads, worker_class=settings.api_worker_class,
        timeout=settings.api_timeout,
        graceful_timeout=settings.api_graceful_timeout, access_log=access_log)
