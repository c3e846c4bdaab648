"""Plain-text tables for the terminal."""
from __future__ import annotations

from typing import Optional


def _cell(v: Optional[float]) -> str:
    return "   -  " if v is None else f"{v:6.3f}"


def format_metrics_table(results: dict[str, dict], split: str = "test", metric: str = "dice") -> str:
    """Per-class ``metric`` on ``split`` for several runs side by side.

    results: {run_name: metrics.json content}.
    """
    names = list(results)
    first = next(iter(results.values()))
    classes = first["classes"]
    width = max(12, max(len(c) for c in classes) + 2)
    col = max([16] + [len(n) + 2 for n in names])  # a run's whole name fits its column
    header = f"{split} {metric}".ljust(width) + "".join(f"{n:>{col}}" for n in names)
    lines = [header, "-" * len(header)]
    for c in classes[1:]:
        lines.append(c.ljust(width) + "".join(f"{_cell(results[n].get(split, {}).get(metric, {}).get(c)):>{col}}" for n in names))
    lines.append("-" * len(header))
    lines.append("mean (fg)".ljust(width) + "".join(f"{_cell(results[n].get(split, {}).get(f'mean_{metric}')):>{col}}" for n in names))
    lines.append("per-image".ljust(width) + "".join(f"{_cell(results[n].get(split, {}).get(f'per_image_mean_{metric}')):>{col}}" for n in names))
    return "\n".join(lines)
