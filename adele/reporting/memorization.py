"""``adele analyze memorization``: early learning vs memorization on the wrongly labelled pixels.

For every epoch and every class c, among the training pixels whose noisy
label is wrong and whose clean label is c: the fraction the network (train
mode, during the epoch) predicted as c ("early learning") and the fraction it
predicted as the wrong noisy label ("memorized"), plus all classes together.
On a baseline the first rises then falls while the second keeps rising.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import RunError
from ..metrics import memorization_fractions
from . import figures
from ..run import RunFolder


def run_memorization(run: RunFolder) -> dict:
    """:func:`adele.metrics.memorization_fractions` of a run; RunError when it has no memorization.json."""
    if not run.memorization:
        raise RunError(f"{run.path}: no memorization.json; it needs clean training labels (train with data.noise set, or a dataset with train/labels_clean)")
    return memorization_fractions(run.memorization, run.classes)


def memorization_csv(mem: dict) -> str:
    """Long format: epoch, class, wrong_pixels, early_learning, memorized."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["epoch", "class", "wrong_pixels", "early_learning", "memorized"])
    for e, epoch in enumerate(mem["epochs"]):
        for k, name in enumerate(mem["names"]):
            el, me = mem["early_learning"][e, k], mem["memorized"][e, k]
            w.writerow([int(epoch), name, int(mem["wrong"][e, k]), "" if np.isnan(el) else f"{el:.4f}", "" if np.isnan(me) else f"{me:.4f}"])
    return buf.getvalue()


def memorization_table(mem: dict) -> str:
    """Per class: wrong pixels, early-learning peak (epoch), final early-learning and memorized fractions."""
    head = f"{'class':<22}{'wrong px':>9}{'early peak':>12}{'@ep':>5}{'early end':>11}{'memo end':>10}"
    lines = [head, "-" * len(head)]
    for k, name in enumerate(mem["names"]):
        el, me = mem["early_learning"][:, k], mem["memorized"][:, k]
        if not np.isfinite(el).any():
            lines.append(f"{name:<22}{0:>9}{'-':>12}{'-':>5}{'-':>11}{'-':>10}")
            continue
        j = int(np.nanargmax(el))
        lines.append(f"{name:<22}{int(mem['wrong'][-1, k]):>9}{el[j]:>12.3f}{int(mem['epochs'][j]):>5}{el[-1]:>11.3f}{me[-1]:>10.3f}")
    return "\n".join(lines)


def analyze_memorization(run_dir: str | Path, out: Optional[str | Path] = None) -> tuple[Path, Path, str]:
    """Write memorization.csv and memorization.png to ``out`` (default: the run folder); return (csv, png, table)."""
    run = RunFolder.open(run_dir)
    mem = run_memorization(run)
    if not mem["wrong"][:, -1].any():
        raise RunError(f"{run.path}: no wrongly labelled training pixel (the run trained on its clean labels); nothing to analyze")
    out = Path(out) if out is not None else run.path
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "memorization.csv"
    csv_path.write_text(memorization_csv(mem))
    png = figures.memorization(mem, out / "memorization.png", title=f"{run.name}: wrongly labelled training pixels, by clean class: predicted as ...")
    return csv_path, png, memorization_table(mem)
