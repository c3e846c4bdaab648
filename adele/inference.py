"""Inference with a trained run: load ``RUN/model.pt``, predict masks for new images.

``adele predict --run RUN --input PATH --out DIR`` reads PNG, NPY or NIfTI
images (one file or a folder), preprocesses them exactly as in training
(:func:`adele.data.dataset.preprocess_image` with the run's ``data.size`` and
``data.normalize``), predicts, resizes the logits bilinearly back to the
input's height and width, and writes uint8 masks in the input's format and
geometry. NIfTI volumes are segmented slice by slice along their last axis and
written with the input's affine and header. A run trained on a volume dataset
(``adele data prepare volumes``) repeats that dataset's steps on NIfTI volumes
(reorientation, intensity, slicing axis, in-plane size, neighbour slices) and
writes masks on each input's own voxel grid: see :func:`predict_volume`.
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
    (C, H, W), or (C, X, Y, Z) for a NIfTI volume.

    A run trained on a volume dataset (``RUN/volumes.json``) segments NIfTI
    volumes with the training data's steps (:func:`predict_volume`); nnU-Net
    channel files ``<case>_0000.nii.gz, <case>_0001...`` are one case, written
    as ``<case>.nii.gz``. Other runs cut NIfTI volumes along their last axis as
    stored (with a warning).
    """
    from .data.io import stem_of
    from .data.volumes import run_volume_spec
    from .safety import check_output, staged_output

    out = Path(out)
    check_output(out, "predict", [run, input_path], overwrite)  # before the model is loaded
    lm = load_run_model(run, device)
    spec = run_volume_spec(run, lm.config.data.path)
    folder, files = list_inputs(input_path)
    cases = group_volume_inputs(folder, files, spec, single=Path(input_path).is_file()) if spec is not None else {}
    in_case = {p for paths in cases.values() for p in paths}
    jobs: list[tuple[str, list[Path]]] = [(name, paths) for name, paths in cases.items()]
    jobs += [(f.name, [f]) for f in files if f not in in_case]
    jobs.sort(key=lambda j: str(j[1][0]))
    names = [f"{stem_of(p[0])}.png" if p[0].suffix.lower() in (".jpg", ".jpeg") else n for n, p in jobs]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise DatasetError(f"{folder}: several inputs give the mask {clash[0]} (e.g. a .jpg and a .png of one name); rename one")
    with staged_output(out, "predict", [run, input_path], overwrite) as tmp:
        written = _predict_into(tmp, out, lm, jobs, cases, spec, run, probs, tta, batch_size, log)
    log(f"wrote {len(written)} mask(s) to {out} (model: {lm.origin}, device: {lm.device.type}{', TTA' if tta else ''}"
        + (f"; volumes: {spec.axis} slices, {'+'.join(spec.modality)} intensities, back on each input's grid" if spec is not None and cases else "") + ")")
    return written


def _predict_into(tmp: Path, out: Path, lm: LoadedModel, jobs, cases, spec, run, probs: bool, tta: bool, batch_size: int,
                  log: Callable[[str], None]) -> list[Path]:
    """Write the masks of ``jobs`` into ``tmp`` (renamed to ``out`` by the caller); returns their final paths."""
    from .data.io import stem_of
    from .data.volumes import read_volume, volume_suffix

    written = []
    warned = False
    for name, paths in _progress(jobs, len(jobs), "predict"):
        path = paths[0]
        if name in cases:
            mask, p = predict_volume(lm, paths, spec, tta=tta, batch_size=batch_size, probs=probs)
            _write_nifti_mask(tmp / name, mask, read_volume(path, "image").image)
            stem = name[: len(name) - len(volume_suffix(name))]
        elif suffix_of(path) in (".nii", ".nii.gz"):
            nii, arr = _read_nifti(path)
            if arr.ndim >= 3 and arr.shape[2] > 1 and not warned:
                log(f"warning: {run} was not trained on a volume dataset: {path.name} is cut along its last axis as stored, without "
                    "reorientation or the training data's intensity steps; prepare volumes with `adele data prepare volumes` "
                    "to predict in the volume's own space")
                warned = True
            vol = arr.reshape(arr.shape[0], arr.shape[1], -1)
            p = _segment_slices(lm, [vol[..., k] for k in range(vol.shape[-1])], path, tta, batch_size)  # (S, C, H, W)
            mask = p.argmax(1).astype(np.uint8).transpose(1, 2, 0).reshape(arr.shape)
            _write_nifti_mask(tmp / path.name, mask, nii)
            p = p.transpose(1, 2, 3, 0) if arr.ndim >= 3 else p[0]
            stem = stem_of(path)
        else:
            p = _segment_slices(lm, [read_image(path)], path, tta, batch_size)[0]
            mask = p.argmax(0).astype(np.uint8)
            # JPEG is lossy and would change class ids: JPEG inputs get PNG masks
            name = f"{stem_of(path)}.png" if path.suffix.lower() in (".jpg", ".jpeg") else path.name
            write_array(tmp / name, mask)
            stem = stem_of(path)
        if probs:
            write_array(tmp / "probs" / f"{stem}.npy", p.astype(np.float16))
        written.append(out / name)
    return written


