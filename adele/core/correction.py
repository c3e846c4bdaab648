"""Adaptive label correction (ADELE section 2), vectorized with lookup tables.

A pixel's label y is replaced by the model's predicted class k when

    confident:  (k != 0 and p > tau_fg) or (k == 0 and p > tau_bg)
    y in {0} U flagged          (only background / flagged labels may change)
    k in {0} U flagged          (only background / flagged classes may be written)
    k in {0} U present(image)   (no class is invented in an image)

where p is the probability of k (official SegTHOR, ``merge_labels_with_skip``; the
official VOC rule differs and is :func:`correct_labels_voc`). Since tau >= 0.5, p > tau means k is the
argmax, so "max foreground prob > tau_fg or background prob > tau_bg" (the
paper's wording) reduces to the test above. Ignore pixels are untouched
unless ``correct_ignore``.

Confidence may be float p in [0, 1] or uint8 q = round(255 p) (see
``PredictionStore``). In the quantized domain a pixel is confident iff
q > floor(255 tau), i.e. p >= (floor(255 tau) + 0.5) / 255, which agrees with
p > tau except where |p - tau| <= 0.5/255.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class CorrectionResult:
    """labels: corrected labels, same shape/dtype as input (uint8).
    changed: bool mask of the same shape, True where the label changed.
    held: (N,) bool, images a shrink guard left unchanged (None: no guard ran)."""

    labels: np.ndarray
    changed: np.ndarray
    held: Optional[np.ndarray] = None


@dataclass(frozen=True)
class ChangePrecision:
    """per_class: (C,) float64 fraction of changed pixels (by new label) equal
    to the clean label, NaN where none changed. overall: float, same over all
    classes. changed / correct: (C,) int64 counts."""

    per_class: np.ndarray
    overall: float
    changed: np.ndarray
    correct: np.ndarray


def _check_tau(tau: float, name: str) -> None:
    if not 0.5 <= tau < 1.0:
        raise ValueError(f"{name} must be in [0.5, 1) so that p > {name} implies argmax; got {tau}")


def _check_tau_class(tau_class: Optional[np.ndarray], num_classes: int) -> Optional[np.ndarray]:
    if tau_class is None:
        return None
    tau_class = np.asarray(tau_class, dtype=np.float64).ravel()
    if tau_class.size != num_classes:
        raise ValueError(f"tau_class must hold one threshold per class ({num_classes}), got {tau_class.size}")
    for k, t in enumerate(tau_class):
        _check_tau(float(t), f"tau_class[{k}]")
    return tau_class


def _as_uint8(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"{name} must be an integer class map (uint8), got dtype {x.dtype}")
    if x.size and (x.min() < 0 or x.max() > 255):
        raise ValueError(f"{name} values must lie in 0..255, got {x.min()}..{x.max()}")
    return x.astype(np.uint8)


def classes_present(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(N, H, W) or (H, W) uint8 labels -> (N, C) bool, class c occurs in image n.
    Background (0) is always marked present."""
    labels = _as_uint8(labels, "labels")
    flat = labels.reshape(1, -1) if labels.ndim == 2 else labels.reshape(labels.shape[0], -1)
    out = np.stack([np.bincount(row, minlength=256)[:num_classes] > 0 for row in flat])
    out[:, 0] = True
    return out


def _batch(labels, pred, conf) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
    """Validate the inputs of a correction rule; -> (labels, pred, conf) as (N, H, W) and the input shape."""
    labels, pred = _as_uint8(labels, "labels"), _as_uint8(pred, "pred")
    conf = np.asarray(conf)
    if conf.dtype not in (np.uint8, np.float32, np.float64):
        conf = conf.astype(np.float32)
    if not labels.shape == pred.shape == conf.shape or labels.ndim not in (2, 3):
        raise ValueError(f"labels, pred, conf must share one (N, H, W) or (H, W) shape; "
                         f"got {labels.shape}, {pred.shape}, {conf.shape}")
    shape = labels.shape
    labels, pred, conf = (x.reshape((-1,) + shape[-2:]) for x in (labels, pred, conf))
    return labels, pred, conf, shape


