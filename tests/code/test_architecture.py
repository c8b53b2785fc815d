"""The package keeps the shape docs/architecture.md describes, and the README lists it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "tickml"
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text()
README = (ROOT / "README.md").read_text()
GENERATED = {"tickml/udf/udf_pb2.py"}
MODULES = sorted(p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*")
                 if p.suffix in (".py", ".proto") and "__pycache__" not in p.parts
                 and p.relative_to(ROOT).as_posix() not in GENERATED)
PYTHON_MODULES = [m for m in MODULES if m.endswith(".py")]


def top_level(module: str) -> str:
    """`tickml/udf/client.py` → `udf`, `tickml/schema.py` → `schema`."""
    parts = Path(module).relative_to("tickml").parts
    return parts[0] if len(parts) > 1 else Path(parts[0]).stem


def layers() -> dict[str, int]:
    """Top-level module → layer, from the table under "## Layers"."""
    table = ARCHITECTURE.split("## Layers", 1)[1].split("##", 1)[0]
    found = {}
    for layer, names in re.findall(r"^\| (\d+) \| ([^|]+) \|", table, re.MULTILINE):
        for name in re.findall(r"`([\w.]+)`", names):
            found[name] = int(layer)
    return found


def tickml_imports(module: str) -> set[str]:
    """Top-level tickml modules that `module` imports, at any depth in its code."""
    tree = ast.parse((ROOT / module).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "tickml" and len(parts) > 1 and is_module(parts[1]):
                imported.add(parts[1])
    return imported


def is_module(name: str) -> bool:
    """True for a module or package of tickml, false for a name such as __version__."""
    return (PACKAGE / f"{name}.py").is_file() or (PACKAGE / name).is_dir()


def imports_typer(module: str) -> bool:
    tree = ast.parse((ROOT / module).read_text())
    return any(
        (isinstance(node, ast.Import) and any(a.name.split(".")[0] == "typer"
                                              for a in node.names))
        or (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "typer")
        for node in ast.walk(tree))


@pytest.mark.parametrize("module", MODULES)
def test_every_module_is_described_in_the_architecture_page(module: str) -> None:
    assert f"`{module}`" in ARCHITECTURE, f"docs/architecture.md does not list {module}"


@pytest.mark.parametrize("module", MODULES)
def test_every_module_is_in_the_readme_layout_table(module: str) -> None:
    table = README.split("## Layout", 1)[1].split("\n## ", 1)[0]
    folder, name = module.rsplit("/", 1)
    rows = [line for line in table.splitlines() if f"`{folder}/`" in line]
    assert f"`{module}`" in table or any(f"`{name}`" in row for row in rows), \
        f"the README's layout table does not list {module}"


@pytest.mark.parametrize("module", PYTHON_MODULES)
def test_no_module_imports_a_higher_layer(module: str) -> None:
    layer = layers()
    own = top_level(module)
    assert own in layer, f"{own} has no layer in docs/architecture.md"
    higher = {name for name in tickml_imports(module) - {own} if layer[name] > layer[own]}
    assert not higher, f"{module} (layer {layer[own]}) imports higher layers: {higher}"


def test_only_the_command_line_imports_typer() -> None:
    outside = [m for m in PYTHON_MODULES if not m.startswith("tickml/cli/") and imports_typer(m)]
    assert not outside, f"Typer belongs in tickml/cli/ only: {outside}"
