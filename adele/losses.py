"""Supervised segmentation losses used by the trainer (the ADELE terms are in :mod:`adele.core`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_dice_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255, eps: float = 1.0) -> torch.Tensor:
    """1 - mean soft Dice over the foreground classes present in the batch labels.

    logits: (B, C, H, W) float; labels: (B, H, W) int64, ``ignore_index`` pixels left out.
    Helps small structures that cross-entropy alone learns late (class imbalance).
    """
    C = logits.shape[1]
    valid = (labels != ignore_index).unsqueeze(1).to(logits.dtype)
    probs = logits.float().softmax(1) * valid
    onehot = F.one_hot(labels.clamp(0, C - 1).long(), C).permute(0, 3, 1, 2).to(probs.dtype) * valid
    inter = (probs * onehot).sum((0, 2, 3))
    denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    dice = (2 * inter + eps) / (denom + eps)
    present = onehot.sum((0, 2, 3))[1:] > 0
    if not present.any():
        return logits.sum() * 0.0
    return 1.0 - dice[1:][present].mean()


#: q of the generalized cross-entropy (Zhang & Sabuncu, NeurIPS 2018, their default)
GCE_Q = 0.7


def generalized_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255, q: float = GCE_Q) -> torch.Tensor:
    """Mean over non-ignored pixels of (1 - p_y^q) / q, a noise-robust loss between cross-entropy (q -> 0) and MAE (q = 1).

    logits: (B, C, H, W) float; labels: (B, H, W) int64. 0 (differentiable) when every pixel is ignored.
    """
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q must be in (0, 1], got {q}")
    valid = labels != ignore_index
    logp = logits.float().log_softmax(1).gather(1, labels.clamp(0, logits.shape[1] - 1).long().unsqueeze(1)).squeeze(1)
    loss = (1.0 - torch.exp(q * logp)) / q
    n = valid.sum()
    return (loss * valid).sum() / n.clamp_min(1)


def supervised_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str, ignore_index: int = 255) -> torch.Tensor:
    """``ce`` (the paper), ``ce_dice`` (cross-entropy + soft Dice) or ``gce`` (generalized cross-entropy, q = 0.7:
    the robust loss a user would try first against noisy labels)."""
    if kind == "gce":
        return generalized_cross_entropy(logits, labels, ignore_index)
    loss = F.cross_entropy(logits.float(), labels, ignore_index=ignore_index)
    if kind == "ce_dice":
        loss = loss + soft_dice_loss(logits, labels, ignore_index)
    return loss