def _threshold_table(conf_dtype, tau_bg: float, tau_fg: float,
                     tau_class: Optional[np.ndarray] = None) -> tuple[np.ndarray, object]:
    """(256,) per-predicted-class threshold in the dtype of conf, and the 'never' value.
    ``tau_class``: (C,) per-class thresholds that replace tau_bg / tau_fg for classes 0..C-1."""
    taus = np.full(256, tau_fg, dtype=np.float64)
    taus[0] = tau_bg
    if tau_class is not None:
        tau_class = np.asarray(tau_class, dtype=np.float64).ravel()
        taus[:tau_class.size] = tau_class
    if conf_dtype == np.uint8:
        return np.floor(taus * 255).astype(np.uint8), np.uint8(255)  # q > 255 is never true
    return taus.astype(conf_dtype), np.inf


def correct_labels(
    labels: np.ndarray,
    pred: np.ndarray,
    conf: np.ndarray,
    flagged: np.ndarray,
    tau_bg: float = 0.7,
    tau_fg: float = 0.7,
    allowed: Optional[np.ndarray] = None,
    ignore_index: int = 255,
    correct_ignore: bool = False,
    tau_class: Optional[np.ndarray] = None,
) -> CorrectionResult:
    """Apply the ADELE correction rule to a batch of label maps.

    labels, pred: (N, H, W) or (H, W) uint8 (current labels, argmax class).
    conf: same shape, float32/float64 probability of ``pred`` in [0, 1] or
      uint8 quantized q = round(255 p).
    flagged: (C,) bool, classes whose labels may be corrected (0 always may).
    allowed: (N, C) bool (or (C,) for a single image), classes allowed to be
      written per image; default = classes present in ``labels`` (+ background).
    tau_class: (C,) per-class thresholds in [0.5, 1) that replace tau_bg / tau_fg (see
      :func:`class_thresholds`); None = tau_bg for background, tau_fg for the others.
    Returns CorrectionResult(labels: new uint8 array, changed: bool mask).
    """
    _check_tau(tau_bg, "tau_bg")
    _check_tau(tau_fg, "tau_fg")
    labels, pred, conf, shape = _batch(labels, pred, conf)
    flagged = np.asarray(flagged, dtype=bool).ravel()
    C = flagged.size
    tau_class = _check_tau_class(tau_class, C)
    if allowed is None:
        allowed = classes_present(labels, C)
    allowed = np.asarray(allowed, dtype=bool)
    if allowed.size != labels.shape[0] * C:
        raise ValueError(f"allowed must be (N, C) = ({labels.shape[0]}, {C}) bool, got {allowed.shape}")
    allowed = allowed.reshape(labels.shape[0], C).copy()
    allowed[:, 0] = True

    writable = np.zeros(256, dtype=bool)  # classes that may be written: {0} U flagged
    writable[:C] = flagged
    writable[0] = True
    changeable = writable.copy()  # current labels that may change
    if correct_ignore:
        changeable[ignore_index] = True
    thresholds, never = _threshold_table(conf.dtype, tau_bg, tau_fg, tau_class)

    new = labels.copy()
    changed = np.empty(labels.shape, dtype=bool)
    per_image_ok = writable.copy()
    for n in range(labels.shape[0]):
        per_image_ok[:C] = writable[:C] & allowed[n]
        thr = np.where(per_image_ok, thresholds, never)  # (256,) 'never' where pred not allowed
        m = changed[n]
        np.greater(conf[n], thr.take(pred[n]), out=m)
        m &= changeable.take(labels[n])
        m &= labels[n] != pred[n]
        np.copyto(new[n], pred[n], where=m)
    return CorrectionResult(new.reshape(shape), changed.reshape(shape))


def class_change_counts(old: np.ndarray, new: np.ndarray, num_classes: int) -> np.ndarray:
    """(C,) int64: number of changed pixels whose NEW label is class c.
    old, new: same-shape integer label maps."""
    old, new = np.asarray(old), np.asarray(new)
    moved = new[old != new].astype(np.int64)
    counts = np.bincount(moved, minlength=max(num_classes, 256))
    return counts[:num_classes].astype(np.int64)


