"""How noisy is a noisy dataset: agreement statistics, a text table and a PNG preview."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from PIL import Image

from ..metrics import confusion_matrix, nanmean, scores_from_confusion
from ..errors import LabelError


def _confusion(clean: np.ndarray, noisy: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    """Rows clean, columns noisy; pixels that are ignore in either map are left out."""
    valid = (clean != ignore_index) & (noisy != ignore_index)
    c = clean[valid].astype(np.int64)
    n = noisy[valid].astype(np.int64)
    if c.size and (c.max() >= num_classes or n.max() >= num_classes):
        bad = int(max(c.max(), n.max()))
        raise LabelError(
            f"label id {bad} found but num_classes={num_classes} (ignore_index={ignore_index}); "
            "pass the right num_classes"
        )
    return confusion_matrix(n, c, num_classes, ignore_index)


def _scores(conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = scores_from_confusion(conf)
    return s["dice"], s["iou"]


def noise_stats(
    clean: Sequence[np.ndarray],
    noisy: Sequence[np.ndarray],
    num_classes: int,
    ignore_index: int = 255,
) -> dict:
    """Agreement between noisy and clean label maps.

    Args:
        clean, noisy: equal-length sequences of ``(H, W)`` integer label maps
            (pairwise equal shapes; an ``(N, H, W)`` array works).
        num_classes: ``C``, including background 0.
        ignore_index: pixels that are ignore in either map are left out.

    Returns:
        dict with

        * ``dice``, ``iou``: ``(C,)`` float, dataset-level (all pixels pooled);
          NaN for a class absent from both.
        * ``fg_dice``, ``fg_iou``: mean over classes ``1..C-1`` present in either map
          (unlike the means of :mod:`adele.metrics`, a class absent from the clean map counts).
        * ``fg_dice_per_image``: mean over images of each image's foreground
          nanmean Dice (images with no foreground in either map skipped).
        * ``changed_fraction``: fraction of compared pixels whose id differs.
        * ``confusion``: ``(C, C)`` int64 pixel counts, rows clean, columns noisy.
        * ``num_images``, ``num_pixels`` (compared pixels), ``num_classes``.
    """
    if len(clean) != len(noisy):
        raise ValueError(f"clean has {len(clean)} label maps but noisy has {len(noisy)}; pass matching lists")
    conf = np.zeros((num_classes, num_classes), np.int64)
    per_image = []
    for i, (c, n) in enumerate(zip(clean, noisy)):
        c, n = np.asarray(c), np.asarray(n)
        if c.shape != n.shape:
            raise ValueError(f"label map {i}: clean shape {c.shape} != noisy shape {n.shape}")
        conf_i = _confusion(c, n, num_classes, ignore_index)
        conf += conf_i
        fg = _scores(conf_i)[0][1:]
        if np.isfinite(fg).any():
            per_image.append(nanmean(fg))
    dice, iou = _scores(conf)
    total = int(conf.sum())
    return {
        "num_classes": num_classes,
        "num_images": len(clean),
        "num_pixels": total,
        "dice": dice,
        "iou": iou,
        "fg_dice": nanmean(dice[1:]),
        "fg_iou": nanmean(iou[1:]),
        "fg_dice_per_image": nanmean(np.asarray(per_image)),
        "changed_fraction": float(1.0 - np.trace(conf) / total) if total else 0.0,
        "confusion": conf,
    }


def format_table(stats: dict, class_names: Sequence[str] | None = None) -> str:
    """Plain-text table of :func:`noise_stats` output, one row per class."""
    num_classes = stats["num_classes"]
    if class_names is None:
        class_names = ["background"] + [f"class {c}" for c in range(1, num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(f"got {len(class_names)} class names for {num_classes} classes")
    conf = stats["confusion"]
    width = max(len("foreground mean"), *(len(n) for n in class_names)) + 4
    fmt = lambda x: "   nan" if np.isnan(x) else f"{x:6.3f}"  # noqa: E731
    lines = [f"{'id':>3} {'class':<{width}}{'dice':>6} {'iou':>6} {'clean px':>10} {'noisy px':>10}"]
    for c in range(num_classes):
        lines.append(
            f"{c:>3} {class_names[c]:<{width}}{fmt(stats['dice'][c])} {fmt(stats['iou'][c])} "
            f"{int(conf[c].sum()):>10} {int(conf[:, c].sum()):>10}"
        )
    lines.append(f"{'':>3} {'foreground mean':<{width}}{fmt(stats['fg_dice'])} {fmt(stats['fg_iou'])}")
    lines.append(
        f"per-image fg dice {stats['fg_dice_per_image']:.3f}; "
        f"changed pixels {100 * stats['changed_fraction']:.2f}% of {stats['num_pixels']} "
        f"in {stats['num_images']} images"
    )
    return "\n".join(lines)


def _contour(label: np.ndarray, ignore_index: int) -> np.ndarray:
    """Inner contour of every foreground region: fg pixels with a 4-neighbour of another id."""
    fg = (label != 0) & (label != ignore_index)
    edge = np.zeros(label.shape, bool)
    edge[1:] |= label[1:] != label[:-1]
    edge[:-1] |= label[:-1] != label[1:]
    edge[:, 1:] |= label[:, 1:] != label[:, :-1]
    edge[:, :-1] |= label[:, :-1] != label[:, 1:]
    return edge & fg


def preview_png(
    image: np.ndarray,
    clean: np.ndarray,
    noisy: np.ndarray,
    path: str | os.PathLike,
    *,
    scale: int = 2,
    ignore_index: int = 255,
) -> str:
    """Write a PNG: grayscale ``image`` with clean (green) and noisy (red) contours.

    Args:
        image: ``(H, W)`` float (min-max scaled) or uint8 intensities.
        clean, noisy: ``(H, W)`` integer label maps.
        path: output ``.png`` path.
        scale: integer upscaling (nearest) before drawing, for thin visible lines.

    Returns:
        ``str(path)``. Where both contours coincide the pixel is yellow.
    """
    image, clean, noisy = np.asarray(image), np.asarray(clean), np.asarray(noisy)
    if not (image.ndim == 2 and image.shape == clean.shape == noisy.shape):
        raise ValueError(
            f"image, clean and noisy must be (H, W) arrays of one shape, got "
            f"{image.shape}, {clean.shape}, {noisy.shape}"
        )
    scale = int(scale)
    if scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale}")
    if image.dtype == np.uint8:
        gray = image
    else:
        img = image.astype(np.float64)
        finite = np.isfinite(img)
        lo, hi = (img[finite].min(), img[finite].max()) if finite.any() else (0.0, 0.0)
        img = np.where(finite, img, lo)
        span = hi - lo if hi > lo else 1.0
        gray = np.round(255 * (img - lo) / span).astype(np.uint8)

    up = lambda a: np.repeat(np.repeat(a, scale, axis=0), scale, axis=1)  # noqa: E731
    rgb = np.repeat(up(gray)[..., None], 3, axis=2)
    green = _contour(up(clean), ignore_index)
    red = _contour(up(noisy), ignore_index)
    rgb[green & ~red] = (0, 255, 0)
    rgb[red & ~green] = (255, 0, 0)
    rgb[red & green] = (255, 255, 0)
    Image.fromarray(rgb).save(os.fspath(path), format="PNG")
    return os.fspath(path)
