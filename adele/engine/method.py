"""The training method inside the loop: :class:`Baseline`, and ADELE (detection -> correction rounds -> consistency loss).

The pure rules live in :mod:`adele.core`; this module schedules them, runs
the eval-mode prediction pass that feeds the compact prediction store, keeps
the corrected labels in the run folder (``labels/round_XXX.npz``) and records
everything needed to explain and resume what happened.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..run import files
from ..run.records import ChangeScores, RoundRecord
from ..config import Config
from ..core import (
    ChangePrecision,
    MemorizationDetector,
    OnsetRule,
    PredictionAreas,
    PredictionStore,
    change_precision,
    class_change_counts,
    area_guard,
    class_areas,
    class_thresholds,
    confidence_histogram,
    correct_labels,
    correct_labels_voc,
    multiscale_loss,
    prediction_areas,
    total_loss,
)
from ..core import RoundSchedule
from ..data.dataset import PreparedSplit
from ..losses import soft_dice_loss, supervised_loss
from ..metrics import confusion_matrix, foreground_mean, present_in_truth, scores_from_confusion
from ..probabilities import multiscale_probs
from .distributed import DistInfo, all_reduce_sum, rank_batches, steps_per_epoch


def round_line(epoch: int, round_no: int, info: dict) -> str:
    """The terminal line of a correction round (``info``: the round's record); its precision "n/a" when it changed no pixel."""
    msg = f"epoch {epoch}: correction round {round_no} changed {info['pixels_changed']} pixels"
    if "precision" in info:
        p = info["precision"]
        prec = "n/a (no pixel changed)" if not info["pixels_changed"] else "-" if p is None else f"{p:.3f}"
        msg += f", precision {prec}, label Dice vs clean {info['agreement_before']:.3f} -> {info['agreement_after']:.3f}"
    return msg


class Baseline:
    """The plain method: the supervised loss, nothing between batches or epochs.

    The trainer drives every method through these calls: :meth:`loss` per step,
    :meth:`after_batch` with the step's predictions, :meth:`after_epoch` with the
    epoch's training confusion; plus ``state_dict``/``load_state_dict`` and ``summary``.
    """

    #: the epoch row has a ``consistency`` column (mean of ``loss()["consistency"]``)
    tracks_consistency = False

    def __init__(self, cfg: Config, ignore_index: int):
        self.cfg = cfg
        self.ignore_index = ignore_index

    def loss(self, net: torch.nn.Module, img: torch.Tensor, lab: torch.Tensor, step: int = 0) -> dict:
        """``{"total": loss, "logits": logits at scale 1}`` (plus ``"consistency"`` when the method has one)."""
        logits = net(img)
        return {"total": supervised_loss(logits, lab, self.cfg.train.loss, self.ignore_index), "logits": logits}

    def after_batch(self, epoch: int, step: int, idx: torch.Tensor, logits: torch.Tensor, batch_cm: torch.Tensor) -> None:
        """After the optimizer step: the batch's detached logits and its (C, C) confusion against the current labels."""

    def after_epoch(self, epoch: int, train_cm: np.ndarray, net: torch.nn.Module, device: torch.device, dist: DistInfo) -> dict:
        """End of the training part of an epoch; returns columns for the epoch's history row."""
        return {}

    def state_dict(self) -> Optional[dict]:
        return None

    def load_state_dict(self, state: dict) -> None:
        pass

    def summary(self) -> Optional[dict]:
        """What ``metrics.json`` reports about the method (None: nothing)."""
        return None


def build_detector(cfg: Config, num_classes: int, dt: float = 1.0, min_points: Optional[int] = None) -> MemorizationDetector:
    """The run's memorization detector (``adele.detection``); ``min_points`` raises the points a fit needs."""
    settings = cfg.adele.detection.fit_settings()
    if min_points is not None:
        settings["min_points"] = max(settings["min_points"], min_points)
    return MemorizationDetector(num_classes, cfg.onset_horizon(), OnsetRule(**settings), dt=dt)


class AdeleState(Baseline):
    """Everything ADELE adds to a run, with ``state_dict`` for checkpoints.

    Its schedule, in the trainer's three calls: :meth:`loss` (the multi-scale term on every
    ``consistency.every_steps``-th step), :meth:`after_batch` (softmax kept for
    ``correction.predictions: train``; an IoU point every ``detection.every_steps`` steps),
    :meth:`after_epoch` (the memorization decision, then a correction round in the epoch a class
    is first flagged and every ``correction.every`` epochs after).
    """

    def __init__(self, cfg: Config, num_classes: int, ignore_index: int, run_dir: Path, train: PreparedSplit, classes: list[str],
                 log: Callable[[str], None] = print, dist: Optional[DistInfo] = None):
        super().__init__(cfg, ignore_index)
        self.dist = dist or DistInfo()
        self.a = cfg.adele
        self.tracks_consistency = self.a.consistency.enabled
        self.num_classes = num_classes
        self.run_dir = Path(run_dir)
        self.train = train
        self.classes = classes
        self.log = log
        det = self.a.detection
        per_epoch = steps_per_epoch(len(train), cfg.train.batch_size, self.dist.world_size, cfg.train.steps_per_epoch)
        #: epochs between two IoU points: 1, or every_steps / steps per epoch (official VOC: 100 / 1058)
        self.check_dt = 1.0 if det.every_steps is None else det.every_steps / per_epoch
        self.detector = build_detector(cfg, num_classes, dt=self.check_dt)
        #: which classes each round corrects (official SegTHOR ``new`` or VOC ``flagged``)
        self.schedule = RoundSchedule(self.detector.watch, self.a.correction.classes, self.a.correction.every)
        #: classes the area guard stopped: never corrected again (``correction.guard_area``)
        self.stopped: set[int] = set()
        self.round = 0
        self._checks: list[dict] = []  # IoU points of the current epoch when checked every K steps
        self._window: Optional[torch.Tensor] = None  # (C, C) confusion of the steps since the last check
        self.rounds: list[dict] = []
        self.epochs_log: list[dict] = []
        self._store: Optional[PredictionStore] = None

    # ------------------------------------------------------------------ loss

    def loss(self, net: torch.nn.Module, img: torch.Tensor, lab: torch.Tensor, step: int = 0) -> dict:
        """ADELE's training loss: CE at every scale + lambda * consistency, over the number of scales.

        On steps that skip the multi-scale term (``consistency.every_steps``) it is plain CE at scale 1;
        without consistency (``adele.consistency.enabled: false``) it is the baseline's loss.
        """
        con = self.a.consistency
        if not con.enabled:
            return super().loss(net, img, lab, step)
        if step % con.every_steps != 0:
            logits = net(img).float()
            ce = supervised_loss(logits, lab, self.cfg.train.loss, self.ignore_index)
            return {"total": ce, "ce": ce, "consistency": torch.zeros((), device=img.device), "logits": logits}
        scales = tuple(con.scales)
        logits_list = net(img, scales=scales, out_size=tuple(lab.shape[-2:]))
        logits_list = [lg.float() for lg in logits_list]
        out = multiscale_loss(logits_list, lab, ignore_index=self.ignore_index, lam=con.lam, rho=con.rho, mask=con.mask,
                              normalize=con.normalize, temperature=self.a.consistency_temperature(), form=con.form)
        if self.cfg.train.loss == "ce_dice":  # the supervised term at every scale, as the CE
            dice = sum(soft_dice_loss(lg, lab, self.ignore_index) for lg in logits_list)
            out["ce"] = out["ce"] + dice
            out["total"] = total_loss(out["ce"], out["consistency"], con.lam, len(logits_list), con.form)
        out["logits"] = logits_list[scales.index(1.0) if 1.0 in scales else 0]
        return out

    @cached_property
    def noisy_area(self) -> np.ndarray:
        """(C,) pixels of each class in the original noisy training labels (the area guard's reference)."""
        return class_areas(self.train.original, self.num_classes)

    # ------------------------------------------------------------------ store

    def ensure_store(self, dist: DistInfo) -> PredictionStore:
        """Open the run's prediction store, creating it on rank 0 first (collective call)."""
        if self._store is None:
            d = files.store_dir(self.run_dir)
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
        probs = (logits.float() / self.a.correction_temperature()).softmax(1).cpu()
        self.store.write_batch(idx.tolist(), probs)

    @torch.no_grad()
    def predict_train_set(self, net: torch.nn.Module, device: torch.device, dist: DistInfo) -> None:
        """Eval-mode pass over this rank's share of the training images into the store."""
        c = self.a.correction
        self.ensure_store(dist)
        model = getattr(net, "module", net)
        for chunk in rank_batches(self.train.shapes, self.cfg.train.batch_size, dist):
            images = torch.stack([self.train.images[i] for i in chunk]).to(device)
            probs = multiscale_probs(model, images, c.scales, c.hflip, self.a.correction_temperature(), c.average)
            self.store.write_batch(chunk, probs.cpu())
        self.store.flush()

    # ------------------------------------------------------------------ batch and epoch hooks

    def after_batch(self, epoch: int, step: int, idx: torch.Tensor, logits: torch.Tensor, batch_cm: torch.Tensor) -> None:
        """Keep the training softmax (``correction.predictions: train``); every ``detection.every_steps`` steps, one IoU point."""
        self.record_train_predictions(idx, logits)
        k = self.a.detection.every_steps
        if k:
            self._window = batch_cm.clone() if self._window is None else self._window + batch_cm
            if (step + 1) % k == 0:
                self.record_check(epoch, all_reduce_sum(self._window, self.dist).cpu().numpy(), step=step + 1)
                self._window = None

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
            # the training predictions' area / the current labels' area per class (< 1: under-segmented)
            "train_area_ratio": [None if not n else round(float(p / n), 4) for p, n in zip(cm.sum(0), cm.sum(1))],
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

        Which classes a round corrects, and when: :class:`adele.core.schedule.RoundSchedule`
        (``correction.classes``: official SegTHOR ``new`` re-checks each class before it is corrected
        again; ``flagged`` takes the detector's permanent flags).
        """
        self._window = None  # steps since the last check do not carry over to the next epoch
        rec = self.detect(epoch, train_cm)
        results = self.detector.last_results
        row = {"flagged": int(self.detector.flagged.sum())}
        corr = self.a.correction
        if corr.classes == "new":
            to_correct = self.schedule.step(epoch, lambda c: self.detector.recheck(epoch, c))
        else:
            to_correct = self.schedule.step(epoch, lambda c: results[c].flagged)
        to_correct = [k for k in to_correct if k not in self.stopped]
        if corr.enabled and to_correct:
            info = self.correction_round(epoch, net, device, dist, to_correct)
            rec["correction"] = info
            row["correction_round"] = info["round"]
            row["pixels_changed"] = info["pixels_changed"]
            if info.get("agreement_after") is not None:
                row["label_agreement"] = info["agreement_after"]
        if dist.rank == 0:
            files.write_adele_log(self.run_dir, self.epochs_log)
        return row

    def correction_round(self, epoch: int, net: torch.nn.Module, device: torch.device, dist: DistInfo, classes: list[int]) -> dict:
        """Correct the training labels of ``classes`` (the schedule's choice) from the model's predictions: the rule
        (:meth:`apply_rule`), the round's record (:meth:`round_record`), then the new labels kept (:meth:`keep_round`)."""
        self.ensure_store(dist)
        if self.a.correction.predictions == "eval":
            self.predict_train_set(net, device, dist)
        dist.barrier()
        outcome = self.apply_rule(epoch, classes)
        self.round += 1
        info = self.round_record(epoch, outcome).to_dict()
        self.keep_round(epoch, outcome.after, info, dist)
        return info

    def apply_rule(self, epoch: int, classes: list[int]) -> "_RoundOutcome":
        """The correction rule on every training image from the stored predictions: the classes the network has not
        learned yet left out (``min_learned``), per-class bars (``class_share``), the rule (``rule``), then the area
        guard, which rolls changes back and stops a class for good (``guard_area``). The current labels are not
        touched; the new ones are in the outcome."""
        c = self.a.correction
        # what the network predicts before the round: a pass of its own when the round needs it first (min_learned,
        # per-class thresholds), else counted during the correction pass (the same reads, the same labels)
        view = _NetworkAreas(self, with_histogram=c.class_share is not None)
        first = c.min_learned is not None or c.class_share is not None
        if first:
            for i in range(len(self.train)):
                view.add(i, *self.store.read(i))
        tau_class = None if view.hist is None else class_thresholds(view.hist, c.class_share, c.tau_bg, c.tau_fg)
        not_learned = self.not_learned(view.seen, classes)
        if not_learned:
            classes = [k for k in classes if k not in not_learned]
            self.log(f"epoch {epoch}: not corrected this round, the network predicts too little of them yet (its area / "
                     f"the labels' < {c.min_learned}): " + ", ".join(f"'{self.classes[k]}' {v:.2f}" for k, v in not_learned.items()))
        flagged = np.zeros(self.num_classes, dtype=bool)
        flagged[classes] = True
        # changes are counted against the labels the rule starts from: the current labels, or the
        # original noisy ones when every round restarts from them
        # (correct_labels returns new arrays; the current labels are replaced only after the stats)
        base = self.train.original if c.restart_from_original else self.train.labels
        # the class constraint (no class invented in an image) reads the labels being corrected, as officially
        after, held = [], 0
        if self.train.on_disk:  # the new labels on disk too (memory: one image), in the run folder beside the current ones
            after = self.train.original.copy_to(files.current_labels_path(self.run_dir, self.dist.rank).with_suffix(".next"))
        for i in range(len(self.train)):
            pred, conf = self.store.read(i)
            if not first:
                view.add(i, pred, conf)
            if c.rule == "voc":
                res = correct_labels_voc(base[i], pred, conf, flagged, c.tau_fg, self.ignore_index, tau_class=tau_class)
                held += int(res.held.sum())
            else:
                res = correct_labels(base[i], pred, conf, flagged, c.tau_bg, c.tau_fg, None, self.ignore_index, c.correct_ignore,
                                     tau_class)
            if isinstance(after, list):
                after.append(res.labels)
            else:
                after[i] = res.labels
        fired: dict[int, float] = {}
        erased: dict[int, int] = {}
        if c.guard_area is not None:
            after, fired, erased = area_guard(base, after, self.train.original, classes, c.guard_area)
            for k, ratio in fired.items():
                self.stopped.add(k)
                self.log(f"epoch {epoch}: guard: the round would leave '{self.classes[k]}' at {ratio:.2f} x its area in the noisy "
                         f"labels (allowed 1 +- {c.guard_area}); its changes are rolled back and it is not corrected again")
            if erased:
                self.log(f"epoch {epoch}: guard: changes rolled back where the round would leave a class under {c.guard_area} of "
                         "its area in an image's noisy labels: " + ", ".join(f"'{self.classes[k]}' in {n} image(s)" for k, n in erased.items()))
        return _RoundOutcome(classes, base, after, view, tau_class, not_learned, held, fired, erased)

    def round_record(self, epoch: int, r: "_RoundOutcome") -> RoundRecord:
        """What the round did, for adele_log.jsonl, metrics.json and the terminal (the rule's diagnostics): its
        classes, changes per class, areas against the noisy labels, what the network predicted before it, the bars,
        the guard; with clean labels known, the precision of its changes and the labels' Dice before and after."""
        c = self.a.correction
        # image by image (memory independent of the number of images; in memory and on disk alike)
        counts, changed, prec, before, after = _change_counts(r.base, r.after, self.train.labels, self.train.clean,
                                                              self.num_classes, self.ignore_index)
        scores = None
        if self.train.clean is not None:
            scores = ChangeScores(
                precision=None if np.isnan(prec.overall) else float(prec.overall),
                precision_per_class={n: (None if np.isnan(v) else float(v)) for n, v in zip(self.classes, prec.per_class)},
                agreement_before=before,
                agreement_after=after,
            )
        guarded = c.guard_area is not None
        return RoundRecord(
            round=self.round, epoch=epoch, flagged=[self.classes[k] for k in np.flatnonzero(self.detector.flagged)],
            corrected=[self.classes[k] for k in r.classes],
            pixels_changed=changed,
            changed_per_class={n: int(v) for n, v in zip(self.classes, counts)},
            # each foreground class's area after the round / its area in the original noisy labels (no clean labels
            # needed: < 1 = the corrections shrank it, the erasure the area guard watches for)
            area_vs_noisy={self.classes[k]: round(float(a / self.noisy_area[k]), 4)
                           for k, a in enumerate(class_areas(r.after, self.num_classes)) if k > 0 and self.noisy_area[k] > 0},
            **self.network_view(r.view.seen, r.view.clean),
            not_learned={self.classes[k]: round(v, 4) for k, v in r.not_learned.items()} if c.min_learned is not None else None,
            # each class's bar this round (probability; q >= 255 t + 0.5 in the store)
            thresholds=None if r.tau_class is None else {n: round(float(t), 4) for n, t in zip(self.classes, r.tau_class)},
            images_held=r.held if c.rule == "voc" else None,
            # per-image erasure rolled back; whole classes: area after / noisy area, rolled back (the official VOC
            # shrink guard leaves them unchanged)
            guard_images={self.classes[k]: n for k, n in r.erased.items()} if guarded else None,
            guard={self.classes[k]: round(v, 4) for k, v in r.fired.items()} if guarded else None,
            scores=scores,
        )

    def keep_round(self, epoch: int, after: list[np.ndarray], info: dict, dist: DistInfo) -> None:
        """The round's labels become the training labels, saved as labels/round_NNN.npz (rank 0), and its record is
        kept (``rounds``) and logged."""
        self.train.own_labels(files.current_labels_path(self.run_dir, dist.rank))
        for i, lab in enumerate(after):
            self.train.set_label(i, lab)
        if self.train.on_disk:  # the round's working copy (apply_rule) is written through: no second labels file left
            files.current_labels_path(self.run_dir, dist.rank).with_suffix(".next").unlink(missing_ok=True)
        if dist.rank == 0:
            files.save_labels(self.train.labels, files.label_round_path(self.run_dir, self.round))
        dist.barrier()
        self.rounds.append(info)
        self.log(round_line(epoch, self.round, info))

    def not_learned(self, seen: PredictionAreas, classes: list[int]) -> dict[int, float]:
        """{class: predicted area / labelled area} of the round's classes below ``correction.min_learned`` (none when off)."""
        m = self.a.correction.min_learned
        if m is None:
            return {}
        ratio = seen.ratio(seen.predicted)
        return {int(k): float(ratio[k]) for k in classes if k > 0 and seen.labelled[k] > 0 and ratio[k] < m}

    def network_view(self, seen: PredictionAreas, clean_area: Optional[np.ndarray]) -> dict:
        """Per foreground class, what the network predicted before the round, against the labels it trained on:
        its predicted area / their area (< 1: it under-segments the class), and the share of the class's pixels it
        calls background above tau_bg (what a round may hand to background); with clean labels known, the predicted
        area / the true area too."""
        fg = [k for k in range(1, self.num_classes) if seen.labelled[k] > 0]
        out = {
            "predicted_area_vs_labels": {self.classes[k]: round(float(seen.ratio(seen.predicted)[k]), 4) for k in fg},
            "confident_background_share": {self.classes[k]: round(float(seen.ratio(seen.to_background)[k]), 4) for k in fg},
        }
        if clean_area is not None:
            out["predicted_area_vs_clean"] = {self.classes[k]: round(float(seen.predicted[k] / clean_area[k]), 4)
                                              for k in range(1, self.num_classes) if clean_area[k] > 0}
        return out

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict:
        return {"detector": self.detector.state_dict(), "schedule": self.schedule.state_dict(), "stopped": sorted(self.stopped), "round": self.round,
                "rounds": self.rounds, "epochs_log": self.epochs_log}

    def load_state_dict(self, state: dict) -> None:
        self.detector.load_state_dict(state["detector"])
        self.stopped = {int(k) for k in state.get("stopped", [])}
        if "schedule" in state:
            self.schedule.load_state_dict(state["schedule"])
        else:  # a checkpoint from before the schedule was stored: flags as the detector kept them
            self.schedule.flagged = {int(c) for c in np.flatnonzero(self.detector.flagged)}
        self.round = int(state["round"])
        self.rounds = list(state["rounds"])
        self.epochs_log = list(state["epochs_log"])
        # the round's npz is the source of truth: labels on disk a killed round may have half rewritten are rebuilt
        self.train.own_labels(files.current_labels_path(self.run_dir, self.dist.rank))
        if self.round > 0:
            path = files.label_round_path(self.run_dir, self.round)
            labels = files.iter_labels(path) if self.train.on_disk else files.load_labels(path)
            for i, lab in enumerate(labels):
                self.train.set_label(i, lab)
        else:
            for i, lab in enumerate(self.train.original):
                self.train.set_label(i, lab)

    def summary(self) -> dict:
        return {
            "onsets": {self.classes[c]: e for c, e in self.detector.onsets.items()},
            "flag_epochs": {self.classes[c]: int(e) for c, e in self.detector.flag_epochs.items()},
            "rounds": self.rounds,
            # classes the area guard stopped, with the round that fired it
            "guard_stopped": {name: r["epoch"] for r in self.rounds for name in (r.get("guard") or {})},
        }


def _change_counts(base, after, current, clean, num_classes: int, ignore_index: int):
    """What :meth:`AdeleState.round_record` counts, accumulated image by image (the values the concatenated labels
    give): (changes per new class (C,), pixels changed, change precision or None, mean Dice of ``current`` and of
    ``after`` against ``clean`` or None)."""
    counts = np.zeros(num_classes, dtype=np.int64)
    changed_px = 0
    changed, correct = np.zeros(num_classes, dtype=np.int64), np.zeros(num_classes, dtype=np.int64)
    hits = moved = 0
    cm_before = cm_after = np.zeros((num_classes, num_classes), dtype=np.int64)
    for i in range(len(base)):
        old, new = base[i], after[i]
        counts += class_change_counts(old, new, num_classes)
        changed_px += int((old != new).sum())
        if clean is not None:
            cl = clean[i]
            p = change_precision(old, new, cl, num_classes, ignore_index)
            changed += p.changed
            correct += p.correct
            m = (old != new) & (cl != ignore_index)
            moved += int(m.sum())
            hits += int((new[m] == cl[m]).sum())
            cm_before = cm_before + confusion_matrix(current[i], cl, num_classes, ignore_index)
            cm_after = cm_after + confusion_matrix(new, cl, num_classes, ignore_index)
    if clean is None:
        return counts, changed_px, None, None, None
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(changed > 0, correct / np.maximum(changed, 1), np.nan)
    prec = ChangePrecision(per_class, hits / moved if moved else float("nan"), changed, correct)

    def dice(cm):
        return float(foreground_mean(scores_from_confusion(cm)["dice"], present_in_truth(cm)))

    return counts, changed_px, prec, dice(cm_before), dice(cm_after)


@dataclass
class _RoundOutcome:
    """What the rule of one round gives (:meth:`AdeleState.apply_rule`): the classes it corrected, the labels it
    started from and the new ones ((H, W) uint8 each), what the network predicted (``view``), the per-class bars
    (None when off), the classes left out as not learned, the images the VOC guard held, and the area guard's
    rollbacks (class -> area ratio; class -> images)."""

    classes: list[int]
    base: list[np.ndarray]
    after: list[np.ndarray]
    view: "_NetworkAreas"
    tau_class: Optional[np.ndarray]
    not_learned: dict[int, float]
    held: int
    fired: dict[int, float]
    erased: dict[int, int]


class _NetworkAreas:
    """What the network predicts on the training set (the store), per class, against the current labels (``seen``);
    the clean labels' area per class when they are known (``clean``); and, when asked, the (C, 256) confidence
    histogram of each predicted class (``hist``, for the per-class thresholds). Fed one image at a time."""

    def __init__(self, state: AdeleState, with_histogram: bool = False):
        self.state, C = state, state.num_classes
        self.seen = PredictionAreas(*(np.zeros(C, dtype=np.int64),) * 3)
        self.clean = np.zeros(C, dtype=np.int64) if state.train.clean is not None else None
        self.hist = np.zeros((C, 256), dtype=np.int64) if with_histogram else None

    def add(self, i: int, pred: np.ndarray, conf: np.ndarray) -> None:
        st = self.state
        C, tau, ign = st.num_classes, st.a.correction.tau_bg, st.ignore_index
        self.seen = self.seen + prediction_areas(st.train.labels[i], pred, conf, C, tau, ign)
        if self.clean is not None:
            self.clean += prediction_areas(st.train.clean[i], pred, conf, C, tau, ign).labelled
        if self.hist is not None:
            if st.a.correction.bars_over == "changes":  # rank only the round's candidate changes
                lab = st.train.labels[i]
                keep = (pred != lab) & (lab != ign)
                self.hist += confidence_histogram(pred[keep], conf[keep], C)
            else:
                self.hist += confidence_histogram(pred, conf, C)