def change_precision(
    old: np.ndarray, new: np.ndarray, clean: np.ndarray, num_classes: int,
    ignore_index: int = 255,
) -> ChangePrecision:
    """Fraction of changed pixels that now equal the clean label.

    old, new, clean: same-shape integer label maps. Pixels whose clean label
    is ``ignore_index`` are left out. Per class = grouped by NEW label.
    """
    old, new, clean = np.asarray(old), np.asarray(new), np.asarray(clean)
    moved = (old != new) & (clean != ignore_index)
    cls = new[moved].astype(np.int64)
    hit = new[moved] == clean[moved]
    size = max(num_classes, 256)
    changed = np.bincount(cls, minlength=size)[:num_classes].astype(np.int64)
    correct = np.bincount(cls[hit], minlength=size)[:num_classes].astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(changed > 0, correct / np.maximum(changed, 1), np.nan)
    overall = float(hit.mean()) if hit.size else float("nan")
    return ChangePrecision(per_class, overall, changed, correct)


def shrink_guard(old: np.ndarray, new: np.ndarray, keep: float = 0.5, background: float = 0.95) -> bool:
    """True when an update of one image must be dropped (official VOC ``update_allclass``).

    old, new: (H, W) integer label maps. The update is dropped when it keeps fewer than ``keep`` of
    the image's non-background pixels and leaves more than ``background`` of the image background
    (ignore pixels count as non-background, as officially).
    """
    old, new = np.asarray(old), np.asarray(new)
    return bool(np.count_nonzero(new) < keep * np.count_nonzero(old)
                and np.count_nonzero(new == 0) / new.size > background)


def correct_labels_voc(
    labels: np.ndarray,
    pred: np.ndarray,
    conf: np.ndarray,
    flagged: np.ndarray,
    tau: float = 0.8,
    ignore_index: int = 255,
    guard: Optional[tuple[float, float]] = (0.5, 0.95),
    tau_class: Optional[np.ndarray] = None,
) -> CorrectionResult:
    """The official VOC correction rule (``update_allclass``, mode 'single', class constraint on).

    A pixel's label y (any class, or ignore) is replaced by the predicted class k when

        k != y,  p > tau,  k in {0} U flagged,
        and, in an image whose label holds a foreground class, k in the classes of that label

    (unlike :func:`correct_labels`: labels of unflagged classes and ignore pixels may change, one
    threshold for every class, no class constraint in background-only images). Images whose labels
    hold none of the flagged classes are left as they are, unless they hold no foreground at all.
    ``guard = (keep, background)``: :func:`shrink_guard` per image (None: off).
    ``tau_class``: (C,) per-class thresholds (:func:`class_thresholds`) in place of the one ``tau``.

    labels, pred: (N, H, W) or (H, W) uint8; conf: same shape, float p or uint8 q = round(255 p);
    flagged: (C,) bool (background's entry is ignored: 0 may always be written).
    """
    _check_tau(tau, "tau")
    labels, pred, conf, shape = _batch(labels, pred, conf)
    flagged = np.asarray(flagged, dtype=bool).ravel()
    tau_class = _check_tau_class(tau_class, flagged.size)
    writable = np.zeros(256, dtype=bool)
    writable[:flagged.size] = flagged
    writable[ignore_index] = False
    fg_flagged = writable.copy()
    writable[0] = True
    fg_flagged[0] = False
    thresholds = _threshold_table(conf.dtype, tau, tau, tau_class)[0]
    new = labels.copy()
    changed = np.zeros(labels.shape, dtype=bool)
    held = np.zeros(labels.shape[0], dtype=bool)
    for n in range(labels.shape[0]):
        present = np.bincount(labels[n].ravel(), minlength=256) > 0
        foreground = present.copy()
        foreground[[0, ignore_index]] = False
        if not foreground.any():
            ok = writable  # background-only image: no class constraint
        elif not (present & fg_flagged).any():
            continue  # none of the flagged classes in this image
        else:
            ok = writable & present
        m = ok.take(pred[n]) & (pred[n] != labels[n]) & (conf[n] > thresholds.take(pred[n]))
        if not m.any():
            continue
        candidate = np.where(m, pred[n], labels[n])
        if guard is not None and shrink_guard(labels[n], candidate, *guard):
            held[n] = True
            continue
        new[n], changed[n] = candidate, m
    return CorrectionResult(new.reshape(shape), changed.reshape(shape), held)


