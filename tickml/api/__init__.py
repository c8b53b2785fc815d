"""The model API: a Flask app serving the production model over HTTP.

`create_app` is imported lazily: `tickml serve` must set `PROMETHEUS_MULTIPROC_DIR`
before anything imports prometheus_client, and importing this package for the CLI
should not pull in Flask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tickml.api.app import create_app

__all__ = ["MULTIPROC_ENV", "create_app"]
#: Where the gunicorn workers' metric files go; prometheus_client reads it at import.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from tickml.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
