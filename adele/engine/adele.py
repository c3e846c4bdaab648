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
from ..metrics import mean_dice, scores_from_confusion
from . import checkpoint as ckpt
from .distributed import DistInfo, steps_per_epoch


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
def predict_probs(model: torch.nn.Module, images: torch.Tensor, scales=(1.0,), hflip: bool = False,
                  temperature: float = 1.0, average: str = "probs") -> torch.Tensor:
    """Eval-mode class probabilities ``(B, C, H, W)`` of ``images`` (B, C_in, H, W), over several views.

    Views: every scale in ``scales`` (input resized, logits resized back to (H, W)) and, with
    ``hflip``, each of them mirrored (the output mirrored back). ``average="probs"``: mean over
    views of softmax(logits / temperature); ``"logits"``: softmax(mean over views of logits /
    temperature), the official VOC code. The model's train/eval mode is restored.
    """
    if average not in ("probs", "logits"):
        raise ValueError(f"average must be 'probs' or 'logits', got {average!r}")
    was_training = model.training
    model.eval()
    try:
        acc, n = None, 0
        for flip in ([False, True] if hflip else [False]):
            x = images.flip(-1) if flip else images
            for logits in multiscale_logits(model, x, scales, tuple(images.shape[-2:])):
                v = logits.float() / temperature
                v = v.softmax(1) if average == "probs" else v
                v = v.flip(-1) if flip else v
                acc = v if acc is None else acc + v
                n += 1
        out = acc / n
        return out if average == "probs" else out.softmax(1)
    finally:
        model.train(was_training)


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
        per_epoch = steps_per_epoch(len(train), cfg.train.batch_size, self.dist.world_size)
        #: epochs between two IoU points: 1, or every_steps / steps per epoch (official VOC: 100 / 1058)
        self.check_dt = 1.0 if det.every_steps is None else det.every_steps / per_epoch
        self.detector = MemorizationDetector(
            num_classes, horizon=det.horizon or cfg.train.epochs, r=det.r, min_points=det.min_points,
            trim_flat=det.trim_flat, min_peak_iou=det.min_peak_iou, min_rise=det.min_rise,
            dt=self.check_dt, flag_offset=det.flag_offset,
        )
        self.round = 0
        self._checks: list[dict] = []  # IoU points of the current epoch when checked every K steps
        self.rounds: list[dict] = []
        self.epochs_log: list[dict] = []
        self.allowed = np.stack([classes_present(lab, num_classes)[0] for lab in train.original])
        self._store: Optional[PredictionStore] = None

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
        out = multiscale_loss(logits_list, lab, ignore_index=self.ignore_index, lam=con.lam, rho=con.rho, mask=con.mask,
                              normalize=con.normalize)
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
            probs = predict_probs(model, images, c.scales, c.hflip, c.temperature, c.average)
            self.store.write_batch(chunk, probs.cpu())
        self.store.flush()

    # ------------------------------------------------------------------ epoch hook

    def record_check(self, epoch: int, cm: np.ndarray, step: int) -> None:
        """One training-IoU point from a (C, C) confusion of the last ``every_steps`` steps (no decision)."""
        ious = scores_from_confusion(cm)["iou"]
        self.detector.update(epoch, ious, decide=False)
        self._checks.append({"step": int(step), "train_iou": [None if np.isnan(v) else float(v) for v in ious]})

    def detect(self, epoch: int, cm: np.ndarray) -> dict:
        """The end-of-epoch decision; with one point per epoch, ``cm`` (C, C) of this epoch's training
        predictions vs current labels gives that point first."""
        ious = scores_from_confusion(cm)["iou"]
        if self.a.detection.every_steps is None:
            results = self.detector.update(epoch, ious)
        else:
            results = self.detector.decide(epoch)
        flagged = self.detector.flagged
        rec = {
            "epoch": epoch,
            "train_iou": [None if np.isnan(v) else float(v) for v in ious],
            "flagged": [int(c) for c in np.flatnonzero(flagged)],
            "newly_flagged": [int(c) for c in self.detector.newly_flagged],
            "classes": {},
        }
        if self._checks:
            rec["checks"], self._checks = self._checks, []
        for c, res in enumerate(results):
            if c == 0:
                continue
            fit = res.fit
            rec["classes"][self.classes[c]] = {
                "flagged": bool(flagged[c]), "onset": res.onset, "reason": res.reason, "trimmed": res.trimmed,
                "a": None if fit is None else fit.a, "b": None if fit is None else fit.b, "c": None if fit is None else fit.c,
            }
        for c in self.detector.newly_flagged:
            self.log(f"epoch {epoch}: class '{self.classes[c]}' flagged (memorization onset at epoch {self.detector.onsets.get(c)})")
        self.epochs_log.append(rec)
        return rec

    def after_epoch(self, epoch: int, train_cm: np.ndarray, net: torch.nn.Module, device: torch.device, dist: DistInfo) -> dict:
        """The epoch's memorization decision, then a correction round when due.

        A round runs in the epoch a class is first flagged and in every epoch that is a multiple of
        ``correction.every`` once any class is flagged (official SegTHOR schedule).
        """
        rec = self.detect(epoch, train_cm)
        flagged = self.detector.flagged
        newly = rec["newly_flagged"]
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
            info["agreement_before"] = mean_dice(cur_flat, clean_flat, self.num_classes, self.ignore_index)
            info["agreement_after"] = mean_dice(new_flat, clean_flat, self.num_classes, self.ignore_index)
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
            "onsets": {self.classes[c]: e for c, e in self.detector.onsets.items()},
            "flag_epochs": {self.classes[c]: int(e) for c, e in self.detector.flag_epochs.items()},
            "rounds": self.rounds,
        }
