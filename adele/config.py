"""Every default in one place: frozen dataclasses, loaded from YAML, validated once.

A config is built from (lowest to highest priority) the defaults below, a YAML
file (``--config FILE``) and ``key=value`` overrides from the command line
(``--set train.epochs=20 adele.correction.tau_fg=0.8``). Unknown keys, wrong
types and out-of-range values raise :class:`~adele.errors.ConfigError` naming
the field. The resolved config is saved as ``config.yaml`` in every run folder.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from .errors import ConfigError, RunError


#: settings that change how a run executes, not what it computes (a resume may change them; runs that differ only
#: in them and in their seeds are seeds of one setting)
EXECUTION_KEYS = ("train.device", "train.threads", "train.keep_last", "data.num_workers")


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
    #: user who has only noisy labels selects the checkpoint on noisy labels too). Test always uses the labels as given
    val_labels: Literal["clean", "noisy"] = "clean"


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
        """The keyword arguments of :func:`adele.core.detect_onset` and :class:`adele.core.MemorizationDetector` (but the horizon)."""
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
    #: sure as the interior the labels already agree on
    bars_over: Literal["predicted", "changes"] = "predicted"
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
            _set_dotted(data, key, value)
        return from_dict(data)


# ----------------------------------------------------------------------------- conversion


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [_to_plain(v) for v in obj]
    return obj


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """A nested config dict as ``{"train.epochs": 100, ...}`` (dotted keys, in order)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, dict) or part not in node or not isinstance(node[part], dict):
            raise ConfigError(f"unknown config key '{key}': '{'.'.join(parts[: i + 1])}' is not a section; run `adele config show` for all keys")
        node = node[part]
    if parts[-1] not in node:
        raise ConfigError(f"unknown config key '{key}'; valid keys here: {', '.join(node)}")
    node[parts[-1]] = value


def _convert(value: Any, tp: Any, name: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], name)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{name}: {value!r} is not one of {', '.join(map(str, args))}")
        return value
    if origin is tuple:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and args and args[-1] is Ellipsis:
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        if args and args[-1] is Ellipsis:
            return tuple(_convert(v, args[0], name) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{name}: expected {len(args)} values, got {list(value)}")
        return tuple(_convert(v, a, name) for v, a in zip(value, args))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a mapping of settings, got {value!r}")
        return _build(tp, value, name)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{name}: expected a string, got {value!r}")
    return value


def _build(cls: type, data: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            where = f"{prefix}.{key}" if prefix else key
            raise ConfigError(f"unknown config key '{where}'; valid keys: {', '.join(sorted(names))}")
    kwargs = {}
    for key, value in data.items():
        where = f"{prefix}.{key}" if prefix else key
        kwargs[key] = _convert(value, hints[key], where)
    return cls(**kwargs)


def from_dict(data: dict) -> Config:
    """Build and validate a :class:`Config` from a (possibly partial) nested dict."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config must be a mapping of sections, got {type(data).__name__}")
    cfg = _build(Config, data)
    validate(cfg)
    return cfg


def saved_config(data: dict | str | Path) -> Config:
    """The Config of a saved run (a dict, or a config.yaml path), tolerant of settings this version no longer has.

    Keys unknown to this version are dropped (they came from an older or newer
    version of adele) with a warning; values are still validated.
    """
    if not isinstance(data, dict):
        path = Path(data)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            raise RunError(f"{path}: unreadable run config; restore the run's config.yaml") from None
    dropped: list[str] = []

    def keep(saved: dict, ref: dict, prefix: str) -> dict:
        out = {}
        for k, v in saved.items():
            if k not in ref:
                dropped.append(prefix + k)
            elif isinstance(ref[k], dict) and isinstance(v, dict):
                out[k] = keep(v, ref[k], f"{prefix}{k}.")
            else:
                out[k] = v
        return out

    cfg = from_dict(keep(data if isinstance(data, dict) else {}, Config().to_dict(), ""))
    if dropped:
        warnings.warn(f"run config: ignored settings unknown to this version: {', '.join(dropped)}", stacklevel=2)
    return cfg


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.epochs=5"`` -> ``("train.epochs", 5)`` (value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like section.key=value, e.g. train.epochs=20")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


PRESETS_DIR = Path(__file__).with_name("presets")


def available_presets() -> list[str]:
    """Names of the presets installed with the package (``--config NAME``), e.g. ``colin27``."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def resolve_config_path(path: str | Path) -> Path:
    """A YAML file, or the name of an installed preset (``colin27``, ``segthor``, ``voc``, ...)."""
    p = Path(path)
    if p.is_file():
        return p
    if p.suffix == "" and len(p.parts) == 1 and (PRESETS_DIR / f"{p.name}.yaml").is_file():
        return PRESETS_DIR / f"{p.name}.yaml"
    raise ConfigError(f"config file {p} not found; pass an existing YAML file to --config "
                      f"or a preset name ({', '.join(available_presets())})")


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | list[str] | None = None,
                plan: Optional[dict[str, Any]] = None) -> Config:
    """Defaults <- ``plan`` (dotted keys, :mod:`adele.plan`) <- YAML file (or installed preset name) <- overrides;
    validated once."""
    data = Config().to_dict()
    for key, value in (plan or {}).items():
        _set_dotted(data, key, value)
    if path is not None:
        path = resolve_config_path(path)
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (UnicodeDecodeError, ValueError):
            raise ConfigError(f"{path}: not a text file; --config takes a YAML file (see `adele config show`)") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be read ({exc.strerror}); pass a readable YAML file") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{path}{where}: not valid YAML; fix the syntax") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of sections (data:, model:, train:, ...)")
        _merge(data, loaded, "")
    items = overrides.items() if isinstance(overrides, dict) else (parse_override(o) for o in overrides or [])
    for key, value in items:
        _set_dotted(data, key, value)
    return from_dict(data)


