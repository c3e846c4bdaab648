"""Inference with a trained run: load ``RUN/model.pt``, predict masks for new images.

``adele predict --run RUN --input PATH --out DIR`` reads PNG, NPY or NIfTI
images (one file or a folder), preprocesses them exactly as in training
(:func:`adele.data.dataset.preprocess_image` with the run's ``data.size`` and
``data.normalize``), predicts, resizes the logits bilinearly back to the
input's height and width, and writes uint8 masks in the input's format and
geometry. NIfTI volumes are segmented slice by slice along their last axis and
written with the input's affine and header.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .config import Config, from_dict
from .data.dataset import PreparedSplit, preprocess_image
from .data.io import SUFFIXES, read_image, suffix_of, write_array
from .errors import AdeleError, ConfigError, DatasetError, RunError
from .models import build_model_from_config

#: test-time augmentation of ``--tta``: these scales, each also flipped horizontally
TTA_SCALES = (0.75, 1.0, 1.25)


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


def saved_config(data: dict | str | Path) -> Config:
    """The Config of a saved run (a dict, or a config.yaml path), tolerant of settings this version no longer has.

    Keys unknown to this version are dropped (they came from an older or newer
    version of adele); values are still validated.
    """
    import warnings

    import yaml

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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"--device {name}: use auto, cpu or cuda")
    return torch.device(name)


def load_run_model(run: str | Path, device: str = "auto", allow_checkpoint: bool = False, in_channels: Optional[int] = None) -> LoadedModel:
    """Load ``RUN/model.pt`` (or, with ``allow_checkpoint``, the newest checkpoint of an unfinished run)."""
    from .engine import checkpoint as ckpt

    run = Path(run)
    if not run.is_dir():
        raise RunError(f"{run}: run folder not found; pass the --out folder of `adele train`")
    path = run / "model.pt"
    if path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            cfg = saved_config(state["config"])
            classes, ignore, cin, origin = list(state["classes"]), int(state["ignore_index"]), int(state["in_channels"]), "model.pt"
        except AdeleError:
            raise
        except Exception as exc:  # noqa: BLE001 - any unreadable or foreign file
            raise RunError(f"{path}: unreadable ({type(exc).__name__}); re-run training or restore the file") from None
    elif allow_checkpoint and ckpt.list_checkpoints(run) and in_channels is not None and (run / "run.json").is_file():
        import json

        found = ckpt.load_latest(run)
        if found is None:
            raise RunError(f"{run}: no readable checkpoint and no model.pt")
        epoch, state = found
        info = json.loads((run / "run.json").read_text())
        cfg = saved_config(state["config"])
        classes, ignore, cin, origin = list(info["classes"]), int(info["ignore_index"]), int(in_channels), f"checkpoint epoch {epoch}"
    else:
        raise RunError(f"{path}: not found; the run has not finished (finish it with `adele train --out {run} --resume`)")
    model = build_model_from_config(cfg.model, cin, len(classes))
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError, AttributeError):
        raise RunError(f"{path}: weights do not match the model in the run's config; the run folder is inconsistent") from None
    dev = resolve_device(device)
    model.to(dev).eval()
    return LoadedModel(model, cfg, classes, ignore, cin, dev, origin)


@torch.no_grad()
def predict_probs(model: torch.nn.Module, images: torch.Tensor, out_size: Optional[Sequence[int]] = None, tta: bool = False) -> torch.Tensor:
    """Eval-mode softmax. images: (B, C_in, h, w) float32 -> (B, C, *out_size) float32 on the images' device.

    Without ``tta`` the logits are resized bilinearly to ``out_size`` before the
    softmax; with ``tta`` the softmax maps of scales 0.75, 1, 1.25, each with
    and without horizontal flip, are averaged at (h, w) and then resized.
    """
    from .engine.adele import predict_probs as multiscale_probs

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


@torch.no_grad()
def predict_split(lm: LoadedModel, split: PreparedSplit, batch_size: int = 8, tta: bool = False) -> np.ndarray:
    """Softmax of every image of a prepared split at its training size: (N, C, H, W) float32.

    All images of a split share one size when ``data.size`` is set; otherwise
    they are predicted one at a time and must still share a size to stack.
    """
    bs = batch_size if len(set(split.shapes)) == 1 else 1
    out = []
    for s in range(0, len(split), bs):
        x = torch.stack(split.images[s : s + bs]).to(lm.device)
        out.append(predict_probs(lm.model, x, tta=tta).cpu().numpy())
    return np.concatenate(out)


# ----------------------------------------------------------------------------- files


def _progress(iterable, total: int, desc: str):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return iterable
    disable = not sys.stderr.isatty() or bool(os.environ.get("ADELE_NO_PROGRESS"))
    return tqdm(iterable, total=total, desc=desc, disable=disable, dynamic_ncols=True)


def list_inputs(path: str | Path) -> tuple[Path, list[Path]]:
    """(folder, files): ``path`` itself, or the PNG/NPY/NIfTI files directly inside a folder (sorted)."""
    p = Path(path)
    if p.is_file():
        if not suffix_of(p):
            raise DatasetError(f"{p}: unsupported file type; use one of {', '.join(SUFFIXES)}")
        return p.parent, [p]
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".") and suffix_of(f))
        if not files:
            raise DatasetError(f"{p}: no {', '.join(SUFFIXES)} images in this folder")
        return p, files
    raise DatasetError(f"{p}: input not found; pass an image file or a folder of images")


def _read_nifti(path: Path):
    import nibabel as nib

    try:
        img = nib.load(str(path))
        arr = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a user-facing file problem
        raise DatasetError(f"{path}: cannot be decoded ({type(exc).__name__}); replace the file with a valid NIfTI image") from None
    if arr.ndim < 2 or (arr.ndim > 3 and any(s != 1 for s in arr.shape[3:])):
        raise DatasetError(f"{path}: NIfTI shape {arr.shape}; expected a 2D image or a 3D volume (slices along the last axis)")
    if not np.isfinite(arr).all():
        raise DatasetError(f"{path}: image contains NaN or inf values; clean or drop this image")
    return img, arr


def _to_model_input(img: np.ndarray, lm: LoadedModel, where: Path) -> torch.Tensor:
    """float32 (H, W) or (H, W, 3) -> (C_in, h, w) exactly as in training."""
    d = lm.config.data
    x = preprocess_image(img, d.size, d.normalize)
    if x.shape[0] != lm.in_channels:
        if x.shape[0] == 1 and lm.in_channels == 3:
            x = x.expand(3, -1, -1).contiguous()
        else:
            raise DatasetError(f"{where}: image has {x.shape[0]} channels, the model expects {lm.in_channels}; convert it (grayscale or RGB)")
    return x


def _segment_slices(lm: LoadedModel, slices: list[np.ndarray], where: Path, tta: bool, batch_size: int) -> np.ndarray:
    """list of (H, W[, 3]) images of one size -> (N, C, H, W) float32 probabilities at that size."""
    out_size = slices[0].shape[:2]
    probs = []
    for s in range(0, len(slices), batch_size):
        x = torch.stack([_to_model_input(im, lm, where) for im in slices[s : s + batch_size]]).to(lm.device)
        probs.append(predict_probs(lm.model, x, out_size, tta).cpu().numpy())
    return np.concatenate(probs)


def predict_files(run: str | Path, input_path: str | Path, out: str | Path, probs: bool = False, tta: bool = False,
                  device: str = "auto", batch_size: int = 16, log: Callable[[str], None] = print, overwrite: bool = False) -> list[Path]:
    """Segment one image file or a folder of them; returns the written mask paths.

    Masks: ``out/<input name>`` (uint8, same format, height, width; NIfTI with
    the input affine/header). With ``probs``: ``out/probs/<stem>.npy`` float16
    (C, H, W), or (C, H, W, S) for a NIfTI volume of S slices.
    """
    from .data.io import stem_of
    from .safety import check_output, staged_output

    out = Path(out)
    check_output(out, "predict", [run, input_path], overwrite)  # before the model is loaded
    lm = load_run_model(run, device)
    folder, files = list_inputs(input_path)
    names = [f"{stem_of(p)}.png" if p.suffix.lower() in (".jpg", ".jpeg") else p.name for p in files]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise DatasetError(f"{folder}: several inputs give the mask {clash[0]} (e.g. a .jpg and a .png of one name); rename one")
    with staged_output(out, "predict", [run, input_path], overwrite) as tmp:
        written = _predict_into(tmp, out, lm, files, probs, tta, batch_size)
    log(f"wrote {len(written)} mask(s) to {out} (model: {lm.origin}, device: {lm.device.type}{', TTA' if tta else ''})")
    return written


def _predict_into(tmp: Path, out: Path, lm: LoadedModel, files: list[Path], probs: bool, tta: bool, batch_size: int) -> list[Path]:
    from .data.io import stem_of

    written = []
    for path in _progress(files, len(files), "predict"):
        if suffix_of(path) in (".nii", ".nii.gz"):
            nii, arr = _read_nifti(path)
            vol = arr.reshape(arr.shape[0], arr.shape[1], -1)
            p = _segment_slices(lm, [vol[..., k] for k in range(vol.shape[-1])], path, tta, batch_size)  # (S, C, H, W)
            mask = p.argmax(1).astype(np.uint8).transpose(1, 2, 0).reshape(arr.shape)
            _write_nifti_mask(tmp / path.name, mask, nii)
            p = p.transpose(1, 2, 3, 0) if arr.ndim >= 3 else p[0]
        else:
            p = _segment_slices(lm, [read_image(path)], path, tta, batch_size)[0]
            mask = p.argmax(0).astype(np.uint8)
            # JPEG is lossy and would change class ids: JPEG inputs get PNG masks
            name = f"{stem_of(path)}.png" if path.suffix.lower() in (".jpg", ".jpeg") else path.name
            write_array(tmp / name, mask)
        if probs:
            write_array(tmp / "probs" / f"{stem_of(path)}.npy", p.astype(np.float16))
        written.append(out / path.name)
    return written


def _write_nifti_mask(path: Path, mask: np.ndarray, like) -> None:
    """uint8 mask with the affine and header of the NIfTI image ``like`` (no intensity scaling)."""
    from .engine.checkpoint import atomic_write_bytes

    img = type(like)(mask, like.affine, like.header.copy())
    img.set_data_dtype(np.uint8)
    img.header.set_slope_inter(1.0, 0.0)
    if path.name.lower().endswith(".gz"):
        import gzip

        data = gzip.compress(img.to_bytes(), mtime=0)
    else:
        data = img.to_bytes()
    atomic_write_bytes(data, path)
