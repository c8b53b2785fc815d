"""The committed notebooks: executed, free of errors, and free of this machine's paths."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: Absolute paths of a machine (Linux, macOS, Windows) and secrets that must not leak.
FORBIDDEN = re.compile(
    r"(/work/|/tmp/|/root/|/home/|/Users/|/private/var/|[A-Za-z]:\\\\Users|site-packages"
    r"|token=[A-Za-z0-9_-]{8,}|TICKML_LAB_TOKEN=\S+|password=\S+)")


def outputs(path: Path) -> list[dict]:
    cells = json.loads(path.read_text())["cells"]
    return [o for cell in cells if cell["cell_type"] == "code" for o in cell["outputs"]]


def output_text(output: dict) -> str:
    """Everything an output shows as text (images are base64 and cannot carry a path)."""
    text = output.get("text", "")
    text = "".join(text) if isinstance(text, list) else text
    for mime, value in output.get("data", {}).items():
        if not mime.startswith("image/"):
            text += "".join(value) if isinstance(value, list) else str(value)
    return text + "".join(output.get("traceback", []))


def test_there_are_six_notebooks() -> None:
    assert [p.name[:3] for p in NOTEBOOKS] == ["01-", "02-", "03-", "04-", "05-", "06-"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_with_outputs_of_one_run_from_the_top(path: Path) -> None:
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    counts = [c["execution_count"] for c in cells]
    assert all(c is not None for c in counts), "every code cell ran"
    assert counts == list(range(1, len(cells) + 1)), "cells ran once, in order"
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for o in outputs(path)), "at least one plot"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_error_outputs(path: Path) -> None:
    errors = [o for o in outputs(path) if o["output_type"] == "error"]
    assert not errors, [f"{o['ename']}: {o['evalue']}" for o in errors]
    stderr = [output_text(o) for o in outputs(path)
              if o["output_type"] == "stream" and o["name"] == "stderr"]
    assert not stderr, f"warnings or errors on stderr: {stderr}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_machine_paths_or_secrets_in_outputs(path: Path) -> None:
    leaks = [m.group(0) for o in outputs(path) for m in FORBIDDEN.finditer(output_text(o))]
    assert not leaks, f"{path.name} outputs show {sorted(set(leaks))}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_stay_small(path: Path) -> None:
    assert path.stat().st_size < 2_000_000, "keep committed outputs under 2 MB per notebook"


def test_the_forbidden_pattern_catches_what_it_should() -> None:
    for leak in ("/work/main/data", "/tmp/pytest-1/x", "C:\\\\Users\\\\me", "?token=abcdef123456",
                 "/home/me/.venv/lib/python3.11/site-packages/x.py"):
        assert FORBIDDEN.search(leak), leak
    for fine in ("models/fraud-lgbm/1/pr_curve.png", "…/file.csv", "tokens", "token budget"):
        assert not FORBIDDEN.search(fine), fine
