"""Seeded synthetic shapes and label maps (for tests, benchmarks and demos)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def random_blob(
    rng: np.random.Generator,
    shape: tuple[int, int],
    center: tuple[float, float],
    radius: float,
    roughness: float = 0.3,
) -> np.ndarray:
    """A random smooth blob: a rotated ellipse whose boundary is bent by a smooth field.

    Args:
        rng: randomness (axes ratio, angle, boundary field).
        shape: ``(H, W)`` of the output.
        center: ``(row, col)`` of the blob centre.
        radius: mean radius in pixels (``>= 0.5``).
        roughness: amplitude of the boundary perturbation relative to the radius.

    Returns:
        ``(H, W)`` bool mask; it always contains the centre pixel when the
        centre lies inside the image.
    """
    h, w = shape
    radius = max(float(radius), 0.5)
    ratio = rng.uniform(0.6, 1.0)
    a, b = radius / np.sqrt(ratio), radius * np.sqrt(ratio)
    theta = rng.uniform(0.0, np.pi)
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    dr, dc = rr - center[0], cc - center[1]
    u = dr * np.cos(theta) + dc * np.sin(theta)
    v = -dr * np.sin(theta) + dc * np.cos(theta)
    dist = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=max(radius / 2.0, 1.0))
    std = field.std()
    if std > 0:
        field /= std
    mask = dist + roughness * np.clip(field, -2.0, 2.0) / 2.0 < 1.0
    ci, cj = int(round(center[0])), int(round(center[1]))
    if 0 <= ci < h and 0 <= cj < w:
        mask[ci, cj] = True
    return mask


def synthetic_label_map(
    rng: np.random.Generator,
    shape: tuple[int, int] = (96, 112),
    num_classes: int = 9,
    n_blobs: int = 2,
    ignore_fraction: float = 0.0,
    ignore_index: int = 255,
) -> np.ndarray:
    """An atlas-like label map: a wobbly "brain" split into touching regions.

    Classes ``1..C-1`` tile an ellipse by (noisy) nearest-seed assignment, so
    neighbouring classes touch as anatomical parcels do; ``n_blobs`` extra
    isolated blobs of random classes are added, and about ``ignore_fraction``
    of the pixels (a band plus scattered pixels) are set to ``ignore_index``.

    Returns:
        ``(H, W) uint8`` label map.
    """
    h, w = shape
    fg_classes = np.arange(1, num_classes)
    brain = random_blob(rng, shape, (h / 2, w / 2), 0.33 * min(h, w), roughness=0.2)
    out = np.zeros(shape, np.uint8)
    if fg_classes.size:
        seeds = np.column_stack([rng.uniform(0.2 * h, 0.8 * h, fg_classes.size),
                                 rng.uniform(0.2 * w, 0.8 * w, fg_classes.size)])
        rr, cc = np.mgrid[0:h, 0:w]
        d = np.hypot(rr[..., None] - seeds[:, 0], cc[..., None] - seeds[:, 1])
        wobble = ndimage.gaussian_filter(rng.standard_normal((h, w, fg_classes.size)), (3, 3, 0))
        d = d + 40.0 * wobble
        out[brain] = fg_classes[np.argmin(d, axis=-1)][brain]
        for _ in range(n_blobs):
            r = rng.uniform(0.03, 0.08) * min(h, w)
            center = (rng.uniform(0, h), rng.uniform(0, w))
            out[random_blob(rng, shape, center, r)] = rng.choice(fg_classes)
    if ignore_fraction > 0:
        n_ignore = int(round(ignore_fraction * h * w))
        band = max(1, n_ignore // (2 * w))
        r0 = int(rng.integers(0, max(1, h - band)))
        out[r0:r0 + band] = ignore_index
        flat = rng.choice(h * w, size=max(0, n_ignore - band * w), replace=False)
        out.ravel()[flat] = ignore_index
    return out
