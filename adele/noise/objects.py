"""Object-level annotation errors: missed objects, confused classes, false blobs.

An *object* is a connected component (8-connectivity) of one class. Each
function returns ``(noisy, count)`` where ``count`` is the number of error
events that actually changed the map, so a report can count error types.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._common import STRUCT8, check_label, check_probability, present_classes
from .synthetic import random_blob


def _components(lab: np.ndarray, ignore_index: int):
    """Yield ``(class_id, comps, n)`` per foreground class present, ascending."""
    for c in present_classes(lab, ignore_index):
        comps, n = ndimage.label(lab == c, STRUCT8)
        yield c, comps, n


def drop_objects(
    label: np.ndarray,
    rng: np.random.Generator,
    p: float,
    num_classes: int | None = None,
    *,
    ignore_index: int = 255,
) -> tuple[np.ndarray, int]:
    """Drop each object to background with probability ``p`` (missed objects).

    Args:
        label: ``(H, W)`` integer class ids, 0 = background, ``ignore_index`` = ignore.
        rng: randomness (one uniform draw per object, classes ascending).
        p: probability of dropping an object, in ``[0, 1]``.
        num_classes: when given, ids ``>= num_classes`` (other than ignore) raise.

    Returns:
        ``((H, W) uint8 noisy map, number of objects dropped)``.
    """
    p = check_probability(p)
    lab = check_label(label, num_classes, ignore_index)
    out = lab.copy()
    dropped = 0
    for _, comps, n in _components(lab, ignore_index):
        drop = np.concatenate([[False], rng.random(n) < p])
        out[drop[comps]] = 0
        dropped += int(drop.sum())
    return out, dropped


def confuse_objects(
    label: np.ndarray,
    rng: np.random.Generator,
    p: float,
    num_classes: int | None = None,
    *,
    dilation: int = 2,
    ignore_index: int = 255,
) -> tuple[np.ndarray, int]:
    """Relabel each object, with probability ``p``, as a class it touches.

    The neighbours of an object are the foreground classes under its
    ``dilation``-step 3x3 dilation (clean map). A chosen object takes one of
    them, drawn with probability proportional to the contact area; an object
    with no foreground neighbour is left unchanged (and not counted).

    Args:
        label: ``(H, W)`` integer class ids, 0 = background, ``ignore_index`` = ignore.
        rng: randomness (one uniform draw per object, classes ascending).
        p: probability of confusing an object, in ``[0, 1]``.
        num_classes: when given, ids ``>= num_classes`` (other than ignore) raise.
        dilation: contact distance in pixels (``>= 1``).

    Returns:
        ``((H, W) uint8 noisy map, number of objects relabelled)``.
    """
    p = check_probability(p)
    dilation = int(dilation)
    if dilation < 1:
        raise ValueError(f"dilation must be >= 1, got {dilation}")
    lab = check_label(label, num_classes, ignore_index)
    out = lab.copy()
    h, w = lab.shape
    relabelled = 0
    for c, comps, n in _components(lab, ignore_index):
        chosen = np.flatnonzero(rng.random(n) < p) + 1
        if chosen.size == 0:
            continue
        boxes = ndimage.find_objects(comps)
        for k in chosen:
            rs, cs = boxes[k - 1]
            r0, r1 = max(rs.start - dilation, 0), min(rs.stop + dilation, h)
            c0, c1 = max(cs.start - dilation, 0), min(cs.stop + dilation, w)
            obj = comps[r0:r1, c0:c1] == k
            ring = ndimage.binary_dilation(obj, STRUCT8, iterations=dilation) & ~obj
            near = lab[r0:r1, c0:c1][ring]
            near = near[(near != 0) & (near != c) & (near != ignore_index)]
            if near.size == 0:
                continue
            # A uniform pick among the ring pixels = contact-weighted pick of a class.
            out[r0:r1, c0:c1][obj] = near[rng.integers(near.size)]
            relabelled += 1
    return out, relabelled


def add_blobs(
    label: np.ndarray,
    rng: np.random.Generator,
    p: float,
    num_classes: int,
    *,
    radius: tuple[float, float] = (0.03, 0.1),
    class_source: str = "present",
    ignore_index: int = 255,
) -> tuple[np.ndarray, int]:
    """With probability ``p``, add one false blob of a foreground class on background.

    The blob is a random smooth shape (:func:`~adele.noise.synthetic.random_blob`)
    centred on a random background pixel, painted only on background pixels.

    Args:
        label: ``(H, W)`` integer class ids, 0 = background, ``ignore_index`` = ignore.
        rng: randomness.
        p: probability of adding a blob to this slice, in ``[0, 1]``.
        num_classes: ``C``; blob classes are drawn from ``1..C-1``.
        radius: ``(lo, hi)`` range of the blob's mean radius as a fraction of
            ``min(H, W)``.
        class_source: ``'present'`` draws the class among those present in the
            slice (any foreground class when none is), ``'any'`` among ``1..C-1``.

    Returns:
        ``((H, W) uint8 noisy map, 1 if a blob was added else 0)``.
    """
    p = check_probability(p)
    lo, hi = (float(v) for v in radius)
    if not 0 < lo <= hi:
        raise ValueError(f"radius must be a (lo, hi) range with 0 < lo <= hi, got {radius}")
    if class_source not in ("present", "any"):
        raise ValueError(f"class_source must be 'present' or 'any', got {class_source!r}")
    lab = check_label(label, num_classes, ignore_index)
    if num_classes < 2 or rng.random() >= p:
        return lab, 0
    background = np.flatnonzero(lab.ravel() == 0)
    if background.size == 0:
        return lab, 0
    candidates = present_classes(lab, ignore_index) if class_source == "present" else []
    if not candidates:
        candidates = list(range(1, num_classes))
    cls = candidates[rng.integers(len(candidates))]
    h, w = lab.shape
    center = divmod(int(background[rng.integers(background.size)]), w)
    blob = random_blob(rng, (h, w), center, rng.uniform(lo, hi) * min(h, w))
    out = lab.copy()
    out[blob & (lab == 0)] = cls
    return out, 1