def confidence_histogram(pred: np.ndarray, conf: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, 256) int64: pixels predicted c with quantized confidence q = round(255 p) (sum over images with ``+``).

    pred: integer class map; conf: the confidence of ``pred``, float p in [0, 1] or uint8 q (as the store
    keeps it). Predicted ids >= C are left out.
    """
    pred = _as_uint8(pred, "pred").ravel().astype(np.int64)
    conf = np.asarray(conf).ravel()
    if pred.size != conf.size:
        raise ValueError(f"pred and conf must have the same size, got {pred.size} and {conf.size}")
    q = conf.astype(np.int64) if conf.dtype == np.uint8 else np.clip(np.rint(conf.astype(np.float64) * 255), 0, 255).astype(np.int64)
    keep = pred < num_classes
    return np.bincount(pred[keep] * 256 + q[keep], minlength=num_classes * 256).reshape(num_classes, 256)


def class_thresholds(hist: np.ndarray, share: float, tau_bg: float = 0.7, tau_fg: float = 0.7) -> np.ndarray:
    """(C,) per-class thresholds, class-balanced (Zou et al., ECCV 2018, CBST): a pixel may take class k only
    when its confidence is among the top ``share`` of the pixels the network predicts as k (and above tau).

    hist: (C, 256) from :func:`confidence_histogram` over the training set. For each class, lambda_k is the
    largest q such that at least ``share`` of its predicted pixels have confidence >= lambda_k; the threshold is
    max(tau, (lambda_k - 0.5) / 255), so that ``q > floor(255 t)`` reads ``q >= lambda_k``. A class that is never
    predicted keeps tau. The point: one global tau lets the bulk of a class's least sure pixels be written, and a
    class the network is unsure of everywhere (a small structure it under-segments) loses pixels to the sure one
    (background); a per-class bar asks each class for its own best pixels.
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    _check_tau(tau_bg, "tau_bg")
    _check_tau(tau_fg, "tau_fg")
    hist = np.asarray(hist, dtype=np.int64)
    tau = np.full(hist.shape[0], tau_fg, dtype=np.float64)
    tau[0] = tau_bg
    for k, h in enumerate(hist):
        total = int(h.sum())
        if total == 0:
            continue
        at_least = np.cumsum(h[::-1])[::-1]  # at_least[q] = pixels with confidence >= q
        lam = int(np.flatnonzero(at_least >= share * total).max())
        tau[k] = max(tau[k], (lam - 0.5) / 255)
    return tau


def image_areas(label: np.ndarray, num_classes: int) -> np.ndarray:
    """(C,) int64: pixels of each class in one uint8 label map (ignore and other ids not counted)."""
    return np.bincount(np.asarray(label).ravel(), minlength=256)[:num_classes]


def class_areas(labels, num_classes: int) -> np.ndarray:
    """(C,) int64: pixels of each class over a list of label maps (ignore and other ids not counted)."""
    area = np.zeros(num_classes, dtype=np.int64)
    for lab in labels:
        area += image_areas(lab, num_classes)
    return area


def areas_per_image(labels, num_classes: int) -> np.ndarray:
    """(N, C) int64: :func:`image_areas` of each label map of a sequence."""
    return np.stack([image_areas(lab, num_classes) for lab in labels]) if len(labels) else np.zeros((0, num_classes), np.int64)


