"""Matplotlib figures of the report, drawn off-screen (Agg, no pyplot, no display).

Each function takes plain arrays / run objects and a PNG path, and returns the path. matplotlib itself is imported
by the first figure drawn (:func:`_matplotlib`), not with this module.
"""
from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from .class_curves import ClassCurve

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def private_config_dir(environ=os.environ) -> Optional[str]:
    """A fresh temporary folder for matplotlib's cache when its usual one cannot be used (HOME read-only, unset, or
    not even readable by this user, as under some job schedulers, `sudo -u` or a container run as another uid), so
    that it stays quiet; None when the usual one is fine."""
    if environ.get("MPLCONFIGDIR"):
        return None
    usual = Path(environ.get("XDG_CONFIG_HOME") or Path(environ.get("HOME") or "/", ".config")) / "matplotlib"
    try:
        existing = next((p for p in (usual, *usual.parents) if p.exists()), None)
    except OSError:  # a folder on the way cannot be searched (EACCES): unusable, like an unwritable one
        existing = None
    if existing is not None and os.access(existing, os.W_OK):
        return None
    return tempfile.mkdtemp(prefix="adele-matplotlib-")


@functools.lru_cache(maxsize=None)
def _matplotlib() -> SimpleNamespace:
    """The matplotlib classes the figures use, imported by the first figure drawn (never when the package is imported:
    commands that draw nothing neither wait for matplotlib nor depend on its cache folder), after choosing that folder."""
    cfg = private_config_dir()
    if cfg:
        os.environ["MPLCONFIGDIR"] = cfg
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    return SimpleNamespace(colormaps=colormaps, FigureCanvasAgg=FigureCanvasAgg, ListedColormap=ListedColormap, Figure=Figure,
                           Patch=Patch, MaxNLocator=MaxNLocator)


DPI = 110


def _figure(nrows: int, ncols: int, w: float, h: float, height_ratios: Optional[Sequence[float]] = None):
    mpl = _matplotlib()
    fig = mpl.Figure(figsize=(w, h), layout="constrained")
    mpl.FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, gridspec_kw={"height_ratios": height_ratios} if height_ratios else None)
    return fig, axes


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def class_colors(n: int) -> np.ndarray:
    """(n, 4) RGBA; class 0 (background) transparent; no grey among the classes (grey reads as 'unlabelled')."""
    colormaps = _matplotlib().colormaps
    tab10 = [colormaps["tab10"](i) for i in range(10) if i != 7]
    extra = [colormaps["tab20"](i) for i in range(1, 20, 2) if i != 15] + [colormaps["Set3"](i) for i in range(12)]
    palette = tab10 + extra
    cols = np.array([palette[i % len(palette)] for i in range(max(n - 1, 1))])
    return np.vstack([[0, 0, 0, 0], cols])[:n]


