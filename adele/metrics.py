"""Segmentation metrics: collect a confusion matrix, then reduce to Dice / IoU.

Conventions (the same everywhere in adele: training logs, ``metrics.json``,
reports, benchmarks, label agreement):

* ``cm[t, p]`` counts pixels of label ``t`` predicted as ``p``; ignore pixels
  are never counted.
* Per class, Dice = 2TP / (2TP + FP + FN) and IoU = TP / (TP + FP + FN).
* **Means are taken over the foreground classes present in the ground truth**
  (class 0, background, is never averaged in). A class absent from the
  ground truth has no defined Dice: it is left out of the mean whether or
  not the model predicted a few pixels of it, and its false-positive pixel
  count is reported separately. This is MONAI's ``ignore_empty=True``
  convention, applied at the dataset level (one confusion matrix summed over
  all pixels of a split) and per image (each image's own label decides).
  Without it two runs differ by whole points because one of them predicted
  stray pixels of a class the test split does not contain.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def _is_tensor(x) -> bool:
    """A torch tensor, told without importing torch (a tensor exists only once torch is imported), so that the
    NumPy users of this module (`adele noise`, `adele evaluate`) do not wait for torch."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def confusion_matrix(pred, target, num_classes: int, ignore_index: int = 255):
    """``pred``, ``target``: (...) integer arrays or tensors -> (C, C) int64 (same kind), rows = target, cols = pred.

    Pixels whose target is ``ignore_index`` are skipped. NumPy in, NumPy out;
    a tensor in gives a tensor on the same device (used in the training loop).
    """
    if _is_tensor(target):
        import torch

        valid = target != ignore_index
        t = target[valid].long()
        p = pred[valid].long()
        return torch.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    target = np.asarray(target)
    pred = np.asarray(pred)
    valid = target != ignore_index
    idx = target[valid].astype(np.int64) * num_classes + pred[valid].astype(np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_image_confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = 255) -> torch.Tensor:
    """``pred``, ``target``: (B, H, W) -> (B, C, C) int64, one confusion matrix per image."""
    import torch

    b = pred.shape[0]
    valid = target != ignore_index
    idx = target.long().clamp(max=num_classes - 1) * num_classes + pred.long()
    idx = idx + torch.arange(b, device=pred.device).view(b, 1, 1) * num_classes * num_classes
    counts = torch.bincount(idx[valid], minlength=b * num_classes * num_classes)
    return counts.reshape(b, num_classes, num_classes)


def scores_from_confusion(cm: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
    """(..., C, C) confusion -> dict of (..., C) float64 arrays ``dice``, ``iou``.

    NaN where a class is absent from both label and prediction (0/0). A class
    absent from the label but predicted scores 0 here; :func:`present_in_truth`
    and :func:`foreground_mean` decide what a *mean* counts.
    """
    cm = np.asarray(cm.cpu() if _is_tensor(cm) else cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    fn = cm.sum(-1) - tp
    fp = cm.sum(-2) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), np.nan)
    return {"dice": dice, "iou": iou}


def present_in_truth(cm: np.ndarray | torch.Tensor) -> np.ndarray:
    """(..., C, C) confusion -> (..., C) bool: the class has at least one ground-truth pixel."""
    cm = np.asarray(cm.cpu() if _is_tensor(cm) else cm)
    return cm.sum(-1) > 0


def foreground_mean(scores: np.ndarray, present: np.ndarray) -> np.ndarray | float:
    """Mean of (..., C) per-class scores over the foreground classes (1..C-1) present in the ground truth.

    ``present``: (..., C) bool from :func:`present_in_truth`. NaN where no
    foreground class is present (e.g. an image with background only).
    """
    s = np.where(np.asarray(present)[..., 1:], np.asarray(scores, dtype=np.float64)[..., 1:], np.nan)
    return nanmean(s, axis=-1)


def mean_dice(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int = 255) -> float:
    """Dataset-level foreground mean Dice of label maps ``pred`` against ``target`` (any equal shapes, int)."""
    cm = confusion_matrix(pred, target, num_classes, ignore_index)
    return float(foreground_mean(scores_from_confusion(cm)["dice"], present_in_truth(cm)))


def nanmean(x: np.ndarray, axis=None) -> np.ndarray | float:
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        cnt = np.sum(~np.isnan(x), axis=axis)
        s = np.nansum(x, axis=axis)
        out = np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)
    return float(out) if np.ndim(out) == 0 else out