def group_volume_inputs(folder: Path, files: Sequence[Path], spec, single: bool = False) -> dict[str, list[Path]]:
    """NIfTI inputs of a volume run -> {output name: channel files}.

    ``<case>_NNNN.nii.gz`` files are channels of ``<case>`` (written as
    ``<case>.nii.gz``) for nnU-Net datasets and multi-channel runs; with
    ``single`` the other channels of the one given file are looked up beside it.
    """
    from .data.volumes import _CHANNEL_RE, volume_stem, volume_suffix

    channel_names = spec.layout == "nnunet" or spec.channels > 1
    groups: dict[str, dict[int, Path]] = {}
    out: dict[str, list[Path]] = {}
    for f in files:
        if not volume_suffix(f):
            continue
        m = _CHANNEL_RE.match(volume_stem(f)) if channel_names else None
        if m is None:
            out[f.name] = [f]
            continue
        groups.setdefault(m.group(1) + volume_suffix(f), {})[int(m.group(2))] = f
    for name, chans in groups.items():
        ending = volume_suffix(name)
        case = name[: len(name) - len(ending)]
        n = spec.channels
        if single:
            for c in range(n):
                sib = folder / f"{case}_{c:04d}{ending}"
                if c not in chans and sib.is_file():
                    chans[c] = sib
        v0 = chans.get(0)
        for c in range(n):
            if c not in chans:
                raise DatasetError(f"{folder / f'{case}_{c:04d}{ending}'}: missing channel file; the run was trained on {n} channel(s) "
                                   f"({', '.join(spec.channel_names)}): give all of {case}_0000{ending}..{case}_{n - 1:04d}{ending}")
        out[name] = [chans[c] for c in range(n)] if v0 is not None else []
    return out


def predict_volume(lm: LoadedModel, paths: Sequence[Path], spec, tta: bool = False, batch_size: int = 16,
                   probs: bool = False) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Segment one volume (one file per channel, or one 4D file) in its own space.

    Steps of the run's training data (:func:`adele.data.volumes.image_slices`:
    reorientation, intensity, slicing, context channels, in-plane resampling),
    then the run's ``data.size``/``data.normalize``; logits are resized
    bilinearly to the native in-plane size and the mask is put back on the
    input's voxel grid. Returns (mask (X, Y, Z) uint8 in the input's orientation,
    probabilities (C, X, Y, Z) float16 or None).
    """
    from .data.volumes import read_volume

    return segment_volume(lm, [read_volume(p, "image") for p in paths], spec, tta, batch_size, probs)


def segment_volume(lm: LoadedModel, chans, spec, tta: bool = False, batch_size: int = 16,
                   probs: bool = False) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """:func:`predict_volume` on volumes in memory (:class:`adele.data.volumes.Volume`, one per channel file)."""
    from .data.volumes import check_same_grid, image_slices, slices_to_volume

    for v in chans[1:]:
        check_same_grid(chans[0], v, "channel")
    where = chans[0].path
    sl = image_slices(chans, spec)
    if sl.slices.shape[-1] != lm.in_channels:
        raise DatasetError(f"{where}: gives {sl.slices.shape[-1]} input channel(s), the model expects {lm.in_channels}; "
                           "the run's volumes.json does not match its model")
    masks, prob_slices = [], []
    for s in range(0, len(sl.slices), batch_size):
        x = torch.stack([_to_model_input(im, lm, where) for im in sl.slices[s : s + batch_size]]).to(lm.device)
        p = predict_probs(lm.model, x, sl.native_hw, tta)
        masks.append(p.argmax(1).to(torch.uint8).cpu().numpy())
        if probs:
            prob_slices.append(p.cpu().numpy().astype(np.float16))
    mask = slices_to_volume(np.concatenate(masks), sl.ornt, spec.axis)
    pr = None
    if probs:
        pr = np.moveaxis(slices_to_volume(np.concatenate(prob_slices).transpose(0, 2, 3, 1), sl.ornt, spec.axis), -1, 0)
    return mask, pr


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
