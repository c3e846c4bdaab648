"""Memorization counting when the clean labels are known (synthetic noise): the analysis plot's data.

On every training pixel whose given (noisy) label is wrong, the training-mode prediction is counted as the
clean class (early learning) or the noisy class (memorization), per (clean, noisy) pair and epoch. Only
unaugmented batches count (the stored labels must align pixel for pixel). The records go to the checkpoint
and to ``memorization.json`` (:func:`adele.run.files.write_memorization`); :mod:`adele.reporting.memorization`
plots them. Hooks as :class:`adele.engine.early_learning.EarlyLearningTracker`: one call per batch, one per epoch.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..data.dataset import PreparedSplit
from .distributed import DistInfo, all_reduce_sum


class MemorizationTracker:
    """Per epoch ``{"epoch", "wrong", "pred_clean", "pred_noisy"}``: (C, C) counts indexed [clean, noisy].

    ``wrong``: the wrongly labelled pixels seen in the epoch; ``pred_clean`` / ``pred_noisy``: of those, the ones
    predicted as the clean / the noisy class.
    """

    def __init__(self, train: PreparedSplit, num_classes: int, ignore_index: int, device: torch.device, dist: DistInfo):
        self.train = train
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.device = device
        self.dist = dist
        self.records: list[dict] = []
        self._counts: Optional[torch.Tensor] = None

    @staticmethod
    def possible(train: PreparedSplit, augmented: bool) -> bool:
        """Clean labels known, and batches aligned pixel for pixel with the stored labels."""
        return train.clean is not None and not augmented

    def start_epoch(self) -> None:
        C = self.num_classes
        self._counts = torch.zeros(3, C, C, dtype=torch.int64, device=self.device)

    def after_batch(self, pred: torch.Tensor, idx: torch.Tensor) -> None:
        """Count one batch's (B, H, W) argmax predictions of the training images ``idx``."""
        C, tr, mem = self.num_classes, self.train, self._counts
        noisy = torch.from_numpy(np.stack([tr.original[i] for i in idx.tolist()])).to(self.device).long()
        clean = torch.from_numpy(np.stack([tr.clean[i] for i in idx.tolist()])).to(self.device).long()
        wrong = (noisy != clean) & (noisy != self.ignore_index) & (clean != self.ignore_index)
        key = (clean * C + noisy)[wrong]
        p = pred[wrong]
        mem[0] += torch.bincount(key, minlength=C * C).view(C, C)
        mem[1] += torch.bincount(key[p == clean[wrong]], minlength=C * C).view(C, C)
        mem[2] += torch.bincount(key[p == noisy[wrong]], minlength=C * C).view(C, C)

    def end_epoch(self, epoch: int) -> None:
        """Sum the counts over the processes and keep the epoch's record."""
        mem = all_reduce_sum(self._counts, self.dist).cpu().numpy()
        self.records.append({"epoch": epoch, "wrong": mem[0].tolist(), "pred_clean": mem[1].tolist(), "pred_noisy": mem[2].tolist()})
        self._counts = None

    def state_dict(self) -> list[dict]:
        return self.records

    def load_state_dict(self, records: list[dict]) -> None:
        self.records = list(records)
