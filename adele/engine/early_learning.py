"""Label quality from one run's training dynamics: each class's softmax at its memorization flag.

In an epoch where the memorization detector flags a foreground class (and,
for background, the epoch by which every foreground class is flagged), an eval-mode pass over the
training images keeps that class's softmax in
:class:`adele.core.quality.EarlyLearningProbs`; at the last epoch the classes
never flagged get theirs. The detector is ADELE's rule with the
``adele.detection`` settings, on one training-IoU point per epoch, with at
least ``quality.min_points`` points before a fit; it runs beside the method
(for ADELE too, so its flags here may come later than the correction's) and
changes nothing in training. At the end the probabilities go to
``quality/early_probs.npz`` (:func:`adele.files.save_early_probs`), from
which ``adele export-labels``, the report and :meth:`adele.api.Run.label_quality`
rank the given labels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..run import files
from ..config import Config
from ..core.quality import EarlyLearningProbs
from ..data.dataset import PreparedSplit
from ..metrics import scores_from_confusion
from ..probabilities import predict_probs
from .method import build_detector
from .distributed import DistInfo, all_reduce_sum, rank_batches


class EarlyLearningTracker:
    """Keeps the early-learning probabilities of one run; ``state_dict`` goes into the checkpoint."""

    def __init__(self, cfg: Config, train: PreparedSplit, num_classes: int, dist: DistInfo):
        self.cfg = cfg
        self.train = train
        self.dist = dist
        self.probs = EarlyLearningProbs(train.shapes, num_classes)
        #: its own detector: one point per epoch, at least ``quality.min_points`` points before a fit
        self.detector = build_detector(cfg, num_classes, min_points=cfg.quality.min_points)
        #: classes whose snapshot is final (flagged; background once every watched foreground class is)
        self.frozen: set[int] = set()

    def due(self) -> list[int]:
        """Classes to freeze now: newly flagged foreground classes, and background when the last of them is flagged."""
        flagged = self.detector.flagged
        new = [int(k) for k in np.flatnonzero(flagged) if int(k) not in self.frozen]
        if 0 not in self.frozen and all(flagged[k] for k in self.detector.watch):
            new.insert(0, 0)
        return new

    @torch.no_grad()
    def after_epoch(self, epoch: int, train_cm: np.ndarray, net: torch.nn.Module, device: torch.device) -> None:
        """After the method's own end-of-epoch step: decide; snapshot the classes flagged now and, at the last epoch, the rest."""
        self.detector.update(epoch, scores_from_confusion(train_cm)["iou"])
        new = self.due()
        last = [k for k in range(self.probs.num_classes) if k not in self.frozen and k not in new] if epoch >= self.cfg.train.epochs else []
        if not new and not last:
            return
        self.probs.update(self.snapshot(net, device), new + last, epoch)
        self.frozen.update(new)

    def snapshot(self, net: torch.nn.Module, device: torch.device) -> np.ndarray:
        """(C, total pixels) uint8 softmax of every training image; each process predicts its share."""
        model = getattr(net, "module", net)
        was_training = model.training
        q = self.probs.buffer()
        try:
            for chunk in rank_batches(self.train.shapes, self.cfg.train.batch_size, self.dist):
                probs = predict_probs(model, torch.stack([self.train.images[i] for i in chunk]).to(device)).float().cpu().numpy()
                for i, p in zip(chunk, probs):
                    self.probs.write(q, i, p)
        finally:
            model.train(was_training)
        if self.dist.enabled:
            q = all_reduce_sum(torch.from_numpy(q.astype(np.int32)).to(device), self.dist).cpu().numpy().astype(np.uint8)
        return q

    def state_dict(self) -> dict:
        return {"probs": self.probs.state_dict(), "frozen": sorted(self.frozen), "detector": self.detector.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        p = state["probs"]
        self.probs.load_state_dict({"shapes": p["shapes"], "q": np.asarray(p["q"]), "epochs": np.asarray(p["epochs"])})
        self.frozen = {int(k) for k in state["frozen"]}
        self.detector.load_state_dict(state["detector"])

    def summary(self, classes: list[str]) -> dict:
        """What metrics.json says: the epoch of each class's snapshot, and whether it is its flag epoch."""
        return {"source": "each class's eval-mode training softmax at its memorization flag (adele.core.quality)",
                "min_points": self.detector.settings["min_points"],
                "snapshot_epoch": {n: int(e) for n, e in zip(classes, self.probs.epochs)},
                "at_flag": [classes[k] for k in sorted(self.frozen)]}

    def save(self, run_dir: str | Path, classes: list[str]) -> None:
        files.save_early_probs(run_dir, self.probs, self.summary(classes))


def log_budget(nbytes: int, limit_gb: float, log: Callable[[str], None]) -> bool:
    """True when the probabilities fit in ``quality.max_gb``; otherwise says so in one line."""
    if nbytes <= limit_gb * 2**30:
        return True
    log(f"label-quality tracking is off for this run: its early-learning probabilities would take {nbytes / 2**30:.1f} GB "
        f"(1 byte per training pixel and class) > quality.max_gb={limit_gb}; raise quality.max_gb to keep them")
    return False