class SegMetrics:
    """Accumulates dataset-level and per-image confusion matrices for one split."""

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.cm = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.per_image: list[np.ndarray] = []

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """``pred``, ``target``: (B, H, W) class ids."""
        cms = per_image_confusion(pred, target, self.num_classes, self.ignore_index).cpu().numpy()
        self.cm += cms.sum(0)
        self.per_image.extend(cms)

    def compute(self, class_names: list[str] | tuple[str, ...]) -> dict:
        """Dice and IoU per class and their foreground means, dataset-level and per-image.

        Returns ``dice``/``iou``: {class: score}, None for a class absent from
        the split's ground truth; ``mean_dice``/``mean_iou`` over the foreground
        classes present in the ground truth (listed in ``mean_classes``);
        ``absent_classes``: {class: false-positive pixels} for foreground classes
        absent from the ground truth; ``per_image_*``: the same rule per image,
        then averaged over images (``per_image_mean_*``) or per class over the
        images that contain it (``per_image_dice``/``per_image_iou``).
        """
        ds = scores_from_confusion(self.cm)
        present = present_in_truth(self.cm)
        out: dict = {}
        for key, arr in ds.items():
            out[key] = {n: (rounded(v) if present[c] else None) for c, (n, v) in enumerate(zip(class_names, arr))}
            out[f"mean_{key}"] = rounded(foreground_mean(arr, present))
        out["mean_classes"] = [n for c, n in enumerate(class_names) if c > 0 and present[c]]
        fp = self.cm.sum(0) - np.diagonal(self.cm)
        out["absent_classes"] = {n: int(fp[c]) for c, n in enumerate(class_names) if c > 0 and not present[c]}
        if self.per_image:
            cms = np.stack(self.per_image)
            pi, pi_present = scores_from_confusion(cms), present_in_truth(cms)
            for key, arr in pi.items():
                per_class = nanmean(np.where(pi_present, arr, np.nan), axis=0)
                out[f"per_image_{key}"] = {n: rounded(v) for n, v in zip(class_names, per_class)}
                out[f"per_image_mean_{key}"] = rounded(nanmean(foreground_mean(arr, pi_present)))
        out["num_images"] = len(self.per_image)
        return out


def rounded(v, digits: int = 6) -> float | None:
    """A float for JSON: rounded, None for NaN."""
    v = float(v)
    return None if np.isnan(v) else round(v, digits)


def memorization_fractions(records: list[dict], classes: list[str] | tuple[str, ...]) -> dict:
    """Early learning vs memorization on the wrongly labelled training pixels.

    records: ``memorization.json`` of a run, one dict per epoch with ``wrong``,
    ``pred_clean``, ``pred_noisy``: (C, C) counts indexed [clean][noisy].
    For class c (wrong pixels whose *clean* label is c, i.e. row c) and for all
    classes together ("total"):
    ``early_learning`` = fraction predicted as the clean class,
    ``memorized`` = fraction predicted as the (wrong) noisy class.
    Returns {"names": classes + ["total"], "epochs": (E,) int,
    "wrong", "early_learning", "memorized": (E, C + 1) arrays (NaN where no wrong pixel)}.
    """
    if not records:
        raise ValueError("no memorization records")
    epochs = np.array([int(r["epoch"]) for r in records])
    arrays = {k: np.array([r[k] for r in records], dtype=np.float64) for k in ("wrong", "pred_clean", "pred_noisy")}
    if arrays["wrong"].shape[1:] != (len(classes), len(classes)):
        raise ValueError(f"memorization counts are {arrays['wrong'].shape[1:]}, expected ({len(classes)}, {len(classes)})")
    rows = {k: np.concatenate([v.sum(-1), v.sum((-1, -2))[:, None]], axis=1) for k, v in arrays.items()}
    with np.errstate(invalid="ignore", divide="ignore"):
        early = np.where(rows["wrong"] > 0, rows["pred_clean"] / rows["wrong"], np.nan)
        mem = np.where(rows["wrong"] > 0, rows["pred_noisy"] / rows["wrong"], np.nan)
    return {"names": list(classes) + ["total"], "epochs": epochs, "wrong": rows["wrong"], "early_learning": early, "memorized": mem}


def label_agreement(labels: list[np.ndarray], clean: list[np.ndarray], num_classes: int, ignore_index: int, classes: list[str]) -> dict:
    """Dice per class between a set of label maps and the clean ones (dataset level), as in ``metrics.json``."""
    import torch

    m = SegMetrics(num_classes, ignore_index)
    for a, b in zip(labels, clean):
        m.update(torch.from_numpy(a[None].astype(np.int64)), torch.from_numpy(b[None].astype(np.int64)))
    out = m.compute(classes)
    return {"dice": out["dice"], "mean_dice": out["mean_dice"], "mean_iou": out["mean_iou"]}
