"""What can be set, and each default: frozen dataclasses, one per section of a config (:class:`Config` holds them).

Each field's ``#:`` comment is its description on the settings page (docs/settings.md, written by
:mod:`adele.config_doc`). :func:`from_dict` builds a :class:`Config` from a nested dict through the checks of
:mod:`adele.config.validation`; where the dict comes from (YAML, presets, overrides, a saved run) is
:mod:`adele.config.loading`'s.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import yaml

from ..errors import ConfigError
from .validation import build, set_dotted, validate


#: settings that change how a run executes, not what it computes (a resume may change them; runs that differ only
#: in them and in their seeds are seeds of one setting)
EXECUTION_KEYS = ("train.device", "train.threads", "train.keep_last", "data.num_workers", "data.memory_budget_mb", "data.cache_dir")


def resolve_val_labels(val_labels: Optional[str], noise: Optional[str]) -> Literal["clean", "noisy"]:
    """``data.val_labels`` as set, or (null) ``noisy`` when ``data.noise`` draws synthetic noise, ``clean`` (the
    labels as given) otherwise."""
    if val_labels is not None:
        return val_labels  # type: ignore[return-value]
    return "noisy" if noise else "clean"


@dataclass(frozen=True)
class DataConfig:
    """The dataset, its preprocessing and augmentation, and synthetic noise on its labels."""

    #: dataset folder in the generic format, or ``colin27`` for the embedded data
    path: str = "colin27"
    #: resize every image/label to (H, W) before training; null keeps native size
    size: Optional[tuple[int, int]] = (112, 96)
    #: which labels to train on: ``noisy`` (train/labels) or ``clean`` (train/labels_clean)
    train_labels: Literal["noisy", "clean"] = "noisy"
    #: per-image intensity normalization
    normalize: Literal["zscore", "unit", "imagenet"] = "zscore"
    #: random horizontal flip during training
    hflip: bool = False
    #: random scale range for training crops (VOC-style); null disables
    scale_range: Optional[tuple[float, float]] = None
    #: random crop size (H, W) for training; null disables
    crop: Optional[tuple[int, int]] = None
    #: data-loading worker processes (0 = load in the training process)
    num_workers: int = 0
    #: noise recipe applied to the training labels at load time (see ``adele noise``); null = use labels as they are
    noise: Optional[str] = None
    #: seed of ``data.noise``: image i draws its noise from its own stream of (seed, i)
    noise_seed: int = 0
    #: labels that validation, and so the best checkpoint (best.pt), is scored against: ``clean`` (the val
    #: split's labels as given) or ``noisy`` (``data.noise`` applied to them as well, with the same seed: a
    #: user who has only noisy labels selects the checkpoint on noisy labels too). null = ``noisy`` under
    #: ``data.noise``, the labels as given otherwise. Test always uses the labels as given
    val_labels: Optional[Literal["clean", "noisy"]] = None
    #: MB the prepared splits (float32 images, labels) may take in memory; a dataset whose prepared form is larger is
    #: written once to ``data.cache_dir`` and read from there image by image (same values, memory independent of the
    #: dataset's size); 0 = always on disk
    memory_budget_mb: float = 1024.0
    #: folder of the prepared on-disk splits (reused while the dataset and the settings that shape them are
    #: unchanged); null = the user's cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``) / adele / prepared
    cache_dir: Optional[str] = None

    def validation_labels(self) -> Literal["clean", "noisy"]:
        """``val_labels`` resolved (:func:`resolve_val_labels`)."""
        return resolve_val_labels(self.val_labels, self.noise)


@dataclass(frozen=True)
class ModelConfig:
    """The network (``adele train --help`` lists the registered models)."""

    #: model from the registry: ``unet`` (the paper's 2D U-Net), ``deeplab`` (dilated ResNet + ASPP),
    #: ``monai_unet``, ``monai_segresnet`` (MONAI, an optional extra), or one registered from Python
    name: str = "unet"
    #: channels of the first U-Net level (doubles at each level)
    width: int = 16
    #: number of poolings of the U-Net (level k has width * 2**k channels)
    depth: int = 4
    #: dropout probability (U-Net: the deepest decoder block; ``deeplab``: ASPP); 0 = off
    dropout: float = 0.0
    #: U-Net normalization layers: ``batch`` (the paper), ``group`` (batch-size independent: identical
    #: results for any split of a batch across processes) or ``instance``
    norm: Literal["batch", "group", "instance"] = "batch"
    #: optional path to pretrained weights (a state dict) loaded before training; for ``deeplab`` also an
    #: ImageNet ResNet state dict with torchvision key names (backbone only)
    pretrained: Optional[str] = None
    #: ``deeplab`` only: resnet18, resnet34, resnet50 or resnet101
    backbone: str = "resnet50"
    #: ``deeplab`` only: 8 (layer3+layer4 dilated, the DeepLab setting), 16 or 32
    output_stride: int = 8


@dataclass(frozen=True)
class OptimConfig:
    """The optimizer and its learning-rate schedule."""

    #: optimizer: ``sgd``, ``adam`` or ``adamw``
    name: Literal["sgd", "adam", "adamw"] = "sgd"
    #: learning rate (the start of the schedule)
    lr: float = 0.01
    #: SGD momentum (``adam`` and ``adamw`` ignore it)
    momentum: float = 0.99
    #: weight decay (L2 for ``sgd`` and ``adam``, decoupled for ``adamw``)
    weight_decay: float = 0.0
    #: Nesterov momentum (``sgd`` with momentum > 0 only)
    nesterov: bool = False
    #: learning rate over the optimizer steps of the run: ``constant``, ``poly`` (lr * (1 - step / total) **
    #: poly_power) or ``cosine``
    schedule: Literal["constant", "poly", "cosine"] = "constant"
    #: exponent of the ``poly`` schedule
    poly_power: float = 0.9
    #: gradient clipping by global norm; 0 disables
    clip_grad: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """The training loop: length, loss, batch, device, evaluation and checkpoints."""

    #: number of epochs; every epoch-counted setting (``train.eval_every``, ``adele.correction.every``, the
    #: onset horizon) counts these epochs
    epochs: int = 100
    #: optimizer steps in one epoch (nnU-Net: 250); null = one pass over the training images. With a number,
    #: each epoch draws that many batches (every image once before any image twice)
    steps_per_epoch: Optional[int] = None
    #: supervised loss: ``ce`` (cross-entropy, the paper), ``ce_dice`` (cross-entropy + soft Dice) or ``gce``
    #: (generalized cross-entropy, q = 0.7, a noise-robust loss to compare with)
    loss: Literal["ce", "ce_dice", "gce"] = "ce"
    #: images per optimizer step and per process (with torchrun, N processes see N x batch_size images a step)
    batch_size: int = 5
    #: seed of initialization, sampling and augmentation
    seed: int = 0
    #: ``auto`` = CUDA when available, else the CPU
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: mixed precision (CUDA only)
    amp: bool = False
    #: channels-last memory format for the model and its inputs (faster convolutions on some GPUs)
    channels_last: bool = False
    #: evaluate on val every N epochs (the last epoch is always evaluated)
    eval_every: int = 1
    #: keep only the last N epoch checkpoints to save disk (``best.pt`` and ``model.pt`` are kept besides)
    keep_last: int = 1
    #: the weights model.pt holds (what ``adele predict`` and the exports use; metrics.json ``test`` scores them):
    #: ``best_val`` = the best validation epoch on the validation labels (``data.val_labels``: noisy under ``data.noise``; best.pt),
    #: the last epoch where there is no validation split; ``last`` = the last epoch. Either way metrics.json keeps
    #: the last epoch's scores under ``last_epoch``
    model_weights: Literal["best_val", "last"] = "best_val"
    #: early stopping: end training once the validation score best.pt is chosen on (``data.val_labels``) has not
    #: improved for this many epochs (counted when validation runs, ``train.eval_every``); metrics.json
    #: ``stopped_early`` says where. null = train every epoch. The poly schedule still spans ``train.epochs``, and
    #: ADELE's later correction rounds are skipped with the epochs
    patience: Optional[int] = None
    #: CPU threads of torch in each process; null = torch's default. Results are deterministic for a given
    #: thread count, and another count changes the floating-point sums (and so the run) slightly
    threads: Optional[int] = None
    #: exponential moving average of the weights (decay per step, e.g. 0.99; 0 = off). When on, the
    #: averaged weights are used for validation/test, for ADELE's correction pass and in model.pt;
    #: training steps and the memorization curves use the live weights. The decay warms up as
    #: min(ema, (1 + n) / (10 + n)) over the first steps
    ema: float = 0.0


@dataclass(frozen=True)
class DetectionConfig:
    """Per-class memorization onset detection (ADELE section 1)."""

    #: relative derivative change threshold r
    r: float = 0.9
    #: trim leading epochs whose IoU rose by less than this (official: 0.1); null disables
    trim_flat: Optional[float] = 0.1
    #: training-IoU points a class needs (after the trim) before its curve is fitted
    min_points: int = 3
    #: do not flag a class whose best train IoU, or the fitted curve's last value, is below this (guards
    #: against flat, low curves); 0 = off, as the official code (with min_rise 0)
    min_peak_iou: float = 0.2
    #: do not flag a class whose IoU never rose by this much above its first value; 0 = off, as the official
    #: code (with min_peak_iou 0)
    min_rise: float = 0.1
    #: do not flag a decreasing curve (never above its first value by more than min_rise, ending below it);
    #: false = fit it like any other, as the official code
    refuse_decreasing: bool = True
    #: horizon of the onset computation in epochs (f' is evaluated at epochs 1..horizon-1);
    #: null = the planned number of epochs (official VOC: 16)
    horizon: Optional[int] = None
    #: record a training-IoU point every N training steps instead of once per epoch (long epochs;
    #: official VOC: 100). Points are placed in epoch units and the decision is still taken once
    #: per epoch; null = one point per epoch
    every_steps: Optional[int] = None
    #: a class is flagged once (completed epochs - flag_offset) >= onset; 1 = the official
    #: ``if_update(ious, epoch - 1)``, 0 flags one epoch earlier
    flag_offset: int = 1

    def fit_settings(self) -> dict:
        """The fields of :class:`adele.core.OnsetRule`, the rule that :func:`adele.core.detect_onset` and
        :class:`adele.core.MemorizationDetector` take: ``OnsetRule(**fit_settings())``."""
        return {"r": self.r, "min_points": self.min_points, "trim_flat": self.trim_flat, "min_peak_iou": self.min_peak_iou,
                "min_rise": self.min_rise, "refuse_decreasing": self.refuse_decreasing, "flag_offset": self.flag_offset}


@dataclass(frozen=True)
class CorrectionConfig:
    """Adaptive label correction (ADELE section 2)."""

    #: correct the labels at all (``--no-correction`` turns it off)
    enabled: bool = True
    #: correct again every N epochs after a class is flagged (official: 10)
    every: int = 10
    #: which classes a round corrects: ``new`` (official SegTHOR: in an epoch where a class is newly
    #: flagged only that class; corrected classes stay frozen and are re-checked, and every ``every``-th
    #: epoch each class that passes its check again is corrected) or ``flagged`` (official VOC: every
    #: class flagged so far, flags permanent) or ``once`` (each class corrected in one round only, the epoch it is
    #: first flagged, by the network of its early learning; never re-corrected). See adele.core.schedule
    classes: Literal["new", "flagged", "once"] = "new"
    #: the pixel rule: ``segthor`` (official SegTHOR: only background and corrected classes change, tau_bg /
    #: tau_fg) or ``voc`` (official VOC ``update_allclass``: any label may change, one threshold tau_fg, no
    #: class constraint in background-only images, and the shrink guard); see adele.core.correction
    rule: Literal["segthor", "voc"] = "segthor"
    #: confidence a pixel predicted as background needs to take that label
    tau_bg: float = 0.7
    #: confidence a pixel predicted as a foreground class needs to take that label
    tau_fg: float = 0.7
    #: ``eval``: clean pass in eval mode after the epoch; ``train``: reuse the softmax maps recorded during the epoch (official)
    predictions: Literal["eval", "train"] = "eval"
    #: input scales of the correction pass, whose predictions are averaged (``average``)
    scales: tuple[float, ...] = (1.0,)
    #: also average the horizontally flipped views in the correction pass
    hflip: bool = False
    #: the correction reads softmax(logits / temperature). null = the official logit scale: the official
    #: network is trained with its cross-entropy on logits / S (S = 3 consistency scales) and corrected from
    #: the softmax of its raw logits, i.e. S times ours, so 1 / S when the consistency term is on, 1 when off
    temperature: Optional[float] = None
    #: how the views (scales, flips) are combined: ``probs`` = mean of softmax(logits / T);
    #: ``logits`` = softmax(mean of logits / T), as the official VOC code does
    average: Literal["probs", "logits"] = "probs"
    #: start each round again from the original noisy labels instead of the current ones (official VOC
    #: ``--Reinit_dict``; needs ``classes: flagged``, or a round would undo the earlier rounds' classes)
    restart_from_original: bool = False
    #: let pixels labelled ``ignore_index`` be corrected too (default: they are never touched)
    correct_ignore: bool = False
    #: a guard that needs no clean labels: when a round leaves a corrected class's area (over the training set)
    #: more than this fraction away from its area in the original noisy labels, that class's changes in the round
    #: are rolled back and the class is not corrected again (logged in the round's ``guard``). Noise without a
    #: direction leaves a class's total area near the truth's, so a round that moves it by a quarter is more likely
    #: running away than recovering; null = off (as officially; biased annotators who always under-trace may need
    #: a wider bound)
    guard_area: Optional[float] = 0.25
    #: correct a class in a round only when the network, before the round, predicts at least this fraction of the
    #: class's labelled area over the training set: a class it has not learned yet (it calls the class background,
    #: confidently, before early learning) keeps its labels that round (logged in the round's ``not_learned``);
    #: null = off (as officially)
    min_learned: Optional[float] = None
    #: per-class thresholds, class-balanced (CBST, Zou et al. 2018): a pixel may take class k only when its
    #: confidence is among the top ``class_share`` of the pixels the network predicts as k over the training set
    #: (and above tau_bg / tau_fg); recorded per round in ``thresholds``. 0.5 is CBST's portion; null = one tau for
    #: every class, as officially
    class_share: Optional[float] = 0.5
    #: which pixels the per-class bars rank: ``predicted`` (every pixel the network predicts as k) or ``changes``
    #: (only the candidate changes: pixels predicted k whose current label differs and is not ignore), so that a
    #: round writes the top ``class_share`` of its own candidate changes to each class rather than only pixels as
    #: sure as the interior the labels already agree on (``changes``, the default, met the benchmark's rule against
    #: early stopping where ``predicted`` did not: docs/benchmarks.md)
    bars_over: Literal["predicted", "changes"] = "changes"
    #: the weights whose predictions correct the labels: ``current`` (the network after the epoch, officially) or
    #: ``best_val`` (those of the best validation epoch so far on the noisy validation labels, the checkpoint
    #: early stopping would keep: a network that had not yet memorized what it is asked to correct; the current
    #: weights without a validation split)
    weights: Literal["current", "best_val"] = "current"


@dataclass(frozen=True)
class ConsistencyConfig:
    """Multi-scale consistency regularization (ADELE section 3)."""

    #: add the multi-scale consistency term (``--no-consistency`` turns it off)
    enabled: bool = True
    #: input scales the batch is forwarded at (logits resized back to the label size)
    scales: tuple[float, ...] = (1.0, 0.7, 1.5)
    #: weight lambda of the consistency term
    lam: float = 1.0
    #: confidence (max of the mean prediction over the scales) above which the term applies (``mask``)
    rho: float = 0.8
    #: where the term applies: ``image`` (the paper: a whole image when any of its non-ignored pixels reaches
    #: rho), ``pixel`` (each pixel that reaches rho) or ``none`` (everywhere)
    mask: Literal["image", "pixel", "none"] = "image"
    #: the term (and rho) reads softmax(logits / temperature); null = 1 / number of scales, the official
    #: logit scale (see adele.core.consistency): the cross-entropy always reads the raw logits
    temperature: Optional[float] = None
    #: ``segthor``: (sum of CE + lam * consistency) / scales, CE over non-ignored pixels; ``voc`` (official
    #: VOC): sum of CE + lam * consistency, each CE averaged over all pixels, padding included
    form: Literal["segthor", "voc"] = "segthor"
    #: ``all`` = the masked sum over all B*H*W pixels (official ``torch.mean``); ``masked`` = over
    #: the pixels that are on only
    normalize: Literal["all", "masked"] = "all"
    #: apply the multi-scale term on every N-th training step only (1 = every step, as in the paper);
    #: other steps use plain cross-entropy at scale 1. The scales cost 1 + 0.49 + 2.25 forward/backward
    #: passes, so N = 5 keeps a step at about 1.5x a baseline step instead of 3.8x (benchmarks/bench_perf.py)
    every_steps: int = 5


@dataclass(frozen=True)
class AdeleConfig:
    """The method's three parts (used with ``method: adele``)."""

    detection: DetectionConfig = field(default_factory=DetectionConfig)
    correction: CorrectionConfig = field(default_factory=CorrectionConfig)
    consistency: ConsistencyConfig = field(default_factory=ConsistencyConfig)

    def consistency_temperature(self) -> float:
        """The consistency term's temperature: ``consistency.temperature``, or 1 / number of scales (official)."""
        con = self.consistency
        return con.temperature if con.temperature is not None else 1.0 / len(con.scales)

    def correction_temperature(self) -> float:
        """The correction's temperature: ``correction.temperature``, or the official logit scale
        (the consistency term's when it is on, 1 when off)."""
        if self.correction.temperature is not None:
            return self.correction.temperature
        return self.consistency_temperature() if self.consistency.enabled else 1.0


