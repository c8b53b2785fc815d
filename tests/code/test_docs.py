"""Docs that cannot rot: every repository path the README files mention exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ["README.md", "data/README.md", "models/README.md", "docs/architecture.md"]
# Paths written in backticks or as Markdown links that point into the repository.
MENTION = re.compile(r"`((?:tickml|tests|scripts|compose|notebooks|benchmarks|\.ci)/[^`\s*<]*)`"
                     r"|\]\(((?!https?:)[^)#]+)\)")
GENERATED = ("data/processed", "models/<", "run/")


def mentioned_paths(doc: Path) -> list[str]:
    found = []
    for match in MENTION.finditer(doc.read_text()):
        path = match.group(1) or match.group(2)
        if not path.startswith(GENERATED):
            found.append(path)
    return found


@pytest.mark.parametrize("doc", DOCS)
def test_every_mentioned_path_exists(doc: str) -> None:
    base = (ROOT / doc).parent
    missing = [p for p in mentioned_paths(ROOT / doc)
               if not (ROOT / p).exists() and not (base / p).exists()]
    assert not missing, f"{doc} mentions paths that do not exist: {missing}"


def test_readme_gives_the_test_command_that_ci_runs() -> None:
    assert "make test" in (ROOT / "README.md").read_text()
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test")
