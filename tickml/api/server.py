"""Run the app under gunicorn, in-process, with options from the command line.

The default worker class is gevent, as gunicorn's documentation advises for a server
that no buffering proxy shields from slow clients: a client that sends its request a
line at a time holds one greenlet, not a worker or one of its threads. The worker
patches the standard library when it starts, after the fork and before the app is
built, so the model holder's lock and the large-body slots are gevent's; scoring and
JSON parsing run without yielding, as one request at a time per worker. The
Prometheus multiprocess files are plain mmapped files, unaffected by the worker class.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from tickml.api import MULTIPROC_ENV
from tickml.config import Settings


class ApiServer(BaseApplication):
    """gunicorn running `create_app(settings)` in each worker, after the fork."""

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from tickml.api.app import create_app

        return create_app(self.settings)


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # drop the dead worker's live gauges


def run(settings: Settings, *, bind: str, workers: int, threads: int, worker_class: str,
        timeout: int, graceful_timeout: int, access_log: bool) -> None:
    """Serve until stopped (SIGTERM/SIGINT); gunicorn handles the signals."""
    metrics_dir = prepare_metrics_dir()
    # LightGBM's OpenMP threads otherwise spin after each prediction, taking the cores
    # from the other workers' request threads (measured: about half the batch latency).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    preload_libraries()
    options = {
        "bind": bind, "workers": workers, "threads": threads, "worker_class": worker_class,
        "timeout": timeout, "graceful_timeout": graceful_timeout, "preload_app": False,
        "accesslog": "-" if access_log else None, "child_exit": _child_exit,
        "proc_name": "tickml-api",
        "control_socket_disable": True,  # gunicorn 27 would share one socket in ~/.gunicorn
    }
    try:
        ApiServer(settings, options).run()
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def preload_libraries() -> None:
    """Import Flask and the model's libraries once in the master, before the fork.

    Workers then start in well under a second instead of each importing scikit-learn and
    LightGBM. No model is loaded here: each worker loads its own after the fork.
    """
    importlib.import_module("tickml.api.app")
    importlib.import_module("tickml.modeling.pipeline")


def prepare_metrics_dir() -> Path | None:
    """Give the workers an empty directory for their metric files.

    Returns the directory to delete at exit, or None when the caller provided one
    (its stale files from a previous run are removed).
    """
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        for stale in Path(given).glob("*.db"):
            stale.unlink()
        return None
    created = Path(tempfile.mkdtemp(prefix="tickml-metrics-"))
    os.environ[MULTIPROC_ENV] = str(created)
    return created
