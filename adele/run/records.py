"""The records a run writes, typed: one epoch's row of history.csv (:class:`EpochRow`) and one correction round's
record (:class:`RoundRecord`: adele_log.jsonl's ``correction``, metrics.json's ``rounds``).

Training fills them; ``to_dict()`` gives the dict that the files and the checkpoints hold: keys in the files' order,
and a part that does not apply to the run (None here) leaves its keys out, so a column or key appears only in runs
that have it. Readers read those dicts back from the files (:mod:`adele.run.files`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Optional


@dataclass
class ValScores:
    """One evaluation of the validation split: mean Dice and IoU over the foreground classes (None: no class
    present), Dice per foreground class, and the mean Dice on each other label set of the split (``noisy``,
    ``clean``)."""

    mean_dice: Optional[float]
    mean_iou: Optional[float]
    dice: dict[str, Optional[float]]
    by_label_set: dict[str, Optional[float]] = field(default_factory=dict)


@dataclass
class EpochRow:
    """One epoch of training: history.csv's row.

    Columns, in order: ``epoch``, ``lr`` (the last step's), ``loss`` (mean over the epoch's batches),
    ``consistency`` (the multi-scale term's mean, when the method has one), ``train_mean_iou`` and
    ``train_iou/<class>`` (predictions against the labels trained on, every class), the method's own columns
    (``method``; ADELE: ``flagged``, ``correction_round``, ``pixels_changed``, ``label_agreement``), ``quality_s``
    (label-quality tracking's cost, when on), in evaluated epochs ``val_mean_dice``, ``val_mean_iou``,
    ``val_dice/<class>`` and ``val_<set>_mean_dice``, then ``time_s`` and ``peak_rss_mb``.
    """

    epoch: int
    lr: float
    loss: float
    train_mean_iou: Optional[float]
    train_iou: dict[str, Optional[float]]
    consistency: Optional[float] = None
    method: dict[str, Any] = field(default_factory=dict)
    quality_s: Optional[float] = None
    val: Optional[ValScores] = None
    time_s: Optional[float] = None
    peak_rss_mb: Optional[float] = None

    def to_dict(self) -> dict[str, Any]:
        """The row as history.csv and the checkpoint hold it (column -> value)."""
        row: dict[str, Any] = {"epoch": self.epoch, "lr": self.lr, "loss": self.loss}
        if self.consistency is not None:
            row["consistency"] = self.consistency
        row["train_mean_iou"] = self.train_mean_iou
        row.update({f"train_iou/{name}": v for name, v in self.train_iou.items()})
        row.update(self.method)
        if self.quality_s is not None:
            row["quality_s"] = self.quality_s
        if self.val is not None:
            row["val_mean_dice"] = self.val.mean_dice
            row["val_mean_iou"] = self.val.mean_iou
            row.update({f"val_dice/{name}": v for name, v in self.val.dice.items()})
            row.update({f"val_{name}_mean_dice": v for name, v in self.val.by_label_set.items()})
        row["time_s"] = self.time_s
        row["peak_rss_mb"] = self.peak_rss_mb
        return row


@dataclass
class ChangeScores:
    """A round's changes scored with the clean labels (synthetic noise): the share of changed pixels that are now
    right (None: no pixel changed), the same per class, and the labels' mean Dice with the clean ones before and
    after the round."""

    precision: Optional[float]
    precision_per_class: dict[str, Optional[float]]
    agreement_before: float
    agreement_after: float


@dataclass
class RoundRecord:
    """One correction round (class names as keys throughout).

    Always: its number and epoch, the classes flagged so far and those it corrected, the pixels it changed (in
    all, per class), each foreground class's area after it / in the noisy labels, and what the network predicted
    before it against the labels trained on (predicted area / labelled area; share called background above
    tau_bg). When they apply: the predicted area / the clean area (clean labels known), the classes left out as not
    learned (``min_learned``), each class's bar (``class_share``), the images the VOC guard held (rule ``voc``), the
    area guard's per-image and whole-class rollbacks (``guard_area``), and the changes' scores (:class:`ChangeScores`).
    """

    round: int
    epoch: int
    flagged: list[str]
    corrected: list[str]
    pixels_changed: int
    changed_per_class: dict[str, int]
    area_vs_noisy: dict[str, float]
    predicted_area_vs_labels: dict[str, float]
    confident_background_share: dict[str, float]
    predicted_area_vs_clean: Optional[dict[str, float]] = None
    not_learned: Optional[dict[str, float]] = None
    thresholds: Optional[dict[str, float]] = None
    images_held: Optional[int] = None
    guard_images: Optional[dict[str, int]] = None
    guard: Optional[dict[str, float]] = None
    scores: Optional[ChangeScores] = None

    def to_dict(self) -> dict[str, Any]:
        """The record as adele_log.jsonl, metrics.json and the checkpoint hold it."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "scores" and getattr(self, f.name) is not None}
        if self.scores is not None:
            out.update({f.name: getattr(self.scores, f.name) for f in fields(self.scores)})
        return out
