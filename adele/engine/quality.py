"""Label quality from one run's training dynamics: the early-learning average of the training softmax.

After each epoch (every ``quality.every`` epochs) an eval-mode pass over the
training images adds one snapshot of the softmax to
:class:`adele.core.quality.EarlyLearningAverage`, but only to the classes that
are not yet flagged by the memorization detector; background stops with the
first flagged foreground class (background errors are the other side of a
foreground class's under-tracing). An ADELE run uses its own detector; a
baseline run runs one with the same ``adele.detection`` settings (one IoU
point per epoch), which changes nothing in its training. At the end the
average goes to ``quality/early_average.npz`` (:func:`adele.runfolder.save_early_average`), from which ``adele export-labels``,
the report and :meth:`adele.api.Run.label_quality` rank the given labels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..config import Config
from ..core import MemorizationDetector
from .. import runfolder
from ..core.quality import EarlyLearningAverage
from ..data.dataset import PreparedSplit
from ..metrics import scores_from_confusion
from ..prediction import predict_probs
from .distributed import DistInfo, all_reduce_sum

class EarlyLearningTracker:
    """Keeps the early-learning average of one run; ``state_dict`` goes into the checkpoint."""

    def __init__(self, cfg: Config, train: PreparedSplit, num_classes: int, dist: DistInfo,
                 detector: Optional[MemorizationDetector] = None):
        self.cfg = cfg
        self.train = train
        self.dist = dist
        self.avg = EarlyLearningAverage(train.shapes, num_classes)
        det = cfg.adele.detection
        #: a baseline's own detector, one point per epoch (ADELE passes its detector in)
        self.own = detector is None
        self.detector = detector or MemorizationDetector(
            num_classes, horizon=det.horizon or cfg.train.epochs, r=det.r, min_points=det.min_points, trim_flat=det.trim_flat,
            min_peak_iou=det.min_peak_iou, min_rise=det.min_rise, flag_offset=det.flag_offset)
        #: class -> epoch of its last snapshot (the epoch it stopped: flagged after that epoch's decision)
        self.stopped: dict[int, int] = {}

    def active(self) -> np.ndarray:
        """Classes that still take snapshots: not flagged; background until the first foreground class is flagged."""
        flagged = self.detector.flagged.copy()
        flagged[0] = bool(flagged[1:].any())
        return ~flagged

    @torch.no_grad()
    def after_epoch(self, epoch: int, train_cm: np.ndarray, net: torch.nn.Module, device: torch.device) -> None:
        """After the method's own end-of-epoch step: decide (own detector), then one snapshot for the active classes."""
        if self.own:
            self.detector.update(epoch, scores_from_confusion(train_cm)["iou"])
        active = self.active()
        for k in np.flatnonzero(~active):
            self.stopped.setdefault(int(k), epoch - 1)
        if not active.any() or epoch % self.cfg.quality.every != 0:
            return
        self.avg.add(self.snapshot(net, device), active)

    def snapshot(self, net: torch.nn.Module, device: torch.device) -> np.ndarray:
        """(C, total pixels) uint8 softmax of every training image; each process predicts its share."""
        model = getattr(net, "module", net)
        was_training = model.training
        q = np.zeros(self.avg.sums.shape, dtype=np.uint8)
        idx = list(range(self.dist.rank, len(self.train), self.dist.world_size))
        bs = self.cfg.train.batch_size if len(set(self.train.shapes)) == 1 else 1
        try:
            for s in range(0, len(idx), bs):
                chunk = idx[s : s + bs]
                probs = predict_probs(model, torch.stack([self.train.images[i] for i in chunk]).to(device)).float().cpu().numpy()
                for i, p in zip(chunk, probs):
                    self.avg.write(q, i, p)
        finally:
            model.train(was_training)
        if self.dist.enabled:
            q = all_reduce_sum(torch.from_numpy(q.astype(np.int32)).to(device), self.dist).cpu().numpy().astype(np.uint8)
        return q

    def state_dict(self) -> dict:
        state = {"average": self.avg.state_dict(), "stopped": {str(k): v for k, v in self.stopped.items()}}
        if self.own:
            state["detector"] = self.detector.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        avg = state["average"]
        self.avg.load_state_dict({"shapes": avg["shapes"], "sums": np.asarray(avg["sums"]), "counts": np.asarray(avg["counts"])})
        self.stopped = {int(k): int(v) for k, v in state["stopped"].items()}
        if self.own:
            self.detector.load_state_dict(state["detector"])

    def summary(self, classes: list[str]) -> dict:
        """What metrics.json says about the average: snapshots per class and the epoch each class stopped."""
        return {"source": "early-learning average of the eval-mode training softmax (adele.core.quality)",
                "snapshots": {n: int(c) for n, c in zip(classes, self.avg.counts)},
                "stopped_after_epoch": {classes[k]: e for k, e in sorted(self.stopped.items())}}

    def save(self, run_dir: str | Path, classes: list[str]) -> None:
        runfolder.save_early_average(run_dir, self.avg, self.summary(classes))


def log_budget(avg_bytes: int, limit_gb: float, log: Callable[[str], None]) -> bool:
    """True when the average fits in ``quality.max_gb``; otherwise says so in one line."""
    if avg_bytes <= limit_gb * 2**30:
        return True
    log(f"label-quality tracking is off for this run: its early-learning average would take {avg_bytes / 2**30:.1f} GB "
        f"(2 bytes per training pixel and class) > quality.max_gb={limit_gb}; raise quality.max_gb to keep it")
    return False
