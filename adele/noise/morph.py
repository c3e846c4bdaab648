"""Morphological annotation noise at normalized object size (ADELE's SegTHOR protocol).

For each class present in a slice, the class's binary mask is rescaled so that
it covers about ``target_area`` pixels, eroded (under-segmentation) or dilated
(over-segmentation) with a 3x3 kernel for a random number of iterations in
``iterations = (lo, hi)`` (inclusive), and rescaled back to the original grid.
Normalizing the size first makes the relative error similar for large and
small organs. The paper's main ("final") setting picks under or over once per
slice with probability 0.5, with ``target_area=1000`` and 2-4 iterations.

Two variants (``variant``):

``official`` (default; ``SegThor/brat/loading.py`` ``final_noise_function``)
    The iterations are drawn once per slice (like the mode). Classes are processed
    one after the other in a fixed order (ascending ids unless ``class_order``); each
    class's mask is resized smoothly (bicubic, thresholded at one half) as a whole
    image by sqrt(target_area / area), eroded or dilated, and resized back. Erosion
    sets to background every pixel where the resized-back mask differs from the
    class's mask; dilation writes the class only where the label is background, so
    it grows into background, never over another class, and earlier classes win.
``painted`` (this project's earlier variant)
    Iterations drawn per class, nearest-neighbour resize of the class's bounding
    box, and every class repainted in ``class_order`` (a random order per slice by
    default), later classes over earlier ones, so dilated neighbours overwrite each
    other. The guarantees below hold for it.

Guarantees of ``painted``, per class and before painting order is applied:
``under`` never adds pixels (noisy ⊆ clean), ``over`` never removes pixels
(clean ⊆ noisy). Painting follows ``class_order`` (ascending ids by default):
later classes are painted over earlier ones, pixels removed by erosion become
background (0) unless a later class covers them, ignore pixels are never
written.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import ndimage

from ._common import STRUCT8, bbox, check_label, class_sequence, cubic_weights, nearest_resize, paint, touched

MODES = ("under", "over", "final", "mixed")
VARIANTS = ("official", "painted")


#: default object size (pixels) each class is rescaled to: the one default of ``adele noise`` and ``data.noise``
#: recipes (the official SegTHOR noise's 1000)
TARGET_AREA = 1000.0
#: default (lo, hi) erosion/dilation steps
ITERATIONS = (2, 4)


def morph_mask(
    mask: np.ndarray,
    mode: str,
    iterations: int,
    target_area: float | None = 1000,
) -> np.ndarray:
    """Erode or dilate one binary mask at normalized object size.

    Args:
        mask: ``(H, W)`` bool, the object (all pixels of one class).
        mode: ``'under'`` (erode) or ``'over'`` (dilate).
        iterations: number of 3x3 (8-connected) erosion/dilation steps, ``>= 0``.
        target_area: area in pixels the mask is rescaled to before the
            morphology (nearest-neighbour, on its bounding box plus a margin);
            ``None`` works at native resolution.

    Returns:
        ``(H, W)`` bool. ``'under'`` returns a subset of ``mask``, ``'over'`` a
        superset. Objects that vanish under erosion come back empty.
    """
    mask = np.asarray(mask, dtype=bool)
    if mode not in ("under", "over"):
        raise ValueError(f"mode must be 'under' or 'over' for morph_mask, got {mode!r}")
    iterations = int(iterations)
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    area = int(mask.sum())
    if area == 0 or iterations == 0:
        return mask.copy()

    scale = 1.0 if target_area is None else math.sqrt(float(target_area) / area)
    # Margin (original pixels) so that the zoomed crop keeps >= iterations + 1
    # background pixels around the object on every side that is not the image edge.
    margin = int(math.ceil((iterations + 1) / scale)) + 1
    r0, r1, c0, c1 = bbox(mask)
    h, w = mask.shape
    r0, c0 = max(r0 - margin, 0), max(c0 - margin, 0)
    r1, c1 = min(r1 + margin, h), min(c1 + margin, w)
    crop = mask[r0:r1, c0:c1]

    zoomed_shape = (max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale)))
    zoomed = nearest_resize(crop, zoomed_shape)
    if mode == "under":
        # border_value=1: the image edge is not an object boundary; interior
        # crop edges are background anyway thanks to the margin.
        zoomed = ndimage.binary_erosion(zoomed, STRUCT8, iterations=iterations, border_value=1)
    else:
        zoomed = ndimage.binary_dilation(zoomed, STRUCT8, iterations=iterations)
    back = nearest_resize(zoomed, crop.shape)
    back = (back & crop) if mode == "under" else (back | crop)

    out = mask.copy()
    out[r0:r1, c0:c1] = back
    return out


def morph_noise(label: np.ndarray, rng: np.random.Generator, mode: str = "final", num_classes: int | None = None, **kwargs) -> np.ndarray:
    """Morphological label noise on one slice (see the module docstring): :func:`morph_noise_events` without the counts.

    Returns ``(H, W) uint8`` noisy label map (a new array).
    """
    return morph_noise_events(label, rng, mode, num_classes, **kwargs)[0]


def morph_noise_events(
    label: np.ndarray,
    rng: np.random.Generator,
    mode: str = "final",
    num_classes: int | None = None,
    *,
    target_area: float | None = TARGET_AREA,
    iterations: int | tuple[int, int] = ITERATIONS,
    class_order: Sequence[int] | str | None = None,
    ignore_index: int = 255,
    variant: str = "official",
) -> tuple[np.ndarray, dict[str, int]]:
    """Morphological label noise on one slice, with event counts.

    Args:
        label: ``(H, W)`` integer class ids, 0 = background, ``ignore_index`` = ignore.
        rng: source of randomness (modes and iteration counts).
        mode: ``'under'`` (erode every class), ``'over'`` (dilate every class),
            ``'final'`` (one coin flip per slice picks under or over; the
            paper's main setting) or ``'mixed'`` (one coin flip per class).
        num_classes: ``C``; when given, ids ``>= C`` (other than ignore) raise
            :class:`~adele.noise.LabelError`. ``None`` skips that check.
        target_area: pixels each class is rescaled to before the morphology;
            ``None`` keeps native resolution.
        iterations: ``(lo, hi)`` inclusive range (or a single int) of 3x3
            erosion/dilation steps, drawn per slice (``official``) or per class.
        class_order: processing order: ids, ``'ascending'`` (the default) or
            ``'random'`` (a new order per slice, drawn from ``rng``). With
            ``painted`` later classes are painted over earlier ones; with
            ``official`` earlier classes win. Classes not listed are left as they are.
        ignore_index: id of pixels that are never changed.
        variant: ``'official'`` or ``'painted'`` (module docstring).

    Returns:
        ``(noisy, events)`` with ``events = {'under': classes eroded,
        'over': classes dilated, 'vanished': classes erased entirely}``.
    """
    if mode not in MODES:
        raise ValueError(f"unknown morph mode {mode!r}; valid modes: {', '.join(MODES)}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown morph variant {variant!r}; valid variants: {', '.join(VARIANTS)}")
    lo, hi = check_iterations(iterations)
    if target_area is not None and not float(target_area) > 0:
        raise ValueError(f"target_area must be > 0 (or None for native size), got {target_area}")
    lab = check_label(label, num_classes, ignore_index)
    events = {"under": 0, "over": 0, "vanished": 0}
    if isinstance(class_order, str) and class_order not in ("random", "ascending"):
        raise ValueError(f"class_order must be a sequence of ids, 'ascending' or 'random', got {class_order!r}")
    classes = class_sequence(lab, ignore_index, None if isinstance(class_order, str) else class_order)
    if not classes:
        return lab, events
    if class_order == "random":  # no class systematically wins where dilated neighbours meet
        classes = [classes[i] for i in rng.permutation(len(classes))]

    slice_mode = mode
    if mode == "final":
        slice_mode = "under" if rng.random() < 0.5 else "over"
    if variant == "official":
        return _official(lab, classes, rng, mode, slice_mode, (lo, hi), target_area, ignore_index, events)
    masks = []
    for c in classes:
        class_mode = slice_mode
        if mode == "mixed":
            class_mode = "under" if rng.random() < 0.5 else "over"
        n_iter = int(rng.integers(lo, hi + 1))
        noisy = morph_mask(lab == c, class_mode, n_iter, target_area)
        events[class_mode] += 1
        if class_mode == "under" and not noisy.any():
            events["vanished"] += 1
        masks.append((c, noisy))
    return paint(lab, masks, ignore_index), events


def _official(lab, classes, rng, mode, slice_mode, iterations, target_area, ignore_index, events):
    """The ``official`` variant of :func:`morph_noise_events` (module docstring); ``lab`` is a copy it may modify."""
    n_iter = int(rng.integers(iterations[0], iterations[1] + 1))  # once per slice
    h, w = lab.shape
    writable = lab != ignore_index
    for c in classes:
        class_mode = slice_mode
        if mode == "mixed":
            class_mode = "under" if rng.random() < 0.5 else "over"
        mask = lab == c
        area = int(mask.sum())
        if area == 0:  # erased by an earlier class's erosion spill-over
            continue
        ratio = 1.0 if target_area is None else math.sqrt(float(target_area) / area)
        big = (max(1, round(h * ratio)), max(1, round(w * ratio)))
        back = _resize_morph_resize(mask, big, class_mode, n_iter)
        events[class_mode] += 1
        if class_mode == "under":
            lab[(back != mask) & writable] = 0
            if not (lab == c).any():
                events["vanished"] += 1
        else:
            lab[back & (lab == 0)] = c
    return lab, events


def _resize_morph_resize(mask: np.ndarray, big: tuple[int, int], mode: str, n_iter: int) -> np.ndarray:
    """The official resize (bicubic, as a whole image) -> erode/dilate -> resize back of one class's (H, W) bool mask.

    Computed on the part of the grids the object can reach (the weights are banded, the morphology grows by
    ``n_iter`` pixels), which gives the same pixels as the whole images at a fraction of the cost.
    """
    h, w = mask.shape
    if big == (h, w):
        z = mask
        if mode == "under":
            return ndimage.binary_erosion(z, STRUCT8, iterations=n_iter, border_value=1)
        return ndimage.binary_dilation(z, STRUCT8, iterations=n_iter)
    r0, r1, c0, c1 = bbox(mask)
    up_r, up_c = cubic_weights(h, big[0]), cubic_weights(w, big[1])  # (H', H), (W', W)
    i0, i1 = touched(up_r, r0, r1)
    j0, j1 = touched(up_c, c0, c1)
    pad = n_iter + 2  # room for the dilation, and a background rim so that erosion sees the object's edge
    i0, i1, j0, j1 = max(0, i0 - pad), min(big[0], i1 + pad), max(0, j0 - pad), min(big[1], j1 + pad)
    zoomed = up_r[i0:i1, r0:r1] @ mask[r0:r1, c0:c1].astype(np.float64) @ up_c[j0:j1, c0:c1].T >= 0.5
    if mode == "under":  # the image edge is not an object boundary (OpenCV's erode border)
        zoomed = ndimage.binary_erosion(zoomed, STRUCT8, iterations=n_iter, border_value=1)
    else:
        zoomed = ndimage.binary_dilation(zoomed, STRUCT8, iterations=n_iter)
    down_r, down_c = cubic_weights(big[0], h), cubic_weights(big[1], w)  # (H, H'), (W, W')
    a0, a1 = touched(down_r, i0, i1)
    b0, b1 = touched(down_c, j0, j1)
    back = np.zeros((h, w), dtype=bool)
    back[a0:a1, b0:b1] = down_r[a0:a1, i0:i1] @ zoomed.astype(np.float64) @ down_c[b0:b1, j0:j1].T >= 0.5
    return back


def check_iterations(iterations) -> tuple[int, int]:
    """Normalize ``int | (lo, hi)`` to a validated inclusive ``(lo, hi)``, ``1 <= lo <= hi``."""
    if isinstance(iterations, (int, np.integer)):
        lo = hi = int(iterations)
    else:
        try:
            lo, hi = (int(v) for v in iterations)
        except (TypeError, ValueError):
            raise ValueError(
                f"iterations must be an int or a (lo, hi) pair, got {iterations!r}"
            ) from None
    if lo < 1 or hi < lo:
        raise ValueError(f"iterations range must satisfy 1 <= lo <= hi, got ({lo}, {hi})")
    return lo, hi
