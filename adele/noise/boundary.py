"""Boundary ("Markov") annotation noise, after the spatial label-noise model of
Spatial Correction (Yao et al., ICLR 2023).

Model. In the Markov model every point of an object's contour takes ``T``
random-walk steps along the contour normal; each step moves it one pixel
outwards with probability ``p_expand`` and inwards otherwise, and the decisions
of neighbouring contour points are correlated, so the contour bulges and dents
in coherent stretches instead of pixel-wise speckle. This module samples the
end state of that walk in one vectorized pass per class:

1. Connected components (8-connectivity) of the class get an equivalent
   radius ``r = sqrt(area / pi)`` and a step count ``T = strength * r``
   (or ``T = steps`` when given), so the error scales with object size.
2. The sum of ``T`` biased ±1 steps is approximated (central limit) by
   ``D(x) = T (2p - 1) + 2 sqrt(T p (1 - p)) g(x)``, where ``g`` is a
   zero-mean, unit-variance Gaussian random field (white noise smoothed with
   a Gaussian of width ``smoothness * r``): ``g`` carries the correlation
   along the contour, the first term the drift towards expansion
   (``p_expand > 0.5``) or shrinkage (``p_expand < 0.5``).
3. With ``s(x)`` the signed distance to the contour (positive inside,
   ``±0.5`` on the pixels either side of it), the noisy object is
   ``{x : s(x) + D(x) > 0}``: the contour moves outwards by ``D`` where ``D > 0``
   and inwards where ``D < 0``. Each pixel uses the ``T`` of its nearest
   component. Only a band of width ``max |D|`` around the contour can change.

Classes are painted in ascending id order (later over earlier); pixels a class
loses become background unless a later class covers them; ignore pixels are
never written. Small objects may vanish when the walk shrinks them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from ._common import STRUCT8, bbox, check_label, check_probability, class_sequence, paint


def markov_noise(label: np.ndarray, rng: np.random.Generator, num_classes: int | None = None, *args, **kwargs) -> np.ndarray:
    """Spatially correlated boundary noise on one slice: :func:`markov_noise_events` without the counts.

    Returns ``(H, W) uint8`` noisy label map (a new array).
    """
    return markov_noise_events(label, rng, num_classes, *args, **kwargs)[0]


def markov_noise_events(
    label: np.ndarray,
    rng: np.random.Generator,
    num_classes: int | None = None,
    strength: float = 0.5,
    p_expand: float = 0.5,
    steps: int | None = None,
    *,
    smoothness: float = 0.5,
    class_order: Sequence[int] | None = None,
    ignore_index: int = 255,
) -> tuple[np.ndarray, dict[str, int]]:
    """Spatially correlated boundary noise on one slice (model in the module docstring), with event counts.

    Args:
        label: ``(H, W)`` integer class ids, 0 = background, ``ignore_index`` = ignore.
        rng: randomness (one Gaussian field per class).
        num_classes: ``C``; when given, ids ``>= C`` (other than ignore) raise
            :class:`~adele.noise.LabelError`.
        strength: random-walk steps per pixel of equivalent radius
            (``T = strength * r``); ``0`` leaves the map unchanged. Ignored when
            ``steps`` is given.
        p_expand: probability that a step moves the contour outwards
            (0.5 = unbiased; > 0.5 mostly over-, < 0.5 mostly under-segmentation).
        steps: fixed number of walk steps ``T`` for every object (pixels).
        smoothness: correlation length of the walk along the contour, as a
            fraction of the class's (area-weighted) equivalent radius.
        class_order: painting order; default ascending ids.
        ignore_index: id of pixels that are never changed.

    Returns:
        ``(noisy (H, W) uint8, {'markov': classes perturbed, 'vanished': classes erased entirely})``.
    """
    if not float(strength) >= 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    p = check_probability(p_expand, "p_expand")
    if steps is not None and int(steps) < 0:
        raise ValueError(f"steps must be >= 0 (or None), got {steps}")
    if not float(smoothness) > 0:
        raise ValueError(f"smoothness must be > 0, got {smoothness}")
    lab = check_label(label, num_classes, ignore_index)
    events = {"markov": 0, "vanished": 0}
    masks = []
    for c in class_sequence(lab, ignore_index, class_order):
        noisy = _walk_class(lab == c, rng, float(strength), p, steps, float(smoothness))
        events["markov"] += 1
        events["vanished"] += int(not noisy.any())
        masks.append((c, noisy))
    return paint(lab, masks, ignore_index), events


def _walk_class(
    mask: np.ndarray,
    rng: np.random.Generator,
    strength: float,
    p: float,
    steps: int | None,
    smoothness: float,
) -> np.ndarray:
    """End state of the correlated contour random walk for one class mask (bool, (H, W)).

    Works on the class's bounding box plus the largest possible displacement,
    which gives the same signed distances as the whole image at a fraction of
    the cost.
    """
    h, w = mask.shape
    b0, b1, b2, b3 = bbox(mask)
    comps, n = ndimage.label(mask[b0:b1, b2:b3], STRUCT8)
    areas = np.bincount(comps.ravel(), minlength=n + 1)[1:].astype(np.float64)
    radii = np.sqrt(areas / np.pi)
    t_comp = np.full(n, float(steps)) if steps is not None else strength * radii
    t_max = float(t_comp.max())
    drift, spread = 2.0 * p - 1.0, 2.0 * np.sqrt(p * (1.0 - p))
    reach = t_max * abs(drift) + spread * np.sqrt(t_max) * _FIELD_CLIP
    if reach < 0.5:  # no pixel can change side
        return mask.copy()

    # Crop: bounding box + reach; every mask pixel lies inside, and the crop's
    # own border (unless it is the image edge) is background, so distances are exact.
    m = int(np.ceil(reach)) + 1
    r0, r1, c0, c1 = max(b0 - m, 0), min(b1 + m, h), max(b2 - m, 0), min(b3 + m, w)
    crop = mask[r0:r1, c0:c1]
    comps = np.pad(comps, ((b0 - r0, r1 - b1), (b2 - c0, c1 - b3)))
    d_in = ndimage.distance_transform_edt(crop)
    d_out, (ri, ci) = ndimage.distance_transform_edt(~crop, return_indices=True)
    signed = np.where(crop, d_in - 0.5, 0.5 - d_out)
    t_map = t_comp[comps[ri, ci] - 1]  # T of the nearest component, per pixel

    sigma = max(1.0, smoothness * float((radii * areas).sum() / areas.sum()))
    field = _smooth_field(rng, crop.shape, sigma)
    shift = t_map * drift + spread * np.sqrt(t_map) * field
    out = np.zeros_like(mask)
    out[r0:r1, c0:c1] = signed + shift > 0
    return out


#: The unit-variance field is clipped to this many standard deviations, which
#: bounds the displacement (and so the crop) without visibly changing it.
_FIELD_CLIP = 3.0


def _smooth_field(
    rng: np.random.Generator,
    size: tuple[int, int],
    sigma: float,
    truncate: float = 4.0,
) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian-correlated random field of ``size`` pixels.

    White noise smoothed by a Gaussian of width ``sigma`` pixels. For speed
    with wide kernels the noise is drawn on a grid ``k = sigma // 2`` times
    coarser, smoothed there by ``sigma / k`` (2 to 4 coarse pixels), and
    interpolated linearly back; the noise extends one kernel radius past the
    edges so the filter always has full support. The field is divided by the
    filter's theoretical standard deviation and clipped to ``±_FIELD_CLIP``.
    """
    k = max(1, int(sigma // 2))
    s = sigma / k
    rad = int(truncate * s + 0.5)
    nodes = [(n - 1) // k + 2 for n in size]
    noise = rng.standard_normal((nodes[0] + 2 * rad, nodes[1] + 2 * rad))
    field = ndimage.gaussian_filter(noise, s, truncate=truncate)[rad:rad + nodes[0], rad:rad + nodes[1]]
    x = np.arange(-rad, rad + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / s) ** 2)
    field /= float((kernel / kernel.sum()) @ (kernel / kernel.sum()))
    if k > 1:
        coords = np.meshgrid(np.arange(size[0]) / k, np.arange(size[1]) / k, indexing="ij")
        field = ndimage.map_coordinates(field, coords, order=1)
    else:
        field = field[:size[0], :size[1]]
    return np.clip(field, -_FIELD_CLIP, _FIELD_CLIP)
