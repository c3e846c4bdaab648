"""ADELE in the training loop: detection -> correction rounds -> consistency loss.

The pure rules live in :mod:`adele.core`; this module schedules them, runs
the eval-mode prediction pass that feeds the compact prediction store, keeps
the corrected labels in the run folder (``labels/round_XXX.npz``) and records
everything needed to explain and resume what happened.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..config import Config
from ..core import (
    MemorizationDetector,
    PredictionStore,
    change_precision,
    class_change_counts,
    classes_present,
    correct_labels,
    multiscale_logits,
    multiscale_loss,
)
from ..data.dataset import PreparedSplit
from ..losses import soft_dice_loss, supervised_loss
from ..metrics import scores_from_confusion
from . import checkpoint as ckpt
from .distributed import DistInfo


def save_labels(labels: list[np.ndarray], path: Path) -> None:
    """Atomically write a list of uint8 (H, W) maps (any shapes) to one npz."""
    buf = io.BytesIO()
    shapes = np.array([lab.shape for lab in labels], dtype=np.int64)
    np.savez_compressed(buf, flat=np.concatenate([lab.ravel() for lab in labels]), shapes=shapes)
    ckpt.atomic_write_bytes(buf.getvalue(), path)


def load_labels(path: Path) -> list[np.ndarray]:
    with np.load(path) as z:
        flat, shapes = z["flat"], z["shapes"]
    out, pos = [], 0
    for h, w in shapes:
        out.append(flat[pos : pos + h * w].reshape(int(h), int(w)).copy())
        pos += int(h * w)
    return out


@torch.no_grad()
def predict_probs(model: torch.nn.Module, images: torch.Tensor, scales=(1.0,), hflip: bool = False, temperature: float = 1.0) -> torch.Tensor:
    """Eval-mode softmax ``(B, C, H, W)`` averaged over ``scales`` and, optionally, horizontal flip."""
    was_training = model.training
    model.eval()
    acc, n = None, 0
    views = [False, True] if hflip else [False]
    for flip in views:
        x = images.flip(-1) if flip else images
        for logits in multiscale_logits(model, x, scales, tuple(images.shape[-2:])):
            p = (logits.float() / temperature).softmax(1)
            p = p.flip(-1) if flip else p
            acc = p if acc is None else acc + p
            n += 1
    model.train(was_training)
    return acc / n


class AdeleState:
    """Everything ADELE adds to a run, with ``state_dict`` for checkpoints."""

    def __init__(self, cfg: Config, num_classes: int, ignore_index: int, run_dir: Path, train: PreparedSplit, classes: list[str],
                 log: Callable[[str], None] = print, dist: Optional[DistInfo] = None):
        self.dist = dist or DistInfo()
        self.cfg = cfg
        self.a = cfg.adele
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.run_dir = Path(run_dir)
        self.train = train
        self.classes = classes
        self.log = log
        det = self.a.detection
        self.detector = MemorizationDetector(
            num_classes, horizon=det.horizon or self._default_horizon(cfg, len(train)), r=det.r, min_points=det.min_points,
            trim_flat=det.trim_flat, min_peak_iou=det.min_peak_iou, min_rise=det.min_rise,
        )
        self.round = 0
        self._pending_new: list[int] = []
        self.rounds: list[dict] = []
        self.epochs_log: list[dict] = []
        self.allowed = np.stack([classes_present(lab, num_classes)[0] for lab in train.original])
        self._store: Optional[PredictionStore] = None

    @staticmethod
    def _default_horizon(cfg: Config, n_train: int) -> int:
        """Planned number of checks: epochs, or training steps / ``detection.every_steps``."""
        k = cfg.adele.detection.every_steps
        if k is None:
            return cfg.train.epochs
        steps = cfg.train.epochs * -(-n_train // cfg.train.batch_size)
        return max(3, steps // k)

    # ------------------------------------------------------------------ loss

    def loss(self, net: torch.nn.Module, img: torch.Tensor, lab: torch.Tensor, step: int = 0) -> dict:
        """ADELE's training loss: CE at every scale + lambda * consistency, over the number of scales.

        On steps that skip the multi-scale term (``consistency.every_steps``) it is plain CE at scale 1.
        """
        con = self.a.consistency
        if step % con.every_steps != 0:
            logits = net(img).float()
            ce = supervised_loss(logits, lab, self.cfg.train.loss, self.ignore_index)
            return {"total": ce, "ce": ce, "consistency": torch.zeros((), device=img.device), "logits": logits}
        scales = tuple(con.scales)
        logits_list = net(img, scales=scales, out_size=tuple(lab.shape[-2:]))
        logits_list = [lg.float() for lg in logits_list]
        out = multiscale_loss(logits_list, lab, ignore_index=self.ignore_index, lam=con.lam, rho=con.rho, mask=con.mask)
        if self.cfg.train.loss == "ce_dice":  # the supervised term at every scale, as the CE
            dice = sum(soft_dice_loss(lg, lab, self.ignore_index) for lg in logits_list)
            out["ce"] = out["ce"] + dice
            out["total"] = (out["ce"] + con.lam * out["consistency"]) / len(logits_list)
        out["logits"] = logits_list[scales.index(1.0) if 1.0 in scales else 0]
        return out

    # ------------------------------------------------------------------ store

    def ensure_store(self, dist: DistInfo) -> PredictionStore:
        """Open the run's prediction store, creating it on rank 0 first (collective call)."""
        if self._store is None:
            d = self.run_dir / "store"
            if dist.rank == 0 and not (d / "index.json").is_file():
                PredictionStore.create(d, self.train.shapes).flush()
            dist.barrier()
            self._store = PredictionStore.open(d)
        return self._store

    @property
    def store(self) -> PredictionStore:
        if self._store is None:
            raise RuntimeError("prediction store not opened; call ensure_store(dist) first")
        return self._store

    def record_train_predictions(self, idx: torch.Tensor, logits: torch.Tensor) -> None:
        """Official behaviour (``correction.predictions: train``): keep the training-time softmax."""
        if self.a.correction.predictions != "train" or not self.a.correction.enabled:
            return
        self.ensure_store(self.dist)
        probs = (logits.float() / self.a.correction.temperature).softmax(1).cpu()
        self.store.write_batch(idx.tolist(), probs)

    @torch.no_grad()
    def predict_train_set(self, net: torch.nn.Module, device: torch.device, dist: DistInfo) -> None:
        """Eval-mode pass over this rank's share of the training images into the store."""
        c = self.a.correction
        self.ensure_store(dist)
        model = getattr(net, "module", net)
        idx = list(range(dist.rank, len(self.train), dist.world_size))
        bs = self.cfg.train.batch_size if len(set(self.train.shapes)) == 1 else 1
        for s in range(0, len(idx), bs):
            chunk = idx[s : s + bs]
            images = torch.stack([self.train.images[i] for i in chunk]).to(device)
            probs = predict_probs(model, images, c.scales, c.hflip, c.temperature)
            self.store.write_batch(chunk, probs.cpu())
        self.store.flush()

    # ------------------------------------------------------------------ epoch hook

    def detect(self, epoch: int, cm: np.ndarray, step: Optional[int] = None) -> dict:
        """One memorization check from a (C, C) confusion of training predictions vs current labels."""
        ious = scores_from_confusion(cm)["iou"]
        results = self.detector.update(epoch, ious)
        flagged = self.detector.flagged
        rec = {
            "epoch": epoch,
            "train_iou": [None if np.isnan(v) else float(v) for v in ious],
            "flagged": [int(c) for c in np.flatnonzero(flagged)],
            "newly_flagged": [int(c) for c in self.detector.newly_flagged],
            "classes": {},
        }
        if step is not None:
            rec["step"] = step
        for c, res in enumerate(results):
            if c == 0:
                continue
            fit = res.fit
            rec["classes"][self.classes[c]] = {
                "flagged": bool(flagged[c]), "onset": res.onset, "reason": res.reason, "trimmed": res.trimmed,
                "a": None if fit is None else fit.a, "b": None if fit is None else fit.b, "c": None if fit is None else fit.c,
            }
        for c in self.detector.newly_flagged:
            where = f"step {step}" if step is not None else f"epoch {epoch}"
            self.log(f"{where}: class '{self.classes[c]}' flagged (memorization onset at check {self.detector.onsets.get(c)})")
        self._pending_new += [int(c) for c in self.detector.newly_flagged]
        self.epochs_log.append(rec)
        return rec

    def after_epoch(self, epoch: int, train_cm: np.ndarray, net: torch.nn.Module, device: torch.device, dist: DistInfo) -> dict:
        """Epoch-level check (unless checks run every K steps), then a correction round when due."""
        if self.a.detection.every_steps is None:
            self.detect(epoch, train_cm)
        rec = self.epochs_log[-1] if self.epochs_log else {"epoch": epoch}
        flagged = self.detector.flagged
        newly, self._pending_new = self._pending_new, []
        row = {"flagged": int(flagged.sum())}
        corr = self.a.correction
        due = bool(newly) or (flagged.any() and epoch % corr.every == 0)
        if corr.enabled and due:
            info = self.correction_round(epoch, net, device, dist)
            rec["correction"] = info
            row["correction_round"] = info["round"]
            row["pixels_changed"] = info["pixels_changed"]
            if info.get("agreement_after") is not None:
                row["label_agreement"] = info["agreement_after"]
        if dist.rank == 0:
            ckpt.atomic_write_text("\n".join(json.dumps(r) for r in self.epochs_log) + "\n", self.run_dir / "adele_log.jsonl")
        return row

    def correction_round(self, epoch: int, net: torch.nn.Module, device: torch.device, dist: DistInfo) -> dict:
        c = self.a.correction
        self.ensure_store(dist)
        if c.predictions == "eval":
            self.predict_train_set(net, device, dist)
        dist.barrier()
        flagged = self.detector.flagged
        # changes are counted against the labels the rule starts from: the current labels, or the
        # original noisy ones when every round restarts from them
        # (correct_labels returns new arrays; the current labels are replaced only after the stats)
        base = self.train.original if c.restart_from_original else self.train.labels
        after = []
        for i in range(len(self.train)):
            pred, conf = self.store.read(i)
            res = correct_labels(base[i], pred, conf, flagged, c.tau_bg, c.tau_fg, self.allowed[i], self.ignore_index, c.correct_ignore)
            after.append(res.labels)
        ckpt.crash_point("correction", epoch)
        self.round += 1
        old_flat = np.concatenate([x.ravel() for x in base])
        new_flat = np.concatenate([x.ravel() for x in after])
        counts = class_change_counts(old_flat, new_flat, self.num_classes)
        info = {
            "round": self.round, "epoch": epoch, "flagged": [self.classes[k] for k in np.flatnonzero(flagged)],
            "pixels_changed": int((old_flat != new_flat).sum()),
            "changed_per_class": {n: int(v) for n, v in zip(self.classes, counts)},
        }
        if self.train.clean is not None:
            clean_flat = np.concatenate([x.ravel() for x in self.train.clean])
            prec = change_precision(old_flat, new_flat, clean_flat, self.num_classes, self.ignore_index)
            info["precision"] = None if np.isnan(prec.overall) else float(prec.overall)
            info["precision_per_class"] = {n: (None if np.isnan(v) else float(v)) for n, v in zip(self.classes, prec.per_class)}
            cur_flat = np.concatenate([x.ravel() for x in self.train.labels])
            info["agreement_before"] = _mean_dice(cur_flat, clean_flat, self.num_classes, self.ignore_index)
            info["agreement_after"] = _mean_dice(new_flat, clean_flat, self.num_classes, self.ignore_index)
        for i, lab in enumerate(after):
            self.train.labels[i][...] = lab
        if dist.rank == 0:
            save_labels(self.train.labels, self.run_dir / "labels" / f"round_{self.round:03d}.npz")
        dist.barrier()
        self.rounds.append(info)
        msg = f"epoch {epoch}: correction round {self.round} changed {info['pixels_changed']} pixels"
        if "precision" in info:
            msg += f", precision {info['precision'] if info['precision'] is not None else float('nan'):.3f}, label Dice vs clean {info['agreement_before']:.3f} -> {info['agreement_after']:.3f}"
        self.log(msg)
        return info

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict:
        return {"detector": self.detector.state_dict(), "round": self.round, "rounds": self.rounds, "epochs_log": self.epochs_log}

    def load_state_dict(self, state: dict) -> None:
        self.detector.load_state_dict(state["detector"])
        self.round = int(state["round"])
        self.rounds = list(state["rounds"])
        self.epochs_log = list(state["epochs_log"])
        if self.round > 0:
            labels = load_labels(self.run_dir / "labels" / f"round_{self.round:03d}.npz")
            for i, lab in enumerate(labels):
                self.train.labels[i][...] = lab
        else:
            for i, lab in enumerate(self.train.original):
                self.train.labels[i][...] = lab

    def summary(self) -> dict:
        return {
            "onsets": {self.classes[c]: int(e) for c, e in self.detector.onsets.items()},
            "flag_epochs": {self.classes[c]: int(e) for c, e in self.detector.flag_epochs.items()},
            "rounds": self.rounds,
        }


def _mean_dice(a: np.ndarray, b: np.ndarray, num_classes: int, ignore_index: int) -> float:
    valid = b != ignore_index
    cm = np.bincount(b[valid].astype(np.int64) * num_classes + a[valid].astype(np.int64), minlength=num_classes**2).reshape(num_classes, num_classes)
    dice = scores_from_confusion(cm)["dice"][1:]
    return float(np.nanmean(dice)) if np.isfinite(dice).any() else float("nan")