@dataclass(frozen=True)
class PredictionAreas:
    """What the network predicts on a set of labelled images, per class (the erasure's diagnostics).

    labelled: (C,) pixels labelled c; predicted: (C,) pixels predicted c (ignore pixels left out);
    to_background: (C,) pixels labelled c that the network predicts as background above ``tau_bg``
    (the pixels a round may hand to background once class c's labels are corrected).
    """

    labelled: np.ndarray
    predicted: np.ndarray
    to_background: np.ndarray

    def __add__(self, other: "PredictionAreas") -> "PredictionAreas":
        return PredictionAreas(self.labelled + other.labelled, self.predicted + other.predicted,
                               self.to_background + other.to_background)

    def ratio(self, num: np.ndarray) -> np.ndarray:
        """(C,) num / labelled, NaN where a class has no labelled pixel."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.labelled > 0, num / np.maximum(self.labelled, 1), np.nan)


def prediction_areas(labels: np.ndarray, pred: np.ndarray, conf: np.ndarray, num_classes: int,
                     tau_bg: float = 0.7, ignore_index: int = 255) -> PredictionAreas:
    """Per-class areas of the network's predictions against the labels (sum results with ``+``).

    labels, pred: (N, H, W) or (H, W) uint8; conf: the confidence of ``pred`` (float in [0, 1] or
    uint8 q = round(255 p), compared with ``tau_bg`` as the correction rule compares it).
    """
    _check_tau(tau_bg, "tau_bg")
    labels, pred, conf, _ = _batch(labels, pred, conf)
    size = max(num_classes, 256)
    valid = labels != ignore_index
    thr = _threshold_table(conf.dtype, tau_bg, tau_bg)[0][0]

    def count(x: np.ndarray) -> np.ndarray:
        return np.bincount(x, minlength=size)[:num_classes].astype(np.int64)

    return PredictionAreas(count(labels[valid]), count(pred[valid]),
                           count(labels[valid & (pred == 0) & (conf > thr)]))


def area_guard(
    base: list[np.ndarray],
    new: list[np.ndarray],
    reference: list[np.ndarray],
    classes: list[int],
    max_change: float,
) -> tuple[list[np.ndarray], dict[int, float], dict[int, int]]:
    """Roll back a round's changes that run a class's area away from the given labels (a guard that needs no clean labels).

    base, new: per-image (H, W) uint8 labels before and after the round; reference: per-image (H, W) labels the
    areas are measured against (the original noisy labels, never the round's starting ones); classes: the classes
    the round corrected; max_change: the band, a fraction (0.25 = 25%).

    * Over the training set: a class whose area after the round is outside ``1 +- max_change`` of its reference
      area AND farther from it than before the round (the round moved it away; a round that moves a class back
      toward its reference, or changes nothing, never fires) has every pixel that left or joined it in this round
      set back to its ``base`` label. A rollback moves pixels of other classes back too, so the check is repeated
      until no class fires.
    * Per image (erasure that growth elsewhere would hide in the total): a class that the round leaves, in one
      image, with less than ``max_change`` of its reference area there, down from more, has its changes in that
      image rolled back.

    Returns (labels after the guard, {class: total area after the round / reference area} for the classes rolled
    back everywhere, {class: images where it was rolled back for erasure}).

    Memory independent of the number of images: the areas are counted image by image (a pass per rollback), and the
    labels after the guard are ``new`` itself when nothing is rolled back; otherwise a list (``new`` a list: a copy
    holding the rolled-back images) or ``new`` rewritten in place (any other writable sequence, e.g. labels on disk).
    """
    if not max_change > 0:
        raise ValueError(f"max_change must be > 0, got {max_change}")
    classes = [int(c) for c in classes]
    C = max(classes, default=0) + 1
    ref_img, base_img = areas_per_image(reference, C), areas_per_image(base, C)
    ref_area, base_area = ref_img.sum(0), base_img.sum(0)
    fired: dict[int, float] = {}
    area = class_areas(new, C)
    while True:  # a rollback changes other classes' areas: re-check until none fires
        more = {}
        for c in classes:
            if c in fired or ref_area[c] <= 0:
                continue
            after, before = area[c] / ref_area[c], base_area[c] / ref_area[c]
            if abs(after - 1.0) > max_change and abs(after - 1.0) > abs(before - 1.0):
                more[c] = float(after)
        if not more:
            break
        fired.update(more)
        # rolling back the classes fired so far from the round's labels = rolling them back one batch after another
        ids = sorted(fired)
        area = class_areas((_roll_back(base[i], new[i], ids) for i in range(len(base))), C)
    out = list(new) if isinstance(new, list) else new
    fired_ids = sorted(fired)
    erased: dict[int, int] = {}
    for i in range(len(base)):
        b, n = base[i], new[i]
        if n is b:
            continue
        rolled = _roll_back(b, n, fired_ids) if fired else n
        area_i = image_areas(rolled, C)
        ids = [c for c in classes if c not in fired and ref_img[i, c] > 0
               and area_i[c] < max_change * ref_img[i, c] and area_i[c] < base_img[i, c]]
        if ids:
            out[i] = _roll_back(b, rolled, ids)
            for c in ids:
                erased[c] = erased.get(c, 0) + 1
        elif fired:
            out[i] = rolled
    if not fired and not erased:
        return new, fired, erased
    return out, fired, erased


def _roll_back(base: np.ndarray, new: np.ndarray, classes) -> np.ndarray:
    """``new`` with every pixel that left or joined one of ``classes`` (from ``base`` to ``new``) set back to ``base``."""
    ids = np.asarray(list(classes), dtype=np.uint8)
    return np.where((base != new) & (np.isin(base, ids) | np.isin(new, ids)), base, new)
