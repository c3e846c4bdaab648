"""Helpers shared by the noise modules; not part of the public API.

Conventions used by every noise function:

* ``label``: ``(H, W)`` integer array, class ids ``0..C-1`` (0 = background),
  ``ignore_index`` (default 255) = ignore. Returned maps are new ``uint8``
  arrays; the input is never modified.
* Ignore pixels are never changed and noise never writes into them.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from ..errors import LabelError

#: 3x3 structuring element with full 8-connectivity.
STRUCT8 = np.ones((3, 3), dtype=bool)


def check_label(label, num_classes: int | None, ignore_index: int) -> np.ndarray:
    """Validate a label map and return it as a ``(H, W) uint8`` array (a copy).

    Raises :class:`LabelError` with the fix in the message when the map is not
    2-D integer, or holds an id that is neither ``< num_classes`` nor
    ``ignore_index``.
    """
    arr = np.asarray(label)
    if arr.ndim != 2:
        raise LabelError(
            f"label must be a 2-D (H, W) class-id map, got shape {arr.shape}; "
            "pass one slice at a time"
        )
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        raise LabelError(
            f"label must hold integer class ids, got dtype {arr.dtype}; "
            "convert it with label.astype(np.uint8)"
        )
    if num_classes is not None:
        if not 1 <= int(num_classes) <= 256:
            raise LabelError(f"num_classes must be in 1..256 for uint8 labels, got {num_classes}")
        if 0 <= ignore_index < num_classes:
            raise LabelError(
                f"ignore_index={ignore_index} collides with a class id (num_classes={num_classes}); "
                "use an ignore_index >= num_classes, e.g. 255"
            )
    if arr.size == 0:
        return arr.astype(np.uint8)
    if arr.dtype != np.uint8:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise LabelError(
                f"label ids must lie in 0..255 to fit uint8, found range [{lo}, {hi}]; "
                "map out-of-range ids to ignore_index first"
            )
    out = arr.astype(np.uint8, copy=True)
    if num_classes is not None:
        counts = np.bincount(out.ravel(), minlength=256)
        bad = np.flatnonzero(counts[num_classes:])
        bad = bad + num_classes
        bad = bad[bad != ignore_index]
        if bad.size:
            raise LabelError(
                f"label has class id {int(bad[0])} but num_classes={num_classes} "
                f"(ignore_index={ignore_index}); pass the right num_classes or "
                "map that id to ignore_index"
            )
    return out


def present_classes(label: np.ndarray, ignore_index: int) -> list[int]:
    """Foreground class ids (> 0, != ignore_index) present in ``label``, ascending."""
    counts = np.bincount(label.ravel(), minlength=256)
    ids = np.flatnonzero(counts)
    return [int(c) for c in ids if c != 0 and c != ignore_index]


def class_sequence(
    label: np.ndarray, ignore_index: int, class_order: Sequence[int] | None
) -> list[int]:
    """Classes to process, in painting order: ``class_order`` (those present) or ascending."""
    present = present_classes(label, ignore_index)
    if class_order is None:
        return present
    present_set = set(present)
    return [int(c) for c in class_order if int(c) in present_set]


def paint(
    label: np.ndarray, masks: Iterable[tuple[int, np.ndarray]], ignore_index: int
) -> np.ndarray:
    """Replace the given classes by their new masks, painted in the given order.

    Every pixel of a processed class first becomes background; then each
    ``(class_id, mask)`` is painted in turn (later ones over earlier ones),
    never over ``ignore_index`` pixels. Classes not listed are kept except
    where a painted mask covers them.
    """
    masks = list(masks)
    out = label.copy()
    if not masks:
        return out
    ids = np.array([c for c, _ in masks], dtype=np.uint8)
    out[np.isin(label, ids)] = 0
    writable = label != ignore_index
    for c, m in masks:
        out[m & writable] = c
    return out


def nearest_resize(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resampling of a 2-D array to exactly ``shape``.

    Pixel centres are aligned (output pixel ``i`` samples input
    ``floor((i + 0.5) * n_in / n_out)``), so an integer upscale followed by the
    matching downscale is the identity.
    """
    rows = _nearest_index(mask.shape[0], shape[0])
    cols = _nearest_index(mask.shape[1], shape[1])
    return mask[np.ix_(rows, cols)]


def _cubic_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of bicubic interpolation (Keys, a = -0.75), pixel centres aligned,
    edge pixels replicated: the convolution OpenCV's ``INTER_CUBIC`` resize applies per axis."""
    a = -0.75
    x = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    x0 = np.floor(x).astype(np.intp)
    t = x - x0
    w = np.stack([
        ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
        ((a + 2) * t - (a + 3)) * t * t + 1,
        ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
    ])
    w = np.concatenate([w, 1.0 - w.sum(axis=0, keepdims=True)])  # (4, n_out), taps x0-1 .. x0+2
    out = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    for k in range(4):
        np.add.at(out, (rows, np.clip(x0 + k - 1, 0, n_in - 1)), w[k])
    return out


def cubic_weights(n_in: int, n_out: int) -> np.ndarray:
    """Public name of the per-axis bicubic weight matrix (n_out, n_in) used by :func:`cubic_resize_mask`."""
    return _cubic_weights(n_in, n_out)


def touched(weights: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    """Output index range [a, b) of a banded (n_out, n_in) weight matrix whose taps reach inputs [lo, hi)."""
    rows = np.flatnonzero(np.abs(weights[:, lo:hi]).sum(axis=1) > 0)
    return (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, 0)


def cubic_resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bicubic resampling of a binary ``(H, W)`` mask to ``shape``, thresholded at one half.

    The official SegTHOR noise resizes ``uint8`` 0/1 masks with OpenCV's ``INTER_CUBIC`` and keeps
    ``> 0``, i.e. an interpolated value that rounds to 1; the same here in float64.
    """
    rows = _cubic_weights(mask.shape[0], shape[0])
    cols = _cubic_weights(mask.shape[1], shape[1])
    return rows @ np.asarray(mask, dtype=np.float64) @ cols.T >= 0.5


def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    idx = ((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.intp)
    return np.minimum(idx, n_in - 1)


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``(r0, r1, c0, c1)`` half-open bounding box of a non-empty boolean mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def check_probability(p: float, name: str = "p") -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
    return p
