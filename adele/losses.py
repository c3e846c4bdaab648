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


def supervised_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str, ignore_index: int = 255) -> torch.Tensor:
    """``ce`` (the paper) or ``ce_dice`` (cross-entropy + soft Dice)."""
    loss = F.cross_entropy(logits.float(), labels, ignore_index=ignore_index)
    if kind == "ce_dice":
        loss = loss + soft_dice_loss(logits, labels, ignore_index)
    return loss
