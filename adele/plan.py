"""Plan a training recipe from the dataset, as nnU-Net does: a fingerprint, then rules.

The fingerprint (:func:`fingerprint`) reads the training split once: number of images (and
volumes), median image shape and spacing, intensity statistics, the share of each class and
the typical object size of each class. :func:`plan` turns it into settings (dotted config keys)
by the rules below; ``adele plan DATA`` prints both, ``adele train`` without ``--config`` applies
them, and every preset is a plan plus its own overrides. Precedence: the defaults of
:mod:`adele.config`, then the plan, then a config file, then ``--set``.

Rules (per device; the numbers are :data:`BUDGETS`):

* input size: the images' own size when they all share one within ``pixels``; otherwise the
  median shape, scaled down (aspect kept, sides multiples of 8, at least 32) to at most
  ``pixels`` per image; scaled up again (never above the median shape, at most
  ``max_pixels``) until the smallest class's typical object covers ``min_object_px`` pixels;
* batch: ``batch`` images (on CUDA, as many as fit ``batch_pixels``, 2..``max_batch``), at most
  the number of training images;
* an epoch is a fixed number of optimizer steps (nnU-Net: 250): one pass over the training
  images, clipped to ``min_steps``..``max_steps``, so a small dataset still gets enough steps
  per epoch and a large one scales steps, not epochs;
* where that makes an epoch ``PASSES_PER_POINT`` passes over the data or more (a dataset of a few images), a
  training-IoU point for the memorization detection every pass (``adele.detection.every_steps``): such a
  dataset can be memorized within a few epochs, before a curve of one point per epoch has the points to fit;
* ``epochs`` epochs, the same for every dataset size: ADELE's epoch-counted parts (onset
  horizon, correction every 10 epochs, evaluation every epoch) mean the same on any dataset;
* Adam, a step-wise poly learning-rate schedule, cross-entropy + soft Dice (nnU-Net's loss),
  and an average of the weights (EMA 0.99 per step) for evaluation and correction.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np

from .config import Config, load_config
from .data import open_source
from .data.folder import Source
from .data.volumes import read_volume_index

#: planning budgets per device. CPU: 40 epochs of >= 50 steps of 2 images of ~4096 pixels, a width-16 U-Net (the
#: measured cost and accuracy: benchmarks/bench_plan.py, docs/benchmarks.md); CUDA: nnU-Net's 250 steps per epoch.
BUDGETS: dict[str, dict[str, Any]] = {
    "cpu": {"pixels": 4096, "max_pixels": 16384, "min_object_px": 24, "batch": 2, "min_steps": 50, "max_steps": 250,
            "epochs": 40, "width": 16, "lr": 2e-3},
    "cuda": {"pixels": 256 * 256, "max_pixels": 512 * 512, "min_object_px": 64, "batch_pixels": 12 * 256 * 256,
             "max_batch": 32, "min_steps": 250, "max_steps": 250, "epochs": 100, "width": 32, "lr": 1e-3},
}
#: an epoch of at least this many passes over the training images gets one IoU point per pass
PASSES_PER_POINT = 4
#: images read for the fingerprint (an even sample of the training split beyond that)
MAX_IMAGES = 2000


@dataclass(frozen=True)
class Fingerprint:
    """What the plan is derived from (``train`` split). Areas and shapes in pixels of the stored images."""

    dataset: str
    num_images: int
    num_volumes: Optional[int]
    median_shape: tuple[int, int]
    min_shape: tuple[int, int]
    max_shape: tuple[int, int]
    spacing: Optional[tuple[float, float]]
    channels: int
    intensity: dict[str, float]
    #: share of the labelled pixels per class (background included)
    class_share: dict[str, float]
    #: per class, median over the images that contain it of its area in that image (pixels)
    object_area: dict[str, float]
    sampled: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def fingerprint(source: Source, split: str = "train", max_images: int = MAX_IMAGES) -> Fingerprint:
    """Read ``split`` of ``source`` (at most ``max_images``, evenly spaced) and summarize it."""
    sp = source.splits[split]
    n = len(sp)
    if n == 0:
        raise ValueError(f"{source.name}: the {split} split is empty; nothing to plan from")
    picks = np.unique(np.linspace(0, n - 1, min(n, max_images)).round().astype(int))
    shapes, values, counts = [], [], np.zeros(256, dtype=np.int64)
    areas: dict[int, list[int]] = {c: [] for c in range(1, source.num_classes)}
    channels = 1
    rng = np.random.default_rng(0)
    for i in picks:
        img, lab = np.asarray(sp.image(int(i))), np.asarray(sp.label(int(i)))
        shapes.append(lab.shape[:2])
        channels = img.shape[2] if img.ndim == 3 else 1
        flat = img.reshape(-1, channels)[:, 0] if channels > 1 else img.ravel()
        values.append(rng.choice(flat, size=min(flat.size, 2000), replace=False))
        c = np.bincount(lab.ravel(), minlength=256)
        counts += c
        for k in areas:
            if c[k]:
                areas[k].append(int(c[k]))
    shapes_a = np.array(shapes)
    vals = np.concatenate(values).astype(np.float64)
    labelled = counts[: source.num_classes].sum()
    spacing, volumes = None, None
    if source.root is not None:
        idx = read_volume_index(source.root)
        if idx is not None:
            volumes = sum(1 for rec in idx["subjects"].values() if rec.get("split", split) == split) or len(idx["subjects"])
            sp_list = [rec["spacing"][:2] for rec in idx["subjects"].values() if "spacing" in rec]
            if sp_list:
                spacing = tuple(float(v) for v in np.median(np.array(sp_list, dtype=float), axis=0))
    names = source.classes
    return Fingerprint(
        dataset=source.name, num_images=n, num_volumes=volumes,
        median_shape=tuple(int(v) for v in np.median(shapes_a, axis=0).round()),
        min_shape=tuple(int(v) for v in shapes_a.min(axis=0)), max_shape=tuple(int(v) for v in shapes_a.max(axis=0)),
        spacing=spacing, channels=channels,
        intensity={"mean": float(vals.mean()), "std": float(vals.std()), "p00_5": float(np.percentile(vals, 0.5)),
                   "p99_5": float(np.percentile(vals, 99.5))},
        class_share={names[k]: float(counts[k] / max(labelled, 1)) for k in range(source.num_classes)},
        object_area={names[k]: float(np.median(v)) if v else 0.0 for k, v in areas.items()},
        sampled=len(picks),
    )


def _round8(x: float) -> int:
    return max(32, int(round(x / 8.0)) * 8)


def _size(shape: tuple[int, int], pixels: float) -> tuple[int, int]:
    h, w = shape
    s = min(1.0, math.sqrt(pixels / (h * w)))
    return _round8(h * s), _round8(w * s)


def plan(fp: Fingerprint, device: str = "cpu") -> dict[str, Any]:
    """Settings (dotted config keys -> values) for ``fp`` on ``device`` ('cpu' or 'cuda'); rules in the module doc."""
    if device not in BUDGETS:
        raise ValueError(f"device must be one of {sorted(BUDGETS)}, got {device!r}")
    b = BUDGETS[device]
    h, w = fp.median_shape
    size = _size((h, w), b["pixels"])
    if fp.min_shape == fp.max_shape and h * w <= b["pixels"]:
        size = (h, w)  # images of one shape within the budget (e.g. prepared volume slices): kept as they are
    areas = [a for a in fp.object_area.values() if a > 0]
    if areas:  # keep the smallest typical object visible: scale up, never above native, within max_pixels
        smallest = min(areas)
        scale2 = (size[0] * size[1]) / (h * w)
        if smallest * scale2 < b["min_object_px"]:
            need = b["min_object_px"] / smallest * h * w
            size = _size((h, w), min(need, b["max_pixels"]))
    if device == "cpu":
        batch = b["batch"]
    else:
        batch = int(max(2, min(b["max_batch"], 2 ** math.floor(math.log2(max(2, b["batch_pixels"] / (size[0] * size[1])))))))
    batch = min(batch, max(1, fp.num_images))  # never more images than the training set holds (the trainer clips too)
    one_pass = math.ceil(fp.num_images / batch)
    steps = int(min(b["max_steps"], max(b["min_steps"], one_pass)))
    per_pass = {"adele.detection.every_steps": one_pass} if steps >= PASSES_PER_POINT * one_pass else {}
    return {
        "data.size": [int(size[0]), int(size[1])],
        "train.batch_size": batch,
        "train.steps_per_epoch": steps,
        "train.epochs": b["epochs"],
        "train.eval_every": 1,
        "train.loss": "ce_dice",
        "train.ema": 0.99,
        "optim.name": "adam",
        "optim.lr": b["lr"],
        "optim.momentum": 0.0,
        "optim.weight_decay": 0.0,
        "optim.schedule": "poly",
        "optim.poly_power": 0.9,
        "model.width": b["width"],
        **per_pass,
    }


def plan_table(fp: Fingerprint, settings: dict[str, Any], device: str) -> str:
    """The fingerprint and the plan as one printable table."""
    rows = [("dataset", fp.dataset), ("training images", f"{fp.num_images}" + (f" ({fp.num_volumes} volumes)" if fp.num_volumes else "")),
            ("median shape (H, W)", f"{fp.median_shape[0]} x {fp.median_shape[1]} (min {fp.min_shape[0]} x {fp.min_shape[1]}, "
                                    f"max {fp.max_shape[0]} x {fp.max_shape[1]})"),
            ("spacing (mm)", "-" if fp.spacing is None else " x ".join(f"{v:g}" for v in fp.spacing)),
            ("channels", str(fp.channels)),
            ("intensity", f"mean {fp.intensity['mean']:.4g}, std {fp.intensity['std']:.4g}, "
                          f"0.5-99.5% {fp.intensity['p00_5']:.4g}..{fp.intensity['p99_5']:.4g}")]
    names = list(fp.class_share)
    rows += [(f"class {n}", f"{100 * fp.class_share[n]:.2f}% of pixels" + ("" if i == 0 else f", typical object {fp.object_area[n]:.0f} px"))
             for i, n in enumerate(names)]
    rows.append((f"plan ({device})", ""))
    rows += [(k, str(v)) for k, v in settings.items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def plan_device(cfg: Config) -> str:
    """'cuda' when the run will use CUDA (``train.device`` cuda, or auto with a CUDA device), else 'cpu'."""
    if cfg.train.device == "cuda":
        return "cuda"
    if cfg.train.device == "auto":
        import torch
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cpu"


def planned_config(path=None, overrides=None, device: Optional[str] = None) -> tuple[Config, dict]:
    """The config of a new run: defaults <- plan of its dataset <- ``path`` (file or preset) <- ``overrides``.

    Returns (config, record) with record = {"device", "fingerprint", "plan"} (written to the run as plan.json).
    """
    base = load_config(path, overrides)
    device = device or plan_device(base)
    fp = fingerprint(open_source(base.data.path))
    settings = plan(fp, device)
    cfg = load_config(path, overrides, plan=settings)
    return cfg, {"device": device, "fingerprint": fp.to_dict(), "plan": settings}
