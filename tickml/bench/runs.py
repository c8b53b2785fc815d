"""Shared by the benchmarks: repeat a measurement, spread its figures, write the results."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any


def repeated(measure: Callable[[], dict[str, Any]], runs: int, key: str,
             report: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Call `measure` `runs` times; its last result, with `spread` of `result[key]` over all.

    Each run's figures are ratios against baselines measured in that same run, so their
    spread across runs shows how far one run can be trusted on a shared machine.
    """
    results = []
    for number in range(1, runs + 1):
        report(f"run {number} of {runs}")
        results.append(measure())
    last = results[-1]
    return {**last, "spread": spread([r[key] for r in results])} if runs > 1 else last


def spread(figures: list[dict[str, float | None]]) -> dict[str, dict[str, Any]]:
    """Each figure over the runs: every value, and the lowest, median and highest."""
    out = {}
    for name in figures[0]:
        values = [f.get(name) for f in figures]
        known = [v for v in values if v is not None]
        out[name] = {"runs": values, "min": min(known, default=None),
                     "median": statistics.median(known) if known else None,
                     "max": max(known, default=None)}
    return out


def format_spread(spread_figures: dict[str, dict[str, Any]]) -> str:
    """One line per figure: its value in each run, then the range."""
    return "\n".join(
        f"{name}: {' / '.join('-' if v is None else f'{v:.3g}' for v in s['runs'])}"
        + (f" (min {s['min']:.3g}, median {s['median']:.3g}, max {s['max']:.3g})"
           if s["min"] is not None else "")
        for name, s in spread_figures.items())


def write_results(results: dict[str, Any], path: Path) -> None:
    """Write the figures as indented JSON (every benchmark's results file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