@dataclass(frozen=True)
class QualityConfig:
    """Label quality from the run's training dynamics (:mod:`adele.core.quality`): which masks to re-annotate."""

    #: keep each class's eval-mode training softmax at the epoch its memorization is detected (an
    #: eval-mode pass over the training images in those epochs and at the end; changes nothing in training)
    track: bool = True
    #: a pixel is suspect where those probabilities put another class than its label above tau (0.5: more
    #: likely than all other classes together; ADELE's correction uses 0.7, for a precise but shorter list)
    tau: float = 0.5
    #: training-IoU points a class needs before its flag can count here: the detector runs with
    #: ``max(adele.detection.min_points, quality.min_points)`` (the official 3 points flag classes whose
    #: curve is still rising, and their snapshot is then immature)
    min_points: int = 10
    #: tracking is skipped (with one line) when the probabilities would take more memory than this
    #: (1 byte per training pixel and class)
    max_gb: float = 2.0


@dataclass(frozen=True)
class Config:
    #: ``baseline`` (the supervised loss alone) or ``adele`` (the method: detection, correction, consistency)
    method: Literal["baseline", "adele"] = "baseline"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    adele: AdeleConfig = field(default_factory=AdeleConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)

    def onset_horizon(self) -> int:
        """Epochs of the onset computation: ``adele.detection.horizon``, else the planned ``train.epochs``."""
        return self.adele.detection.horizon or self.train.epochs

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replace(self, **overrides: Any) -> "Config":
        """Return a copy with dotted-key overrides applied, e.g. ``replace(**{"train.epochs": 3})``."""
        data = self.to_dict()
        for key, value in overrides.items():
            set_dotted(data, key, value)
        return from_dict(data)


def from_dict(data: dict) -> Config:
    """Build and validate a :class:`Config` from a (possibly partial) nested dict."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config must be a mapping of sections, got {type(data).__name__}")
    cfg = build(Config, data)
    validate(cfg)
    return cfg


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [_to_plain(v) for v in obj]
    return obj
