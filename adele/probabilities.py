"""Class probabilities from a model: the one home of device choice and multi-scale/flip views (a trained run's model is
loaded by :meth:`adele.run.RunFolder.model`).

Used by training (ADELE's eval-mode correction pass), inference on new files,
label export and reports alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .config import Config
from .core import multiscale_logits
from .data.dataset import PreparedSplit, batch_indices
from .errors import ConfigError, RunError

#: test-time augmentation of ``--tta``: these scales, each also flipped horizontally
TTA_SCALES = (0.75, 1.0, 1.25)


def resolve_device(name: str, setting: str = "--device") -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``; ``setting`` names the option in messages."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{setting} cuda: no CUDA device is available; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"{setting} {name}: use auto, cpu or cuda")
    return torch.device(name)


@torch.no_grad()
def multiscale_probs(model: torch.nn.Module, images: torch.Tensor, scales=(1.0,), hflip: bool = False,
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


@torch.no_grad()
def predict_probs(model: torch.nn.Module, images: torch.Tensor, out_size: Optional[Sequence[int]] = None, tta: bool = False) -> torch.Tensor:
    """Eval-mode softmax. images: (B, C_in, h, w) float32 -> (B, C, *out_size) float32 on the images' device.

    Without ``tta`` the logits are resized bilinearly to ``out_size`` before the
    softmax; with ``tta`` the softmax maps of scales 0.75, 1, 1.25, each with
    and without horizontal flip, are averaged at (h, w) (:func:`multiscale_probs`) and then resized.
    """
    out_size = tuple(images.shape[-2:]) if out_size is None else tuple(int(s) for s in out_size)
    model.eval()
    if tta:
        p = multiscale_probs(model, images, TTA_SCALES, hflip=True)
        if tuple(p.shape[-2:]) != out_size:
            p = F.interpolate(p, size=out_size, mode="bilinear", align_corners=False)
        return p
    logits = model(images).float()
    if tuple(logits.shape[-2:]) != out_size:
        logits = F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
    return logits.softmax(1)


@dataclass
class LoadedModel:
    """A trained model in eval mode, with what is needed to feed it."""

    model: torch.nn.Module
    config: Config
    classes: list[str]
    ignore_index: int
    in_channels: int
    device: torch.device
    origin: str  # "model.pt" or "checkpoint epoch N"

    @property
    def num_classes(self) -> int:
        return len(self.classes)


class ProbabilityAverage(torch.nn.Module):
    """Several trained models as one (nnU-Net's fold ensembling): the mean of their softmax maps.

    ``forward`` returns log(mean_k softmax(model_k(x))), so that a softmax of its output (what
    :func:`predict_probs` takes) is exactly the mean of the members' probabilities.
    """

    def __init__(self, members: Sequence[torch.nn.Module]):
        super().__init__()
        self.members = torch.nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.stack([m(x).float().softmax(1) for m in self.members]).mean(0)
        return p.clamp_min(torch.finfo(p.dtype).tiny).log()


def ensemble(runs: Sequence[str | Path], loaded: Sequence[LoadedModel]) -> LoadedModel:
    """The models of several runs (e.g. the folds of a cross-validation, ``loaded[i]`` that of ``runs[i]``) as one
    :class:`LoadedModel` that averages their probabilities. The runs must agree on what they predict and how they are
    fed: classes, input channels, ``data.size`` and ``data.normalize`` (the volume steps are checked by the caller).
    One run: that run's model."""
    if not loaded:
        raise ConfigError("RUN: name at least one run folder")
    if len(loaded) == 1:
        return loaded[0]
    first = loaded[0]
    for run, lm in zip(runs[1:], loaded[1:]):
        for what, a, b in (("classes", first.classes, lm.classes), ("input channels", first.in_channels, lm.in_channels),
                           ("data.size", first.config.data.size, lm.config.data.size),
                           ("data.normalize", first.config.data.normalize, lm.config.data.normalize)):
            if a != b:
                raise RunError(f"{run}: its {what} ({b}) differ from those of {runs[0]} ({a}); an ensemble averages runs trained "
                               "on the same classes and inputs (the folds of one prepared dataset)")
    model = ProbabilityAverage([lm.model for lm in loaded]).eval()
    return LoadedModel(model, first.config, first.classes, first.ignore_index, first.in_channels, first.device,
                       f"ensemble of {len(loaded)} runs ({first.origin})")


@torch.no_grad()
def predict_split(lm: LoadedModel, split: PreparedSplit, batch_size: int = 8, tta: bool = False) -> np.ndarray:
    """Softmax of every image of a prepared split at its training size: (N, C, H, W) float32.

    All images of a split share one size when ``data.size`` is set; otherwise
    they are predicted one at a time and must still share a size to stack.
    """
    out = []
    for chunk in batch_indices(split.shapes, batch_size):
        x = torch.stack([split.images[i] for i in chunk]).to(lm.device)
        out.append(predict_probs(lm.model, x, tta=tta).cpu().numpy())
    return np.concatenate(out)
