"""Which masks to re-annotate: per-image label quality and per-pixel suspect maps.

**The score** (:func:`label_quality_scores`). For one image with labels ``L``
(valid pixels V, ``L != ignore_index``), class probabilities ``p`` (C, H, W),
prediction ``k* = argmax_k p_k``, confidence ``m = max_k p_k`` and
self-confidence ``s = p_L`` (probability of the given label):

    suspect      = V and k* != L and m > tau                   (tau = 0.5: another class is more likely than all others together)
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

**Which probabilities** (:class:`EarlyLearningProbs`). Scored with the
softmax of the final model on its own training images, the score fails once
the network has memorized the wrong labels: it then agrees with them
(in-sample probabilities; cleanlab's documentation asks for out-of-sample
ones, i.e. K extra trainings). ADELE's observation gives a source within one
run: up to a class's memorization onset the network predicts the truth, and
ADELE's detector flags that moment per class. So a run keeps, per training
pixel, each class's eval-mode softmax at the epoch the class is flagged:

    e_k = the epoch class k is flagged                     (foreground classes)
          the epoch the last foreground class is flagged   (background; the last epoch if one never is)
          the last epoch                                   (a foreground class never flagged)
    q_k = p_k^(e_k) / sum_j p_j^(e_j)                      (renormalized over the classes)

``p^(e)`` is the eval-mode softmax after epoch ``e``. The flag comes from
ADELE's detector on the training-IoU curve with the ``adele.detection``
settings, one point per epoch and at least ``quality.min_points`` (10) points
before a fit: fitted on its first 3 points, as the official rule allows, a
still-rising curve looks saturated, the class is flagged early and its
snapshot is immature. Background errors are the
other side of a foreground class's over- or under-tracing, so background
follows the network until the last foreground class is flagged. The one-run
score of an image is :func:`label_quality_scores` of its *given* labels
against ``q``. Memory: 1 byte per training pixel and class (uint8
probabilities); an eval-mode pass over the training images only in the
epochs where a class is flagged and at the end.

**K-fold splits** (:func:`kfold_assignment`) for the out-of-sample baseline.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np



def label_quality_scores(
    labels: np.ndarray,
    probs: np.ndarray,
    ignore_index: int = 255,
    tau: float = 0.5,
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


def kfold_assignment(n: int, k: int = 5, seed: int = 0) -> np.ndarray:
    """Fold id in ``0..k-1`` of each of ``n`` images: a seeded permutation cut into k folds whose sizes differ by at most one.

    Fold ``f``'s model trains on the images with ``folds != f`` and scores those with ``folds == f``,
    so no image is ever scored by a model that saw it.
    """
    if k < 2 or n < k:
        raise ValueError(f"need 2 <= k <= n for K-fold splits, got k={k}, n={n}")
    folds = np.empty(n, dtype=np.int64)
    folds[np.random.default_rng(seed).permutation(n)] = np.arange(n) % k
    return folds


class EarlyLearningProbs:
    """Each class's softmax at the epoch it is flagged (see module doc): uint8, one channel per class.

    ``shapes``: (H, W) of every training image (they may differ). Pixels of all images are laid
    out back to back; :meth:`update` takes one snapshot of every image for the given classes.
    """

    def __init__(self, shapes: Sequence[tuple[int, int]], num_classes: int):
        self.shapes = [(int(h), int(w)) for h, w in shapes]
        if not self.shapes or num_classes < 2:
            raise ValueError("need at least one image and two classes")
        sizes = np.array([h * w for h, w in self.shapes], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.num_classes = int(num_classes)
        self.q = np.zeros((self.num_classes, int(self.offsets[-1])), dtype=np.uint8)
        #: epoch of each class's snapshot (0 = none yet)
        self.epochs = np.zeros(self.num_classes, dtype=np.int64)

    @property
    def nbytes(self) -> int:
        return int(self.q.nbytes)

    def buffer(self) -> np.ndarray:
        """An empty (C, total pixels) uint8 snapshot to fill with :meth:`write`."""
        return np.zeros(self.q.shape, dtype=np.uint8)

    def quantized(self, probs_by_image: Sequence[np.ndarray]) -> np.ndarray:
        """(C, total pixels) uint8 round(255 p) of one snapshot, from a (C, H, W) array per image."""
        q = self.buffer()
        for i, p in enumerate(probs_by_image):
            self.write(q, i, p)
        return q

    def write(self, q: np.ndarray, i: int, probs: np.ndarray) -> None:
        """Put image ``i``'s (C, H, W) probabilities into a snapshot buffer ``q`` (C, total) uint8."""
        p = np.asarray(probs, dtype=np.float32)
        if p.shape != (self.num_classes,) + self.shapes[i]:
            raise ValueError(f"image {i}: expected probabilities of shape {(self.num_classes,) + self.shapes[i]}, got {p.shape}")
        q[:, self.offsets[i] : self.offsets[i + 1]] = np.rint(np.clip(p, 0.0, 1.0) * 255.0).reshape(self.num_classes, -1)

    def update(self, q: np.ndarray, classes: Sequence[int], epoch: int) -> None:
        """Keep snapshot ``q`` (C, total) uint8, taken after ``epoch``, for ``classes`` (replacing what they had)."""
        if q.shape != self.q.shape:
            raise ValueError(f"snapshot of shape {q.shape}, expected {self.q.shape}")
        for k in classes:
            self.q[k] = q[k]
            self.epochs[k] = int(epoch)

    def probs(self, i: int) -> np.ndarray:
        """q of image ``i``: (C, H, W) float32, rows sum to 1 (uniform where every class reads 0, e.g. before any snapshot)."""
        h, w = self.shapes[i]
        s = self.q[:, self.offsets[i] : self.offsets[i + 1]].astype(np.float32)
        total = s.sum(0, keepdims=True)
        out = np.where(total > 0, s / np.where(total > 0, total, 1.0), 1.0 / self.num_classes)
        return out.reshape(self.num_classes, h, w).astype(np.float32)

    def state_dict(self) -> dict:
        return {"shapes": [list(s) for s in self.shapes], "q": self.q.copy(), "epochs": self.epochs.copy()}

    def load_state_dict(self, state: dict) -> None:
        if [tuple(int(v) for v in s) for s in state["shapes"]] != self.shapes or np.shape(state["q"]) != self.q.shape:
            raise ValueError("early-learning probabilities of another training set (image shapes or class count differ)")
        self.q = np.array(state["q"], dtype=np.uint8)
        self.epochs = np.array(state["epochs"], dtype=np.int64)


def early_learning_scores(probs: "EarlyLearningProbs", labels: Sequence[np.ndarray], ignore_index: int = 255,
                          tau: float = 0.5, class_weight: float = 0.5) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """:func:`label_quality_scores` of each image's ``labels`` against its early-learning probabilities ``q``.

    Returns (scores (N,), disagree_frac (N,), suspect: list of (H, W) bool), one image at a time (images may differ in size).
    """
    if len(labels) != len(probs.shapes):
        raise ValueError(f"{len(labels)} label maps for early-learning probabilities of {len(probs.shapes)} images")
    scores, disagree, suspect = np.ones(len(labels)), np.zeros(len(labels)), []
    for i, lab in enumerate(labels):
        sc, d, m = label_quality_scores(np.asarray(lab)[None], probs.probs(i)[None], ignore_index, tau, class_weight)
        scores[i], disagree[i] = sc[0], d[0]
        suspect.append(m[0])
    return scores, disagree, suspect
