"""Per-image label quality from a trained model's softmax (which masks to review first).

For one image with labels ``L`` (valid pixels V, ``L != ignore_index``),
softmax ``p`` (C, H, W), prediction ``k* = argmax_k p_k``, confidence
``m = max_k p_k`` and self-confidence ``s = p_L`` (probability of the given label):

    suspect      = V and k* != L and m > tau                   (tau = 0.7)
    disagree     = |suspect| / |V|
    pixel_term   = 1 - mean_V( m * [k* != L] )                 (confidence-weighted agreement)
    region(k)    = V and (L == k  or  (k* == k and m > tau))   (where label or model says k)
    class_term   = mean over k with region(k) non-empty of mean_region(k)( s )
    score        = (1 - w) * pixel_term + w * class_term       (w = class_weight = 0.5)

``score`` is in [0, 1]; lower = more suspicious. ``pixel_term`` is dominated
by large classes; ``class_term`` gives every class in the image the same
weight, so a small structure that is over- or under-traced (pixels labelled
k the model calls background, or pixels the model confidently calls k that
are labelled background) lowers the score as much as a large one.
An image with no valid pixel gets score 1 and disagree 0 (nothing to doubt).
"""
from __future__ import annotations

import numpy as np


def label_quality_scores(
    labels: np.ndarray,
    probs: np.ndarray,
    ignore_index: int = 255,
    tau: float = 0.7,
    class_weight: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score each label map against the model's probabilities (see module doc).

    labels: (N, H, W) integer class ids, ``ignore_index`` = ignore.
    probs: (N, C, H, W) float softmax probabilities (rows sum to 1).
    Returns (scores (N,) float64 in [0, 1], disagree_frac (N,) float64 in [0, 1],
    suspect (N, H, W) bool).
    """
    labels = np.asarray(labels)
    probs = np.asarray(probs)
    if labels.ndim != 3 or probs.ndim != 4 or probs.shape[0] != labels.shape[0] or probs.shape[2:] != labels.shape[1:]:
        raise ValueError(f"labels must be (N, H, W) and probs (N, C, H, W) with the same N, H, W; got {labels.shape} and {probs.shape}")
    if not 0.0 <= class_weight <= 1.0:
        raise ValueError(f"class_weight must be in [0, 1], got {class_weight}")
    n, c = probs.shape[:2]
    valid_all = labels != ignore_index
    if (labels[valid_all] >= c).any():
        raise ValueError(f"labels hold class ids >= {c} (the number of probability channels)")
    scores = np.ones(n, dtype=np.float64)
    disagree = np.zeros(n, dtype=np.float64)
    suspect = np.zeros(labels.shape, dtype=bool)
    for i in range(n):
        p = probs[i].astype(np.float32, copy=False)
        valid = valid_all[i]
        if not valid.any():
            continue
        lab = np.where(valid, labels[i], 0).astype(np.int64)
        pred = p.argmax(0)
        conf = p.max(0)
        self_conf = np.take_along_axis(p, lab[None], 0)[0]
        wrong = valid & (pred != lab)
        sus = wrong & (conf > tau)
        suspect[i] = sus
        disagree[i] = sus.sum() / valid.sum()
        pixel_term = 1.0 - float((conf * wrong).sum() / valid.sum())
        confident_pred = np.where(valid & (conf > tau), pred, -1)
        terms = []
        for k in range(c):
            region = (valid & (lab == k)) | (confident_pred == k)
            if region.any():
                terms.append(float(self_conf[region].mean()))
        class_term = float(np.mean(terms))
        scores[i] = np.clip((1.0 - class_weight) * pixel_term + class_weight * class_term, 0.0, 1.0)
    return scores, disagree, suspect
