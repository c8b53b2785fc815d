"""How every command reports: progress on stderr, results on stdout, one way to fail.

Commands raise `fail(message)` for an error the user can act on (exit code 1, or the
code given) and Typer's `BadParameter` for a malformed option (exit code 2).
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

#: Progress and messages; results that scripts may read go to stdout.
console = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `error: <message>` on stderr and return the exit to raise."""
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    return typer.Exit(code=code)
