"""Finding the influxd and kapacitord binaries (installed by scripts/install-tick.sh)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tickml.config import get_settings


class MissingBinary(RuntimeError):
    """A server binary is not installed; the message says how to get it."""


def find_binary(name: str) -> Path:
    """`name` from the build cache (TICKML_CACHE, ~/.cache/tickml) or PATH."""
    cached = get_settings().cache / "bin" / name
    if cached.is_file() and os.access(cached, os.X_OK):
        return cached
    found = shutil.which(name)
    if found:
        return Path(found)
    raise MissingBinary(f"{name} not found in {cached.parent} or PATH: run `make tick` "
                        "(scripts/install-tick.sh installs influxd and builds kapacitord)")
