"""Finding the influxd and kapacitord binaries (installed by scripts/install-tick.sh)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


class MissingBinary(RuntimeError):
    """A server binary is not installed; the message says how to get it."""


def cache_dir() -> Path:
    """tickml's build cache, outside any checkout: TICKML_CACHE or ~/.cache/tickml."""
    return Path(os.environ.get("TICKML_CACHE", Path.home() / ".cache" / "tickml"))


def find_binary(name: str) -> Path:
    """`name` from the build cache or PATH."""
    cached = cache_dir() / "bin" / name
    if cached.is_file() and os.access(cached, os.X_OK):
        return cached
    found = shutil.which(name)
    if found:
        return Path(found)
    raise MissingBinary(f"{name} not found in {cached.parent} or PATH: run `make tick` "
                        "(scripts/install-tick.sh installs influxd and builds kapacitord)")
