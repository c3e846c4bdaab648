"""Training loop for the baseline and ADELE, with exact resume.

One epoch: train (cross-entropy, or ADELE's multi-scale loss), per-class train
IoU against the current labels, memorization onset detection and, when due,
a label-correction round; then validation, logs and an atomic checkpoint.
Everything that changes across epochs lives in the checkpoint or in files
that the checkpoint names, so ``--resume`` continues bit-for-bit on CPU.
"""
from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..run import files
from ..config import Config
from ..console import epoch_line, progress, stdout_is_terminal
from ..data.dataset import PreparedSplit, RunData, TrainDataset, batch_indices, collate
from ..errors import ConfigError, RunError, TrainingDiverged
from ..metrics import SegMetrics, confusion_matrix, foreground_mean, label_agreement, present_in_truth, scores_from_confusion
from ..models import build_model_from_config
from ..probabilities import resolve_device
from ..run import RunFolder
from ..run.data import load_run_data
from ..run.records import EpochRow, ValScores
from . import checkpoint as ckpt
from .method import AdeleState, Baseline
from .ema import WeightEMA
from .memorization import MemorizationTracker
from .early_learning import EarlyLearningTracker, log_budget
from .rundir import record_resume, take_run_dir
from .distributed import DistInfo, EpochSampler, MultiScaleNet, all_reduce_sum, dist_info, steps_per_epoch


def lr_at(cfg: Config, step: int, total: int) -> float:
    o = cfg.optim
    if o.schedule == "poly":
        return o.lr * (1 - step / max(1, total)) ** o.poly_power
    if o.schedule == "cosine":
        return o.lr * 0.5 * (1 + math.cos(math.pi * step / max(1, total)))
    return o.lr


def make_optimizer(cfg: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    params = [p for p in model.parameters() if p.requires_grad]
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, nesterov=o.nesterov and o.momentum > 0)
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)


