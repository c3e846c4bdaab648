"""Segmentation metrics: collect a confusion matrix, then reduce to Dice / IoU.

Dataset-level scores come from one confusion matrix summed over all pixels;
per-image scores are computed per image (a class absent from both label and
prediction of an image is NaN there) and averaged with ``nanmean``.
"""
from __future__ import annotations

import numpy as np
import torch


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = 255) -> torch.Tensor:
    """``pred``, ``target``: (...) integer tensors -> (C, C) int64, rows = target, cols = pred."""
    valid = target != ignore_index
    t = target[valid].long()
    p = pred[valid].long()
    return torch.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_image_confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = 255) -> torch.Tensor:
    """``pred``, ``target``: (B, H, W) -> (B, C, C) int64, one confusion matrix per image."""
    b = pred.shape[0]
    valid = target != ignore_index
    idx = target.long().clamp(max=num_classes - 1) * num_classes + pred.long()
    idx = idx + torch.arange(b, device=pred.device).view(b, 1, 1) * num_classes * num_classes
    counts = torch.bincount(idx[valid], minlength=b * num_classes * num_classes)
    return counts.reshape(b, num_classes, num_classes)


def scores_from_confusion(cm: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
    """(..., C, C) confusion -> dict of (..., C) float arrays ``dice``, ``iou`` (NaN where the class is absent from both)."""
    cm = np.asarray(cm.cpu() if isinstance(cm, torch.Tensor) else cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    fn = cm.sum(-1) - tp
    fp = cm.sum(-2) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), np.nan)
    return {"dice": dice, "iou": iou}


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
        """Dice and IoU per class, foreground means (class 0 excluded), dataset-level and per-image."""
        ds = scores_from_confusion(self.cm)
        out: dict = {}
        for key, arr in ds.items():
            out[key] = {n: _f(v) for n, v in zip(class_names, arr)}
            out[f"mean_{key}"] = _f(nanmean(arr[1:]))
        if self.per_image:
            pi = scores_from_confusion(np.stack(self.per_image))
            for key, arr in pi.items():
                per_class = nanmean(arr, axis=0)
                out[f"per_image_{key}"] = {n: _f(v) for n, v in zip(class_names, per_class)}
                # per image: mean over the foreground classes present, then mean over images
                out[f"per_image_mean_{key}"] = _f(nanmean(nanmean(arr[:, 1:], axis=1)))
        out["num_images"] = len(self.per_image)
        return out


def _f(v) -> float | None:
    v = float(v)
    return None if np.isnan(v) else round(v, 6)


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
