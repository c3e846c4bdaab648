"""What a long command shows while it works: a tqdm bar on a terminal, plain lines in a log file.

Bars go to stderr and are shown only when stderr is a terminal (never with
``ADELE_NO_PROGRESS`` set). Training prints one line per epoch when stdout is
not a terminal (redirected to a file, a job scheduler), so a log shows progress
while the run goes on.
"""
from __future__ import annotations

import os
import sys
from typing import Iterable, Optional

try:  # progress bars are a nicety; never a hard failure
    from tqdm.auto import tqdm
except ImportError:  # pragma: no cover
    tqdm = None


def bars_enabled() -> bool:
    return tqdm is not None and sys.stderr.isatty() and not os.environ.get("ADELE_NO_PROGRESS")


def progress(iterable: Iterable, total: Optional[int] = None, **kw) -> Iterable:
    """``iterable`` wrapped in a tqdm bar when :func:`bars_enabled`, else unchanged."""
    if not bars_enabled():
        return iterable
    return tqdm(iterable, total=total, dynamic_ncols=True, **kw)


def stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # replaced or closed stdout
        return False


def epoch_line(row: dict, epochs: int) -> str:
    """``epoch 3/40  loss 0.412  train IoU 0.615  val Dice 0.702  4.1 s`` from a history row (val Dice when evaluated)."""
    parts = [f"epoch {row['epoch']}/{epochs}", f"loss {row['loss']:.4f}"]
    if row.get("train_mean_iou") is not None:
        parts.append(f"train IoU {float(row['train_mean_iou']):.4f}")
    if row.get("val_mean_dice") is not None:
        parts.append(f"val Dice {row['val_mean_dice']:.4f}")
    parts.append(f"{row['time_s']:.1f} s")
    return "  ".join(parts)