class Trainer:
    """Owns the model, optimizer, data and run folder of one training run."""

    def __init__(self, cfg: Config, run_dir: str | Path, data: Optional[RunData] = None, model: Optional[torch.nn.Module] = None, log: Callable[[str], None] = print):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.log = log
        self.dist: DistInfo = dist_info()
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        self.device = self._device()
        self.data = data or load_run_data(cfg)
        cfg = self.cfg = self._clip_batch(cfg)
        src = self.data.source
        self.classes = list(src.classes)
        self.num_classes = src.num_classes
        self.ignore_index = src.ignore_index
        torch.manual_seed(cfg.train.seed)
        self.model = model if model is not None else build_model_from_config(cfg.model, self.data.train.in_channels, self.num_classes)
        if cfg.model.pretrained:
            self._load_pretrained(cfg.model.pretrained)
        self.model.to(self.device)
        if cfg.train.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.net = MultiScaleNet(self.model)
        if self.dist.enabled:
            self.net = torch.nn.parallel.DistributedDataParallel(self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.optimizer = make_optimizer(cfg, self.model)
        self.ema = WeightEMA(self.model, cfg.train.ema) if cfg.train.ema > 0 else None
        self.amp = cfg.train.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.epoch = 0
        self.history: list[dict] = []
        #: memorization counts when the clean labels are known (:mod:`adele.engine.memorization`)
        self.memorization = MemorizationTracker(self.data.train, self.num_classes, self.ignore_index, self.device, self.dist)
        self.best = {"epoch": 0, "val_mean_dice": -1.0}
        if cfg.train.patience is not None and self.data.val is None:
            raise ConfigError("train.patience stops on the validation score: the dataset has no val split "
                              "(add one, or set train.patience=null)")
        self.stopped_early: Optional[dict] = None  # where train.patience ended the run
        self._best_weights: Optional[dict] = None  # the eval weights of the best validation epoch (best.pt)
        #: validation labels a checkpoint can be selected on: "noisy" (as a user's own masks) and, where known, "clean"
        self.val_label_sets = validation_label_sets(self.data.val, cfg.data.noise, cfg.data.validation_labels())
        #: per label set, the best validation epoch and the test scores of its weights, taken when it was reached
        #: (the competitors "keep the best checkpoint" from this one training: metrics.json best_checkpoint_<set>_val)
        self.best_by: dict[str, dict] = {}
        #: adele.correction.weights best_val: the eval weights of the best epoch on the noisy val labels so far
        self._correction_weights: Optional[dict] = None
        self._correction_model: Optional[torch.nn.Module] = None
        if cfg.method == "adele" and cfg.adele.correction.weights == "best_val" and "noisy" not in self.val_label_sets:
            log("adele.correction.weights is best_val but the dataset has no validation split: the current weights correct the labels")
        #: the method's schedule around the loop (:class:`~adele.engine.method.Baseline` or ADELE)
        self.method: Baseline = (AdeleState(cfg, self.num_classes, self.ignore_index, self.run_dir, self.data.train, self.classes, log, self.dist)
                                 if cfg.method == "adele" else Baseline(cfg, self.ignore_index))
        self.train_ds = TrainDataset(self.data.train, cfg.train.seed, cfg.data.hflip, cfg.data.scale_range, cfg.data.crop, self.ignore_index)
        #: label quality from this run's training dynamics (:mod:`adele.engine.early_learning`); None when off
        self.quality: Optional[EarlyLearningTracker] = None
        nbytes = self.num_classes * sum(h * w for h, w in self.data.train.shapes)
        if cfg.quality.track and log_budget(nbytes, cfg.quality.max_gb, log if self.is_main else (lambda m: None)):
            self.quality = EarlyLearningTracker(cfg, self.data.train, self.num_classes, self.dist)
        self._tb = None

    # ------------------------------------------------------------------ setup

    def _clip_batch(self, cfg: Config) -> Config:
        """``cfg`` with ``train.batch_size`` at most the training images one process takes in an epoch (one warning line
        when clipped): a larger batch would only repeat images (with ``train.steps_per_epoch``, drawn again and again)."""
        n, world = len(self.data.train.ids), self.dist.world_size
        most = max(1, math.ceil(n / world))
        if cfg.train.batch_size <= most:
            return cfg
        if self.is_main:
            per = f" ({most} per process of {world})" if world > 1 else ""
            self.log(f"warning: train.batch_size={cfg.train.batch_size} is more than the {n} training images{per}; "
                     f"batches clipped to {most} (set train.batch_size={most} or less to silence this)")
        return cfg.replace(**{"train.batch_size": most})

    def _device(self) -> torch.device:
        """``train.device``; under torchrun with CUDA, this process's GPU (its local rank)."""
        if self.dist.enabled and torch.cuda.is_available():
            return torch.device("cuda", self.dist.local_rank)
        return resolve_device(self.cfg.train.device, "train.device")

    def _load_pretrained(self, path: str) -> None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"model.pretrained: {p} not found; give the path of a saved state dict")
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
            raise ConfigError(f"model.pretrained: {p} is not a PyTorch state dict ({type(exc).__name__}); give a file saved with torch.save(model.state_dict())") from None
        state = state.get("model", state) if isinstance(state, dict) else state
        if isinstance(state, dict):  # a model with its own loader (DeepLab) checks the names itself
            flat = hasattr(self.model, "load_pretrained") or all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
        else:
            flat = False
        if not isinstance(state, dict) or not state or not flat:
            raise ConfigError(f"model.pretrained: {p} does not hold a state dict (a mapping of parameter names to tensors)")
        try:
            if hasattr(self.model, "load_pretrained"):  # e.g. DeepLab: also accepts a torchvision ResNet state dict
                missing, unexpected = self.model.load_pretrained(state)
            else:
                missing, unexpected = self.model.load_state_dict(state, strict=False)
        except (RuntimeError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()
            detail = next((line.strip() for line in first if "size mismatch" in line), first[0] if first else type(exc).__name__)
            raise ConfigError(f"model.pretrained: {p} does not fit model '{self.cfg.model.name}' (width {self.cfg.model.width}): {detail[:200]}") from None
        if len(unexpected) == len(state):
            raise ConfigError(f"model.pretrained: none of the {len(state)} tensors in {p} belongs to model '{self.cfg.model.name}'; pass weights of this architecture")
        self.log(f"loaded pretrained weights from {p} ({len(missing)} missing, {len(unexpected)} unexpected keys)")

    @property
    def is_main(self) -> bool:
        return self.dist.rank == 0

    def prepare_run_dir(self, resume: bool, overwrite: bool, inputs: tuple = ()) -> None:
        """Take the run folder: its one-writer lock, stale temp files removed; a new run also gets its marker and config.

        Rank 0 does the work; the other ranks learn whether it succeeded, so every process stops on a refusal.
        """
        failed: Optional[BaseException] = None
        if self.is_main:
            try:
                self._prepare_run_dir(resume, overwrite, list(inputs))
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the other ranks are told
                failed = exc
        if self.dist.enabled:
            flag = all_reduce_sum(torch.tensor([1.0 if failed is not None else 0.0], device=self.device), self.dist)
            if failed is None and float(flag[0]) > 0:
                raise RunError(f"{self.run_dir}: rank 0 could not prepare the run folder (see its message)")
        if failed is not None:
            raise failed
        self.dist.barrier()

    def _prepare_run_dir(self, resume: bool, overwrite: bool, extra_inputs: list) -> None:
        info = {"classes": self.classes, "ignore_index": self.ignore_index, "dataset": self.data.source.name,
                "train_ids": self.data.train.ids, "has_clean": self.data.train.clean is not None, "world_size": self.dist.world_size}
        take_run_dir(self.run_dir, self.cfg, resume, overwrite, extra_inputs, info, self.data.source)

    def record_resume(self, changes: list[tuple[str, Any, Any]], allowed: bool) -> None:
        """After a successful resume: the saved config says what the run now uses; run.json lists every resume and its changes."""
        if self.is_main:
            record_resume(self.run_dir, self.cfg, self.epoch, changes, allowed, self.dist.world_size)

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict:
        return ckpt.to_tensor_tree({
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "rng": ckpt.rng_state(),
            "history": self.history,
            "memorization": self.memorization.state_dict(),
            "best": self.best,
            "best_by": self.best_by,
            "correction_weights": self._correction_weights,
            "adele": self.method.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "quality": self.quality.state_dict() if self.quality else None,
            "config": self.cfg.to_dict(),
            "model_name": self.cfg.model.name,
        })

    def load_state_dict(self, state: dict) -> None:
        if state.get("model_name", self.cfg.model.name) != self.cfg.model.name:
            raise RunError(f"checkpoint was made with model '{state.get('model_name')}', config asks for '{self.cfg.model.name}'; use the run's own config")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError:
            raise RunError("checkpoint does not match this model (different architecture, width or class count); resume with the run's own config") from None
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])
        self.memorization.load_state_dict(state.get("memorization", []))
        self.best = dict(state["best"])
        self.best_by = {k: dict(v) for k, v in (state.get("best_by") or {}).items()}
        self._correction_weights = state.get("correction_weights")
        ckpt.set_rng_state(state["rng"])
        if state.get("adele"):
            self.method.load_state_dict(state["adele"])
        if self.ema is not None:
            if not state.get("ema"):
                raise RunError("checkpoint has no weight average (train.ema was off); resume with the run's own config")
            self.ema.load_state_dict(state["ema"])
        if self.quality is not None:
            if state.get("quality"):
                self.quality.load_state_dict(state["quality"])
            elif self.epoch > 0:  # a checkpoint made without tracking: its flags (a baseline's) are lost
                self.quality = None
                self.log("label-quality tracking stays off: the checkpoint was made without it (quality.track)")

    def model_payload(self, weights: dict) -> dict:
        """What model.pt and best.pt hold: the weights and what is needed to rebuild the model."""
        return {"model": weights, "config": self.cfg.to_dict(), "classes": self.classes, "in_channels": self.data.train.in_channels,
                "ignore_index": self.ignore_index, "model_name": self.cfg.model.name}

    def keep_best(self) -> None:
        """The evaluation weights of the best validation epoch so far: in memory (for the test scores at the end) and best.pt."""
        self._best_weights = {k: v.detach().cpu().clone() for k, v in self.eval_model.state_dict().items()}
        if self.is_main:
            files.save_best(self.run_dir, self.model_payload(self._best_weights))

    def resume(self) -> None:
        found = files.load_latest(self.run_dir, map_location="cpu")
        if found is None:
            raise RunError(f"{self.run_dir}: no readable checkpoint; start a new run")
        epoch, state = found
        RunFolder.open(self.run_dir).training_data(self.data)  # RunError when these are not the images the run trained on
        self.load_state_dict(state)
        if self.best["epoch"] > 0 and files.best_path(self.run_dir).is_file():
            self._best_weights = files.load_model(self.run_dir, "best")["model"]
        self.log(f"resumed from epoch {epoch}")

    def save_checkpoint(self) -> None:
        if self.is_main:
            files.save_checkpoint(self.run_dir, self.epoch, self.state_dict(), keep=max(2, self.cfg.train.keep_last))
        self.dist.barrier()

    # ------------------------------------------------------------------ loop

    def loader(self, epoch: int) -> DataLoader:
        """Batches of ``train.batch_size`` images per process, shuffled by :class:`EpochSampler`."""
        self.train_ds.set_epoch(epoch)
        t = self.cfg.train
        sampler = EpochSampler(len(self.train_ds), t.seed, epoch, self.dist, t.steps_per_epoch, t.batch_size)
        return DataLoader(self.train_ds, batch_size=self.cfg.train.batch_size, sampler=sampler, collate_fn=collate, num_workers=self.cfg.data.num_workers)

    def fit(self) -> dict:
        cfg = self.cfg
        per_epoch = steps_per_epoch(len(self.train_ds), cfg.train.batch_size, self.dist.world_size, cfg.train.steps_per_epoch)
        total_steps = per_epoch * cfg.train.epochs
        epochs = range(self.epoch + 1, cfg.train.epochs + 1)
        if self.epoch == 0:  # the same decision on every rank (a resumed epoch-0 state is saved again unchanged)
            self.save_checkpoint()  # epoch 0: an interruption or divergence in epoch 1 still leaves a state to resume from
        bar = progress(epochs, desc="epochs", position=0) if self.is_main else epochs
        lines = self.is_main and not stdout_is_terminal()  # a log file or job scheduler: one line per epoch
        stopped = False
        for epoch in bar:
            if self.patience_spent():  # (also a resumed run that had stopped: it stays stopped)
                stopped = True
                break
            self.epoch = epoch
            t0 = time.perf_counter()
            epoch_row, train_cm = self.train_epoch(epoch, (epoch - 1) * per_epoch, total_steps)
            epoch_row.method = self.method.after_epoch(epoch, train_cm, self.correction_model(), self.device, self.dist)
            if self.quality is not None:
                tq = time.perf_counter()
                self.quality.after_epoch(epoch, train_cm, self.eval_model, self.device)
                epoch_row.quality_s = round(time.perf_counter() - tq, 3)  # the cost of tracking (history.csv)
            if self.data.val is not None and (epoch % cfg.train.eval_every == 0 or epoch == cfg.train.epochs):
                scored = self.evaluate_sets(self.data.val, {"": self.data.val.original, **self.val_label_sets})
                val = scored[""]
                epoch_row.val = ValScores(val["mean_dice"], val["mean_iou"], {n: val["dice"][n] for n in self.classes[1:]})
                if (val["mean_dice"] or 0) > self.best["val_mean_dice"]:
                    self.best = {"epoch": epoch, "val_mean_dice": val["mean_dice"] or 0.0}
                    self.keep_best()
                self.track_best_by(epoch, epoch_row.val, scored)
            epoch_row.time_s = round(time.perf_counter() - t0, 3)
            epoch_row.peak_rss_mb = _peak_rss_mb()
            row = epoch_row.to_dict()
            self.history.append(row)
            self.write_logs(row)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{row['loss']:.3f}", val_dice=f"{row.get('val_mean_dice') or float('nan'):.3f}")
            if lines:
                self.log(epoch_line(row, cfg.train.epochs))
            if not math.isfinite(row["loss"]) or not self._weights_finite():
                raise self._diverged(epoch, None, None)
            self.save_checkpoint()
        if stopped:  # (not a run whose last planned epoch came train.patience epochs after its best)
            p = self.cfg.train.patience
            self.stopped_early = {"epoch": self.epoch, "best_epoch": self.best["epoch"], "patience": p}
            if self.is_main:
                self.log(f"stopped after epoch {self.epoch} of {cfg.train.epochs}: no better validation score for {p} "
                         f"epochs since epoch {self.best['epoch']} (train.patience)")
        return self.finish()

    def patience_spent(self) -> bool:
        """``train.patience`` epochs have passed since the best validation epoch (early stopping)."""
        p = self.cfg.train.patience
        return p is not None and self.best["epoch"] > 0 and self.epoch - self.best["epoch"] >= p

    def train_epoch(self, epoch: int, step0: int, total_steps: int) -> tuple[EpochRow, np.ndarray]:
        """One pass of training; its history row so far (loss, training IoU) and the (C, C) confusion of its
        predictions against the labels trained on (the method's memorization point)."""
        cfg, C = self.cfg, self.num_classes
        self.net.train()
        cm = torch.zeros(C, C, dtype=torch.int64, device=self.device)
        augmented = bool(cfg.data.crop or cfg.data.scale_range or cfg.data.hflip)  # pixel alignment with stored labels lost
        mem = self.memorization if MemorizationTracker.possible(self.data.train, augmented) else None
        if mem is not None:
            mem.start_epoch()
        loss_sum, cons_sum, n_batches = 0.0, 0.0, 0
        loader = self.loader(epoch)
        batches = progress(loader, desc=f"epoch {epoch}", leave=False, position=1) if self.is_main else loader
        for step, (img, lab, idx) in enumerate(batches, start=step0):
            for group in self.optimizer.param_groups:
                group["lr"] = lr_at(cfg, step, total_steps)
            img = img.to(self.device, non_blocking=True)
            lab = lab.to(self.device, non_blocking=True)
            if cfg.train.channels_last:
                img = img.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, enabled=self.amp):
                out = self.method.loss(self.net, img, lab, step)
                logits = out["logits"]
                if "consistency" in out:
                    cons_sum += float(out["consistency"].detach())
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(out["total"]).backward()
            if cfg.optim.clip_grad > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.clip_grad)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.ema is not None:
                self.ema.update(self.model)
            loss_value = float(out["total"].detach())
            loss_sum += loss_value
            n_batches += 1
            if not math.isfinite(loss_value) and not self.dist.enabled:  # with several processes: checked on the reduced epoch loss
                raise self._diverged(epoch, step + 1, lab)
            with torch.no_grad():
                pred = logits.detach().argmax(1)
                batch_cm = confusion_matrix(pred, lab, C, self.ignore_index)
                cm += batch_cm
                if mem is not None:
                    mem.after_batch(pred, idx)
                self.method.after_batch(epoch, step, idx, logits.detach(), batch_cm)
        cm = all_reduce_sum(cm, self.dist)
        stats = torch.tensor([loss_sum, cons_sum, n_batches], dtype=torch.float64, device=self.device)
        stats = all_reduce_sum(stats, self.dist)
        ious = scores_from_confusion(cm)["iou"]
        row = EpochRow(
            epoch=epoch, lr=self.optimizer.param_groups[0]["lr"], loss=float(stats[0] / max(1, stats[2])),
            consistency=float(stats[1] / max(1, stats[2])) if self.method.tracks_consistency else None,
            train_mean_iou=foreground_mean(ious, present_in_truth(cm)),
            train_iou={n: None if np.isnan(v) else float(v) for n, v in zip(self.classes, ious)},
        )
        if mem is not None:
            mem.end_epoch(epoch)
        return row, cm.cpu().numpy()

    def _weights_finite(self) -> bool:
        return all(bool(torch.isfinite(t).all()) for t in self.model.state_dict().values() if t.is_floating_point())

    def _diverged(self, epoch: int, step: Optional[int], lab: Optional[torch.Tensor]) -> "TrainingDiverged":
        """The error for a non-finite loss or weights; nothing of this epoch is saved, the last checkpoint is the last finite state."""
        last = files.list_checkpoints(self.run_dir)
        kept = f"the last finite state is {last[-1][1].relative_to(self.run_dir)} (epoch {last[-1][0]}, resume with --resume after fixing the cause)" if last else "no checkpoint was saved"
        lr = self.cfg.optim.lr
        if lab is not None and not bool((lab != self.ignore_index).any()):
            cause = f"a training batch whose labels are all ignore_index ({self.ignore_index}): give those images labelled pixels or drop them"
        elif lr >= 1:
            cause = f"optim.lr={lr} is far too high; lower it"
        else:
            cause = f"too high a learning rate (optim.lr={lr}) or extreme input values; lower optim.lr or set optim.clip_grad"
        where = f"at step {step}" if step is not None else "(epoch loss or weights)"
        return TrainingDiverged(f"training diverged in epoch {epoch}: non-finite loss {where}; {kept}; likely cause: {cause}")

    @property
    def eval_model(self) -> torch.nn.Module:
        """The weights used for evaluation, correction and model.pt: the average when ``train.ema`` is on."""
        return self.ema.model if self.ema is not None else self.model

    @torch.no_grad()
    def predict_logits(self, images: torch.Tensor, model: Optional[torch.nn.Module] = None) -> torch.Tensor:
        model = model if model is not None else self.eval_model
        was_training = model.training
        model.eval()
        try:
            with torch.autocast(self.device.type, enabled=self.amp):
                return model(images.to(self.device)).float()
        finally:
            model.train(was_training)

    @torch.no_grad()
    def evaluate(self, split: PreparedSplit, labels: Optional[list[np.ndarray]] = None, model: Optional[torch.nn.Module] = None) -> dict:
        """Dice/IoU of the current model (or ``model``) on ``split`` (its ``original`` labels unless ``labels`` given)."""
        return self.evaluate_sets(split, {"": labels if labels is not None else split.original}, model)[""]

    @torch.no_grad()
    def evaluate_sets(self, split: PreparedSplit, label_sets: dict[str, list[np.ndarray]], model: Optional[torch.nn.Module] = None) -> dict[str, dict]:
        """Dice/IoU of one prediction pass over ``split`` against each named list of (H, W) label arrays."""
        metrics = {k: SegMetrics(self.num_classes, self.ignore_index) for k in label_sets}
        for chunk in batch_indices(split.shapes, self.cfg.train.batch_size):
            img = torch.stack([split.images[i] for i in chunk])
            pred = self.predict_logits(img, model).argmax(1).cpu()
            for k, labels in label_sets.items():
                metrics[k].update(pred, torch.from_numpy(np.stack([labels[i] for i in chunk])).long())
        return {k: m.compute(self.classes) for k, m in metrics.items()}

    def track_best_by(self, epoch: int, val: ValScores, scored: dict[str, dict]) -> None:
        """Per validation label set (noisy / clean): its mean Dice in the epoch's ``val`` scores, and on a new best the
        test scores of these weights, so that each "best checkpoint" competitor is known without keeping its weights."""
        test: Optional[dict] = None  # one test pass for this epoch's weights, whichever selections they win
        for name in self.val_label_sets:
            dice = scored[name]["mean_dice"] or 0.0
            val.by_label_set[name] = scored[name]["mean_dice"]
            if dice > self.best_by.get(name, {}).get("val_mean_dice", -1.0):
                rec: dict[str, Any] = {"epoch": epoch, "val_mean_dice": dice}
                if self.data.test is not None:
                    test = test if test is not None else self.evaluate(self.data.test)
                    rec["test"] = test
                self.best_by[name] = rec
                if name == "noisy" and self.corrects_with_best_val:
                    self._correction_weights = {k: v.detach().cpu().clone() for k, v in self.eval_model.state_dict().items()}

    @property
    def corrects_with_best_val(self) -> bool:
        return self.cfg.method == "adele" and self.cfg.adele.correction.weights == "best_val" and "noisy" in self.val_label_sets

    def correction_model(self) -> torch.nn.Module:
        """The network whose predictions correct the labels (``adele.correction.weights``): the current evaluation
        weights, or those of the best epoch so far on the noisy validation labels (before any validation: current)."""
        if not self.corrects_with_best_val or self._correction_weights is None:
            return self.eval_model
        if self._correction_model is None:
            self._correction_model = copy.deepcopy(self.eval_model)
        self._correction_model.load_state_dict(self._correction_weights)
        return self._correction_model

    def write_logs(self, row: dict) -> None:
        if not self.is_main:
            return
        files.write_history(self.run_dir, self.history)
        if self.memorization.records:
            files.write_memorization(self.run_dir, self.memorization.records)
        tb = self._tensorboard()
        if tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and v is not None and k != "epoch":
                    tb.add_scalar(k, v, row["epoch"])
            tb.flush()

    def _tensorboard(self):
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter  # optional at run time

                self._tb = SummaryWriter(str(files.tensorboard_dir(self.run_dir)))
            except Exception:  # noqa: BLE001 - tensorboard is optional at run time
                self._tb = False
        return self._tb or None

    def finish(self) -> dict:
        results: dict[str, Any] = {"method": self.cfg.method, "epochs": self.epoch, "classes": self.classes, "best_val": self.best}
        last: dict[str, Any] = {"epoch": self.epoch}
        for name in ("val", "test"):
            split = getattr(self.data, name)
            if split is not None:
                last[name] = results[name] = self.evaluate(split)
        results["last_epoch"] = last
        if self.stopped_early is not None:
            results["stopped_early"] = self.stopped_early
        if self.data.train.clean is not None:
            results["train_label_quality"] = label_agreement(self.data.train.labels, self.data.train.clean, self.num_classes, self.ignore_index, self.classes)
        summary = self.method.summary()
        if summary is not None:
            results["adele"] = summary
        if self.quality is not None:
            results["label_quality"] = self.quality.summary(self.classes)
        best_model: list[torch.nn.Module] = []  # the best epoch's weights in a model, built once for its test and val

        def best_weights_model() -> torch.nn.Module:
            if not best_model:
                best_model.append(self.weights_model(self._best_weights))
            return best_model[0]

        best = self.best_checkpoint_scores(results, best_weights_model)
        if best is not None:
            results["best_checkpoint"] = best
        for name, rec in self.best_by.items():
            results[f"best_checkpoint_{name}_val"] = rec
        ship_best = self.cfg.train.model_weights == "best_val" and best is not None
        results["model"] = {"weights": "best_val", "epoch": best["epoch"]} if ship_best else {"weights": "last", "epoch": self.epoch}
        weights = self.eval_model.state_dict()
        if ship_best and best["epoch"] != self.epoch:
            # model.pt = best.pt: the val and test scores at the top of metrics.json are those of the weights shipped
            weights = self._best_weights
            if "test" in best:
                results["test"] = best["test"]
            if self.data.val is not None:
                results["val"] = self.evaluate(self.data.val, model=best_weights_model())
        if self.is_main:
            if self.quality is not None:
                self.quality.save(self.run_dir, self.classes)
            files.write_metrics(self.run_dir, results)
            files.save_model(self.run_dir, self.model_payload(weights))
            if weights is self._best_weights:  # the last epoch's weights stay at hand (`--checkpoint last`)
                files.save_last(self.run_dir, self.model_payload(self.eval_model.state_dict()))
            else:
                files.last_path(self.run_dir).unlink(missing_ok=True)
        if self._tb:
            self._tb.close()
        return results


    def best_checkpoint_scores(self, results: dict, best_model: Optional[Callable[[], torch.nn.Module]] = None) -> Optional[dict]:
        """The best validation epoch's test scores (best.pt), beside the last epoch's in ``results``; None without validation.
        ``best_model`` gives a model holding the best epoch's weights (default: a new copy)."""
        if self._best_weights is None or self.best["epoch"] <= 0:
            return None
        out = {"epoch": self.best["epoch"], "val_mean_dice": self.best["val_mean_dice"]}
        if self.data.test is None:
            return out
        if self.best["epoch"] == self.epoch:
            out["test"] = results["test"]
            return out
        model = best_model() if best_model is not None else self.weights_model(self._best_weights)
        out["test"] = self.evaluate(self.data.test, model=model)
        return out

    def weights_model(self, weights: dict) -> torch.nn.Module:
        """A copy of the evaluation model holding ``weights`` (e.g. those of best.pt)."""
        model = copy.deepcopy(self.eval_model)
        model.load_state_dict(weights)
        return model


def validation_label_sets(val: Optional[PreparedSplit], noise: Optional[str], val_labels: str) -> dict[str, list[np.ndarray]]:
    """The validation labels a checkpoint could be selected on: ``noisy`` (with ``data.noise``, the noise drawn on the
    val labels; without it, the labels as given: a user's own masks) and ``clean`` (the labels as given under
    ``data.noise``, or the split's ``labels_clean``). Empty without a validation split."""
    if val is None:
        return {}
    if noise:
        noisy = val.original if val_labels == "noisy" else val.noisy
        clean = val.clean if val_labels == "noisy" else val.original
    else:
        noisy, clean = val.original, val.clean
    return {k: v for k, v in (("noisy", noisy), ("clean", clean)) if v is not None}


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB), for the long-run memory check."""
    try:
        import resource  # POSIX only

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    except (ImportError, OSError):  # pragma: no cover - non-POSIX
        return float("nan")