def _merge(base: dict, new: dict, prefix: str) -> None:
    for key, value in new.items():
        where = f"{prefix}{key}"
        if key not in base:
            raise ConfigError(f"unknown config key '{where}'; valid keys: {', '.join(base)}")
        if isinstance(base[key], dict) and isinstance(value, dict):
            _merge(base[key], value, where + ".")
        else:
            base[key] = value


#: seeds are 32-bit unsigned integers (torch, numpy and the sampler's ``seed * 100003 + epoch`` stay in range)
SEED_MAX = 2**32 - 1
#: largest image side (pixels) for data.size and data.crop
MAX_SIDE = 16384


def _numbers(obj: Any, prefix: str = "") -> list[tuple[str, float]]:
    """(dotted name, value) of every float setting, tuples included."""
    out: list[tuple[str, float]] = []
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(v):
            out += _numbers(v, name + ".")
        elif isinstance(v, float):
            out.append((name, v))
        elif isinstance(v, tuple):
            out += [(name, x) for x in v if isinstance(x, float)]
    return out


def _check(ok: bool, name: str, msg: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: {msg}")


def validate(cfg: Config) -> None:
    """Range checks that types alone cannot express."""
    for name, value in _numbers(cfg):
        _check(math.isfinite(value), name, f"must be a finite number, got {value}")
    _validate_training(cfg)
    _validate_data(cfg.data, cfg.adele.correction)
    _validate_adele(cfg.adele)


def _validate_training(cfg: Config) -> None:
    """train.*, optim.*, model.*, quality.* and the seeds."""
    check, t, o, m, q = _check, cfg.train, cfg.optim, cfg.model, cfg.quality
    for name, seed in (("train.seed", t.seed), ("data.noise_seed", cfg.data.noise_seed)):
        check(0 <= seed <= SEED_MAX, name, f"must be an integer in 0..{SEED_MAX}, got {seed}")
    check(t.threads is None or 1 <= t.threads <= 1024, "train.threads", f"must be in 1..1024 or null, got {t.threads}")
    check(t.keep_last >= 1, "train.keep_last", f"must be >= 1, got {t.keep_last}")
    check(1 <= t.epochs <= 1_000_000, "train.epochs", f"must be in 1..1000000, got {t.epochs}")
    check(t.batch_size >= 1, "train.batch_size", f"must be >= 1, got {t.batch_size}")
    check(t.steps_per_epoch is None or 1 <= t.steps_per_epoch <= 1_000_000, "train.steps_per_epoch",
          f"must be in 1..1000000 or null (one pass over the training images), got {t.steps_per_epoch}")
    check(t.eval_every >= 1, "train.eval_every", "must be >= 1")
    check(0.0 <= t.ema < 1.0, "train.ema", f"must be in [0, 1) (0 = off), got {t.ema}")
    check(o.lr > 0, "optim.lr", f"must be > 0, got {o.lr}")
    check(0 <= o.momentum < 1, "optim.momentum", f"must be in [0, 1), got {o.momentum}")
    check(o.weight_decay >= 0, "optim.weight_decay", "must be >= 0")
    check(o.poly_power > 0, "optim.poly_power", f"must be > 0, got {o.poly_power}")
    check(o.clip_grad >= 0, "optim.clip_grad", f"must be >= 0 (0 disables), got {o.clip_grad}")
    check(1 <= m.width <= 4096 and 1 <= m.depth <= 12, "model.width/depth", f"must be in 1..4096 / 1..12, got {m.width} / {m.depth}")
    check(bool(m.name.strip()), "model.name", "must not be empty")
    check(m.pretrained is None or bool(m.pretrained.strip()), "model.pretrained", "must be a file path or null")
    check(0 <= m.dropout < 1, "model.dropout", "must be in [0, 1)")
    check(m.output_stride in (8, 16, 32), "model.output_stride", f"must be 8, 16 or 32, got {m.output_stride}")
    check(0 < q.tau < 1, "quality.tau", f"must be in (0, 1), got {q.tau}")
    check(q.min_points >= 3, "quality.min_points", f"must be >= 3, got {q.min_points}")
    check(q.max_gb > 0, "quality.max_gb", f"must be > 0, got {q.max_gb}")


def _validate_data(d: DataConfig, cor: CorrectionConfig) -> None:
    check = _check
    check(bool(d.path.strip()), "data.path", "must name a dataset folder or 'colin27'")
    check(d.val_labels == "clean" or bool(d.noise), "data.val_labels",
          "'noisy' applies data.noise to the val labels, so it needs data.noise (a folder's own val labels are used as given: set 'clean')")
    for name, size in (("data.size", d.size), ("data.crop", d.crop)):
        check(size is None or all(s <= MAX_SIDE for s in size), name, f"each side must be <= {MAX_SIDE}, got {list(size or ())}")
    if d.size is not None:
        check(all(s >= 8 for s in d.size), "data.size", f"each side must be >= 8, got {list(d.size)}")
    if d.crop is not None:
        check(all(s >= 8 for s in d.crop), "data.crop", "each side must be >= 8")
    if d.scale_range is not None:
        check(0 < d.scale_range[0] <= d.scale_range[1], "data.scale_range", "must be [low, high] with 0 < low <= high")
        check(d.scale_range[1] <= 8, "data.scale_range", f"high must be <= 8, got {d.scale_range[1]}")
    check(d.num_workers >= 0, "data.num_workers", "must be >= 0")
    augmented = [n for n, v in (("data.hflip", d.hflip), ("data.scale_range", d.scale_range), ("data.crop", d.crop)) if v]
    check(not (cor.predictions == "train" and augmented), "adele.correction.predictions",
          f"'train' stores the softmax of augmented training batches, which is not aligned with the stored labels "
          f"when {', '.join(augmented)} is set; use 'eval' (a clean pass) or turn the augmentation off")


def _validate_adele(a: AdeleConfig) -> None:
    check, det, cor, con = _check, a.detection, a.correction, a.consistency
    check(0 < det.r < 1, "adele.detection.r", f"must be in (0, 1), got {det.r}")
    check(det.min_points >= 3, "adele.detection.min_points", "must be >= 3")
    check(det.every_steps is None or det.every_steps >= 1, "adele.detection.every_steps", "must be >= 1 or null")
    check(det.horizon is None or det.horizon >= 2, "adele.detection.horizon", f"must be >= 2 epochs or null, got {det.horizon}")
    check(det.flag_offset >= 0, "adele.detection.flag_offset", f"must be >= 0, got {det.flag_offset}")
    check(det.trim_flat is None or 0 <= det.trim_flat <= 1, "adele.detection.trim_flat", f"must be in [0, 1] or null, got {det.trim_flat}")
    check(0 <= det.min_peak_iou <= 1, "adele.detection.min_peak_iou", f"must be in [0, 1], got {det.min_peak_iou}")
    check(0 <= det.min_rise <= 1, "adele.detection.min_rise", f"must be in [0, 1], got {det.min_rise}")
    check(cor.every >= 1, "adele.correction.every", "must be >= 1")
    for name in ("tau_bg", "tau_fg"):
        tau = getattr(cor, name)
        check(0.5 <= tau < 1, f"adele.correction.{name}", f"must be in [0.5, 1), got {tau}")
    check(cor.temperature is None or cor.temperature > 0, "adele.correction.temperature", "must be > 0 or null (the official logit scale)")
    check(con.temperature is None or con.temperature > 0, "adele.consistency.temperature", "must be > 0 or null (1 / number of scales, official)")
    check(not (cor.restart_from_original and cor.classes == "new"), "adele.correction.restart_from_original",
          "restarting every round from the original labels needs adele.correction.classes=flagged (a round with "
          "classes=new corrects only the newly flagged classes and would undo the others' corrections); "
          "set one of the two")
    check(cor.guard_area is None or cor.guard_area > 0, "adele.correction.guard_area", f"must be > 0 (a fraction of the area) or null, got {cor.guard_area}")
    check(cor.min_learned is None or 0 < cor.min_learned <= 1, "adele.correction.min_learned",
          f"must be in (0, 1] (a fraction of the labelled area) or null, got {cor.min_learned}")
    check(cor.class_share is None or 0 < cor.class_share <= 1, "adele.correction.class_share",
          f"must be in (0, 1] (a share of each class's predicted pixels) or null, got {cor.class_share}")
    check(cor.rule != "voc" or cor.tau_bg == cor.tau_fg, "adele.correction.tau_bg",
          f"rule 'voc' has one threshold for every class (tau_fg); set tau_bg to it too, got {cor.tau_bg} and {cor.tau_fg}")
    check(len(cor.scales) >= 1 and all(0 < s <= 8 for s in cor.scales), "adele.correction.scales", "must be numbers in (0, 8]")
    check(len(con.scales) >= 1 and all(0 < s <= 8 for s in con.scales), "adele.consistency.scales", "must be numbers in (0, 8]")
    check(con.lam >= 0, "adele.consistency.lam", "must be >= 0")
    check(con.every_steps >= 1, "adele.consistency.every_steps", "must be >= 1")
    check(0 <= con.rho <= 1, "adele.consistency.rho", "must be in [0, 1]")
