"""A nested config dict checked against the settings: its keys, each value converted to its field's type, and the
range checks that types alone cannot express; every mistake a :class:`~adele.errors.ConfigError` that names the field.

Generic over the dataclasses of :mod:`adele.config.settings` (it takes them as arguments and reads their type
hints), so that module builds and validates its :class:`~adele.config.settings.Config` with no import circle.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal

from ..errors import ConfigError


def set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, dict) or part not in node or not isinstance(node[part], dict):
            raise ConfigError(f"unknown config key '{key}': '{'.'.join(parts[: i + 1])}' is not a section; run `adele config show` for all keys")
        node = node[part]
    if parts[-1] not in node:
        raise ConfigError(f"unknown config key '{key}'; valid keys here: {', '.join(node)}")
    node[parts[-1]] = value


# ----------------------------------------------------------------------------- conversion


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
        return build(tp, value, name)
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


def build(cls: type, data: dict, prefix: str = "") -> Any:
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


# ----------------------------------------------------------------------------- ranges


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
    check(t.patience is None or (isinstance(t.patience, int) and t.patience >= 1), "train.patience", "must be an integer >= 1 or null")
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
    check(d.val_labels != "noisy" or bool(d.noise), "data.val_labels",
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
    check(d.memory_budget_mb >= 0, "data.memory_budget_mb", f"must be >= 0 (0 = always on disk), got {d.memory_budget_mb}")
    check(d.cache_dir is None or bool(d.cache_dir.strip()), "data.cache_dir", "must be a folder path or null")
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
