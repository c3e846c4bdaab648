"""What several benchmark scripts share (so that no script imports another): the embedded data's hand-tuned recipe,
the consensus of noise realizations, and paired confidence intervals."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage, stats

#: the hand-tuned recipe of the tiled AAL set (``configs/colin27.yaml``), the benchmarks' recipe before the planner
PRESET = Path(__file__).resolve().parents[1] / "configs" / "colin27.yaml"


def consensus(votes: np.ndarray, sigma: float) -> np.ndarray:
    """``votes (C, N, H, W)`` counts -> ``(N, H, W) uint8`` argmax after an in-plane Gaussian of ``sigma`` px."""
    if sigma > 0:
        votes = ndimage.gaussian_filter(votes.astype(np.float32), sigma=(0, 0, sigma, sigma))
    return votes.argmax(0).astype(np.uint8)


def paired_ci(diffs, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of paired differences and its two-sided t-interval: (mean, low, high); NaN bounds for < 2 pairs."""
    d = np.asarray(diffs, dtype=float)
    m = float(d.mean())
    if d.size < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size))
    return m, m - half, m + half


def fmt_ci(m, lo, hi) -> str:
    return f"{m:+.1f} [{lo:+.1f}, {hi:+.1f}]" if np.isfinite(lo) else f"{m:+.1f}"