def _grid(n: int, ncols: int = 5) -> tuple[int, int]:
    ncols = min(ncols, n)
    return -(-n // ncols), ncols


def iou_curves(curves: Sequence[ClassCurve], round_epochs: Sequence[int], path: Path, title: str = "") -> Path:
    """Per-class train IoU (dots), fitted f(t) (line; dashed past the fitted points), onset (red) and correction rounds (grey)."""
    # the legend takes the first free cell after the curves; with none free, a cell beside a single row, or a
    # short row of its own under a full grid (not a whole empty row of plot height)
    rows, cols = _grid(max(len(curves), 1))
    ratios = None
    if len(curves) % cols == 0:
        if rows == 1:
            cols += 1
        else:
            rows, ratios = rows + 1, [1.0] * rows + [0.25]
    height = 2.3 * (rows if ratios is None else rows - 0.75)
    fig, axes = _figure(rows, cols, 3.0 * cols, height, ratios)
    end = max((float(c.epochs[-1]) for c in curves if c.epochs.size), default=1.0)
    for ax, cc in zip(axes.flat, curves):
        ax.plot(cc.epochs, cc.iou, ".", ms=4, color="C0")
        if cc.fit is not None:
            e, f, last = cc.fitted(end)
            ax.plot(e[e <= last], f[e <= last], "-", color="C1", lw=1.5)
            ax.plot(e[e >= last], f[e >= last], "--", color="C1", lw=1)
        for r in round_epochs:
            ax.axvline(r, color="0.6", ls=":", lw=1)
        if cc.onset is not None and cc.onset <= end:
            ax.axvline(cc.onset, color="C3", lw=1.5, ls="-" if cc.flagged else "--")
        state = f"onset {cc.onset}" + ("" if cc.flagged or cc.onset is None else " (not reached)") if cc.onset is not None else "no onset"
        ax.set_title(f"{cc.name}: {state}", fontsize=9)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlim(0, end + 1)
        ax.xaxis.set_major_locator(_matplotlib().MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
    legend_ax = axes.flat[len(curves)]
    legend_ax.axis("off")
    legend_ax.legend(handles=[
        legend_ax.plot([], [], ".", color="C0")[0], legend_ax.plot([], [], "-", color="C1")[0],
        legend_ax.plot([], [], "-", color="C3")[0], legend_ax.plot([], [], ":", color="0.6")[0],
    ], labels=["train IoU", "fit a(1-exp(-t^b/c))", "memorization onset", "correction round"], loc="center", fontsize=8, frameon=False)
    for ax in list(axes.flat)[len(curves) + 1 :]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def correction_rounds(rounds: Sequence[dict], classes: Sequence[str], path: Path) -> Path:
    """Left: pixels changed per round, stacked by new class. Right (with clean labels): precision per round (bar) and per class (dots)."""
    prec = [r.get("precision") for r in rounds]
    has_prec = any(p is not None for p in prec)
    fig, axes = _figure(1, 2 if has_prec else 1, 12 if has_prec else 6.5, 3.6)
    ax = axes[0, 0]
    cols = class_colors(len(classes))
    cols[0] = (0.25, 0.25, 0.25, 1.0)
    x = np.arange(len(rounds))
    ticks = [f"r{r['round']}\nep {r['epoch']}" for r in rounds]
    bottom = np.zeros(len(rounds))
    for k, name in enumerate(classes):
        v = np.array([r.get("changed_per_class", {}).get(name, 0) for r in rounds], dtype=float)
        if v.any():
            ax.bar(x, v, bottom=bottom, color=cols[k], label=name, width=0.7)
            bottom += v
    ax.set_xticks(x, ticks, fontsize=7)
    ax.set_xlim(-0.6, len(rounds) - 0.4)
    ax.set_ylabel("pixels changed")
    ax.set_title("pixels changed per round, by new label", fontsize=9)
    if bottom.any():
        ax.legend(fontsize=7, ncols=2, frameon=False)
    else:
        ax.text(0.5, 0.5, "no pixel changed", ha="center", va="center", transform=ax.transAxes, color="0.5")
    if has_prec:
        bx = axes[0, 1]
        bx.bar(x, [np.nan if p is None else p for p in prec], color="0.8", width=0.7, label="all changed pixels")
        for k, name in enumerate(classes):
            v = np.array([np.nan if p is None else p for p in ((r.get("precision_per_class") or {}).get(name) for r in rounds)], dtype=float)
            if np.isfinite(v).any():
                bx.plot(x, v, "o", color=cols[k], ms=4)
        bx.set_ylim(0, 1.02)
        bx.set_xticks(x, ticks, fontsize=7)
        bx.set_xlim(-0.6, len(rounds) - 0.4)
        bx.set_title("precision: changed pixels that now match the clean label (dots: per class)", fontsize=9)
        bx.legend(fontsize=7, frameon=False, loc="lower left")
    return _save(fig, path)


def memorization(mem: dict, path: Path, title: str = "") -> Path:
    """One panel per class + total: fraction of wrongly labelled pixels predicted as the clean vs the noisy class."""
    names = mem["names"]
    rows, cols = _grid(len(names), 6)
    fig, axes = _figure(rows, cols, 2.4 * cols, 2.0 * rows)
    for k, (ax, name) in enumerate(zip(axes.flat, names)):
        ax.plot(mem["epochs"], mem["early_learning"][:, k], color="C2", label="clean class (early learning)")
        ax.plot(mem["epochs"], mem["memorized"][:, k], color="C3", label="noisy class (memorized)")
        n = int(mem["wrong"][-1, k]) if len(mem["wrong"]) else 0
        ax.set_title(f"{name} ({n} px)", fontsize=8, fontweight="bold" if name == "total" else "normal")
        if not n:
            ax.text(0.5, 0.5, "no wrong pixels", ha="center", va="center", transform=ax.transAxes, fontsize=8, color="0.5")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlim(mem["epochs"][0] - 0.5, mem["epochs"][-1] + 0.5)
        ax.xaxis.set_major_locator(_matplotlib().MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    fig.suptitle(title or "wrongly labelled training pixels, by clean class: predicted as ...", fontsize=10)
    return _save(fig, path)


def memorization_compare(items: Sequence[tuple[str, dict]], path: Path) -> Path:
    """All wrongly labelled pixels of several runs: early learning (solid) vs memorized (dashed)."""
    fig, axes = _figure(1, 1, 7, 3.4)
    ax = axes[0, 0]
    for i, (name, mem) in enumerate(items):
        ax.plot(mem["epochs"], mem["early_learning"][:, -1], "-", color=f"C{i}", label=f"{name}: clean class")
        ax.plot(mem["epochs"], mem["memorized"][:, -1], "--", color=f"C{i}", label=f"{name}: noisy class")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(_matplotlib().MaxNLocator(integer=True))
    ax.set_ylabel("fraction of wrong pixels")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("wrongly labelled training pixels predicted as their clean (solid) or noisy (dashed) class", fontsize=9)
    ax.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1, 0.5))
    return _save(fig, path)


def overlays(rows: Sequence[dict], columns: Sequence[str], classes: Sequence[str], path: Path) -> Path:
    """Grid of examples: rows[i] = {"id", "image": (H, W) float, column name: (H, W) label map, or (H, W) bool mask drawn in red}."""
    ncol = 1 + len(columns)
    fig, axes = _figure(len(rows), ncol, 2.1 * ncol, 2.3 * len(rows) + 0.4)
    cmap = _matplotlib().ListedColormap(class_colors(len(classes)))
    for r, row in enumerate(rows):
        img = row["image"]
        for c, col in enumerate(["image", *columns]):
            ax = axes[r, c]
            ax.imshow(img, cmap="gray", interpolation="nearest")
            if col != "image" and np.asarray(row[col]).dtype == bool:  # a pixel mask (suspect pixels): red
                ax.imshow(np.ma.masked_where(~row[col], row[col]), cmap=_matplotlib().ListedColormap(["#e8202a"]), alpha=0.8, interpolation="nearest")
            elif col != "image":
                lab = np.ma.masked_where((row[col] == 0) | (row[col] >= len(classes)), row[col])
                ax.imshow(lab, cmap=cmap, vmin=-0.5, vmax=len(classes) - 0.5, alpha=0.55, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(col, fontsize=9)
            if c == 0:
                ax.set_ylabel(row["id"], fontsize=8)
    cols = class_colors(len(classes))
    fig.legend(handles=[_matplotlib().Patch(color=cols[k], label=n) for k, n in enumerate(classes) if k > 0],
               loc="outside lower center", ncols=min(5, len(classes) - 1), fontsize=7, frameon=False)
    return _save(fig, path)


def display_image(t: np.ndarray) -> np.ndarray:
    """(C, H, W) preprocessed image -> (H, W) or (H, W, 3) in [0, 1] for display (per-image min-max)."""
    a = np.asarray(t, dtype=np.float32)
    a = a[0] if a.shape[0] == 1 else np.moveaxis(a[:3], 0, -1)
    lo, hi = np.percentile(a, [1, 99.5])
    return np.clip((a - lo) / max(hi - lo, 1e-6), 0, 1)

