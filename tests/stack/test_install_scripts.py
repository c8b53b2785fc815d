"""The install scripts' shared helpers, run for real by bash: `make setup` runs the scripts
side by side on a fresh machine, so none may count on a folder another one makes."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "scripts" / "lib.sh"


def bash(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-euo", "pipefail", "-c",
                           f"LOG_TAG=test; LOG_DIR={tmp_path}/logs; . {LIB}; {script}"],
                          capture_output=True, text=True, timeout=60)


def test_copy_tree_copies_into_a_parent_no_script_has_made_yet(tmp_path: Path) -> None:
    source = tmp_path / "module"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "go.mod").write_text("module example\n")
    (source / "pkg" / "go.mod").chmod(0o444)  # the Go module cache is read-only
    target = tmp_path / "fresh-cache" / "src" / "module-v1"
    result = bash(f"copy_tree {source} {target}", tmp_path)
    assert result.returncode == 0, result.stderr
    assert (target / "pkg" / "go.mod").read_text() == "module example\n"
    assert (target / "pkg" / "go.mod").stat().st_mode & 0o200, "the copy is writable"
    assert not list(target.parent.glob("*.tmp")), "no half-made copy is left"


def test_copy_tree_keeps_a_copy_already_made(tmp_path: Path) -> None:
    source, target = tmp_path / "module", tmp_path / "cache" / "module-v1"
    source.mkdir()
    (source / "new").write_text("from the module\n")
    target.mkdir(parents=True)
    (target / "patched").write_text("kept\n")
    assert bash(f"copy_tree {source} {target}", tmp_path).returncode == 0
    assert (target / "patched").read_text() == "kept\n" and not (target / "new").exists()


def test_run_logged_makes_its_log_folder_and_shows_the_tail_on_failure(tmp_path: Path) -> None:
    result = bash("run_logged failing sh -c 'echo the reason; exit 3'", tmp_path)
    assert result.returncode == 1
    assert "the reason" in result.stderr and "failing failed" in result.stderr
    assert (tmp_path / "logs" / "failing.log").read_text() == "the reason\n"
