"""kapacitord's goroutine dump, for a test that finds it no longer answering.

A Go program prints every goroutine's stack on SIGQUIT and exits (supervisord starts
it again). The digest keeps, per goroutine, its state and the first kapacitor frame:
the lock or channel a stuck task request waits on, and what holds it, show up there.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from pathlib import Path

from tickml.stack.native import NativeStack

_HEADER = re.compile(r"^goroutine \d+ .*?\[(?P<state>[^\]]+)\]:$")
KAPACITOR = "github.com/influxdata/kapacitor"
#: Where a stuck task request waits, or what it waits for: the rest (idle edges, timers,
#: services) is left out of the digest.
TASK_PATH = ("(*TaskMaster)", "task_store.", "(*UDFNode)", "udf.(*Server)", "(*node).Wait",
             "(*ExecutingTask).stop")
DIGEST_LINES = 12


def dump_goroutines(stack: NativeStack) -> str:
    """SIGQUIT the stack's kapacitord and return what it printed."""
    log = stack.logs / "kapacitord.log"
    start = log.stat().st_size
    os.kill(stack.call("getProcessInfo", "kapacitord")["pid"], signal.SIGQUIT)
    time.sleep(3)
    return log.read_bytes()[start:].decode(errors="replace")


def digest(dump: str) -> list[str]:
    """`count× [state] innermost kapacitor function (file:line)` of the goroutines on a task's
    path (requests, the task master, UDF nodes and servers), the commonest first."""
    seen: Counter[str] = Counter()
    for block in dump.split("\n\n"):
        lines = block.strip().splitlines()
        header = _HEADER.match(lines[0]) if lines else None
        if header is None or not any(part in block for part in TASK_PATH):
            continue
        where = _innermost_kapacitor_frame(lines[1:])
        if where is not None:
            seen[f"[{header['state']}] {where}"] += 1
    return [f"{count}× {where}" for where, count in seen.most_common(DIGEST_LINES)]


def _innermost_kapacitor_frame(lines: list[str]) -> str | None:
    """A stack's first kapacitor function (frames come in pairs: call, then file:line)."""
    for call, place in zip(lines[::2], lines[1::2], strict=False):
        if call.startswith(KAPACITOR):
            source = place.strip().split(" ")[0]
            function = call[len(KAPACITOR):call.rfind("(")].lstrip("./")
            return f"{function} ({Path(source).name})"
    return None
