"""Inference on files: ``adele predict`` reads images and volumes from disk and writes masks beside their geometry.

(Loading a run's model and predicting on tensors in memory is :mod:`adele.probabilities`'s job; this module adds
the files: formats, grouping of channel files, volumes' native grids, staged output.)

``adele predict RUN --input PATH --out DIR`` reads PNG, NPY or NIfTI
images (one file or a folder), and NRRD/MetaImage volumes with SimpleITK
installed (``pip install 'adele[formats]'``), preprocesses them exactly as in training
(:func:`adele.data.dataset.preprocess_image` with the run's ``data.size`` and
``data.normalize``), predicts, resizes the logits bilinearly back to the
input's height and width, and writes uint8 masks in the input's format and
geometry. Volumes are segmented slice by slice along their last axis and
written with the input's affine and header. A run trained on a volume dataset
(``adele data prepare volumes``) repeats that dataset's steps on volumes
(reorientation, intensity, slicing axis, in-plane size, neighbour slices) and
writes masks on each input's own voxel grid, in the input's format: see :func:`predict_volume`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from .console import progress
from .data.dataset import preprocess_image
from .data.io import SUFFIXES, check_readable, read_image, stem_of, suffix_of, write_array
from .data.volumes import (_CHANNEL_RE, ITK_SUFFIXES, VOLUME_SUFFIXES, check_same_grid, image_slices, read_volume,
                           slices_to_volume, volume_stem, volume_suffix, write_volume_like)
from .errors import DatasetError, RunError
from .probabilities import LoadedModel, ensemble, predict_probs
from .run import RunFolder
from .safety import check_output, staged_output

# ----------------------------------------------------------------------------- files

#: what ``adele predict`` reads: 2D images and volumes
INPUT_SUFFIXES = tuple(dict.fromkeys(SUFFIXES + VOLUME_SUFFIXES))


def _is_input(path: Path) -> bool:
    return bool(suffix_of(path) or volume_suffix(path))


def list_inputs(path: str | Path) -> tuple[Path, list[Path]]:
    """(folder, files): ``path`` itself, or the image and volume files directly inside a folder (sorted)."""
    p = Path(path)
    if p.is_file():
        if not _is_input(p):
            raise DatasetError(f"{p}: unsupported file type; use one of {', '.join(INPUT_SUFFIXES)}")
        return p.parent, [p]
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".") and _is_input(f))
        if not files:
            raise DatasetError(f"{p}: no {', '.join(INPUT_SUFFIXES)} images in this folder")
        return p, files
    raise DatasetError(f"{p}: input not found; pass an image file or a folder of images")


def _read_nifti(path: Path):
    import nibabel as nib

    check_readable(path)
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


def _read_stored_volume(path: Path):
    """(header to write the mask like, float32 array as stored): a NIfTI 2D image or 3D volume, or a 3D NRRD/MetaImage volume."""
    if volume_suffix(path) not in ITK_SUFFIXES:
        return _read_nifti(path)
    v = read_volume(path, "image")
    if v.data.ndim > 3:
        raise DatasetError(f"{path}: shape {v.data.shape}; expected a 2D image or a 3D volume (slices along the last axis)")
    return v.image, v.data


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


def predict_files(run: str | Path | Sequence[str | Path], input_path: str | Path, out: str | Path, probs: bool = False, tta: bool = False,
                  device: str = "auto", batch_size: int = 16, log: Callable[[str], None] = print, overwrite: bool = False,
                  checkpoint: str = "model") -> list[Path]:
    """Segment one image file or a folder of them; returns the written mask paths.

    ``run``: a run folder, or several (the folds of a cross-validation): their probabilities are averaged
    (nnU-Net's ensembling, :class:`adele.probabilities.ProbabilityAverage`).
    ``checkpoint``: ``last`` (model.pt, the end of training) or ``best`` (best.pt, the best validation epoch).

    Masks: ``out/<input name>`` (uint8, same format, height, width; volumes
    (NIfTI, NRRD, MetaImage) with the input's grid and header). With ``probs``:
    ``out/probs/<stem>.npy`` float16 (C, H, W), or (C, X, Y, Z) for a volume.

    A run trained on a volume dataset (``RUN/volumes.json``) segments volumes
    with the training data's steps (:func:`predict_volume`); nnU-Net
    channel files ``<case>_0000.nii.gz, <case>_0001...`` are one case, written
    as ``<case>.nii.gz`` (or the files' own ending). Other runs cut volumes along
    their last axis as stored (with a warning).
    """
    out = Path(out)
    runs = [run] if isinstance(run, (str, Path)) else list(run)
    check_output(out, "predict", [*runs, input_path], overwrite)  # before the model is loaded
    folders = [RunFolder.open(r, model_only=True) for r in runs]
    lm = ensemble(runs, [f.model(device, checkpoint) for f in folders])
    spec = _one_volume_spec(folders)
    run = runs[0]
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
    with staged_output(out, "predict", [*runs, input_path], overwrite) as tmp:
        written = _predict_into(tmp, out, lm, jobs, cases, spec, run, probs, tta, batch_size, log)
    log(f"wrote {len(written)} mask(s) to {out} (model: {lm.origin}, device: {lm.device.type}{', TTA' if tta else ''}"
        + (f"; volumes: {spec.axis} slices, {'+'.join(spec.modality)} intensities, back on each input's grid" if spec is not None and cases else "") + ")")
    return written


def _one_volume_spec(runs: Sequence[RunFolder]):
    """The volume steps the runs were trained with (None: a 2D run); the runs of an ensemble must share them."""
    specs = [r.volume_spec for r in runs]
    for r, sp in zip(runs[1:], specs[1:]):
        if (sp is None) != (specs[0] is None) or (sp is not None and sp.to_dict() != specs[0].to_dict()):
            raise RunError(f"{r.path}: was trained on volumes prepared differently from {runs[0].path} (volumes.json differs); "
                           "an ensemble averages runs of one prepared dataset")
    return specs[0]


def _predict_into(tmp: Path, out: Path, lm: LoadedModel, jobs, cases, spec, run, probs: bool, tta: bool, batch_size: int,
                  log: Callable[[str], None]) -> list[Path]:
    """Write the masks of ``jobs`` into ``tmp`` (renamed to ``out`` by the caller); returns their final paths."""
    written = []
    warned = False
    for name, paths in progress(jobs, len(jobs), desc="predict"):
        path = paths[0]
        if name in cases:
            chans = [read_volume(c, "image") for c in paths]
            mask, p = segment_volume(lm, chans, spec, tta=tta, batch_size=batch_size, probs=probs)
            write_volume_like(tmp / name, mask, chans[0].image)
            stem = name[: len(name) - len(volume_suffix(name))]
        elif volume_suffix(path):
            header, arr = _read_stored_volume(path)
            if arr.ndim >= 3 and arr.shape[2] > 1 and not warned:
                log(f"warning: {run} was not trained on a volume dataset: {path.name} is cut along its last axis as stored, without "
                    "reorientation or the training data's intensity steps; prepare volumes with `adele data prepare volumes` "
                    "to predict in the volume's own space")
                warned = True
            vol = arr.reshape(arr.shape[0], arr.shape[1], -1)
            p = _segment_slices(lm, [vol[..., k] for k in range(vol.shape[-1])], path, tta, batch_size)  # (S, C, H, W)
            mask = p.argmax(1).astype(np.uint8).transpose(1, 2, 0).reshape(arr.shape)
            write_volume_like(tmp / path.name, mask, header)
            p = p.transpose(1, 2, 3, 0) if arr.ndim >= 3 else p[0]
            stem = volume_stem(path)
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
    """Volume inputs (NIfTI, NRRD, MetaImage) of a volume run -> {output name: channel files}.

    ``<case>_NNNN.nii.gz`` files are channels of ``<case>`` (written as
    ``<case>.nii.gz``; likewise for the other formats) for nnU-Net datasets and multi-channel runs; with
    ``single`` the other channels of the one given file are looked up beside it.
    """
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
    return segment_volume(lm, [read_volume(p, "image") for p in paths], spec, tta, batch_size, probs)


def segment_volume(lm: LoadedModel, chans, spec, tta: bool = False, batch_size: int = 16,
                   probs: bool = False) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """:func:`predict_volume` on volumes in memory (:class:`adele.data.volumes.Volume`, one per channel file)."""
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
