"""SegTHOR (thoracic organs at risk in CT) -> the generic dataset format.

Input: the challenge's training layout ::

    RAW/Patient_01/Patient_01.nii.gz    CT volume in Hounsfield units, (X, Y, Z)
    RAW/Patient_01/GT.nii.gz            labels: 0 background, 1 esophagus, 2 heart, 3 trachea, 4 aorta
    ...
    RAW/Patient_40/...

Output (``adele data prepare segthor RAW OUT``)::

    OUT/dataset.json                       classes background, esophagus, heart, trachea, aorta
    OUT/{train,val,test}/images/Patient_01_z042.png    16-bit PNG, CT window mapped to [0, 1]
    OUT/{train,val,test}/labels/Patient_01_z042.png    uint8 class ids
    OUT/prepare.json                       patients per split, window, size, slice counts

Each axial slice is reoriented to the closest canonical (RAS) frame and shown
radiologically (anterior up, patient's right on the left), clipped to the CT
window (default -1000..1000 HU), scaled to [0, 1] and resized to size x size
(image bilinear, label nearest). By default only slices with foreground are
kept, as in the paper. Images are 16-bit PNGs: lossless, a quarter of the
size of float NPY, and read back as float32 in [0, 1] (resolution 2000/65535
HU for the default window). Training then z-scores each slice
(``data.normalize: zscore``), which is what the official code did on raw HU.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DatasetError
from ..safety import staged_output
from .folder import SPLITS, write_dataset_json
from .io import write_array

SEGTHOR_CLASSES = ("background", "esophagus", "heart", "trachea", "aorta")

#: default CT window in Hounsfield units (lung air to dense bone; contrast in soft tissue is kept)
DEFAULT_WINDOW = (-1000.0, 1000.0)

_P = "Patient_{:02d}".format

#: The patient split of the ADELE paper (official repository README), with one fix:
#: the README lists Patient_27 in both validation and test. It is kept in test only,
#: so validation has 4 patients and no patient is evaluated in two splits.
#: train 31, val 4, test 5 = the 40 patients of the challenge's training set.
SEGTHOR_SPLIT: dict[str, tuple[str, ...]] = {
    "train": tuple(_P(i) for i in (1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
                                   22, 24, 25, 26, 28, 30, 31, 33, 36, 38, 39, 40)),
    "val": tuple(_P(i) for i in (21, 23, 29, 37)),
    "test": tuple(_P(i) for i in (8, 27, 32, 34, 35)),
}

_PATIENT_RE = re.compile(r"^Patient_\d+$")


def find_patients(raw: Path) -> dict[str, tuple[Path, Path]]:
    """``{patient: (ct path, gt path)}`` for every ``RAW/Patient_XX`` folder; a folder missing a file is an error."""
    if not raw.is_dir():
        raise DatasetError(f"{raw}: folder not found; pass the folder that holds Patient_01/, Patient_02/, ...")
    out: dict[str, tuple[Path, Path]] = {}
    for d in sorted(raw.iterdir()):
        if not d.is_dir() or not _PATIENT_RE.match(d.name):
            continue
        ct = next((d / f"{d.name}{s}" for s in (".nii.gz", ".nii") if (d / f"{d.name}{s}").is_file()), None)
        gt = next((d / f"GT{s}" for s in (".nii.gz", ".nii") if (d / f"GT{s}").is_file()), None)
        if ct is None:
            raise DatasetError(f"{d / (d.name + '.nii.gz')}: missing; each patient folder needs its CT as {d.name}.nii.gz")
        if gt is None:
            raise DatasetError(f"{d / 'GT.nii.gz'}: missing; each patient folder needs its labels as GT.nii.gz (the challenge's test patients have none: leave them out)")
        out[d.name] = (ct, gt)
    if not out:
        raise DatasetError(f"{raw}: no Patient_XX folders; expected {raw}/Patient_01/Patient_01.nii.gz and {raw}/Patient_01/GT.nii.gz")
    return out


def load_split_file(path: str | Path) -> dict[str, tuple[str, ...]]:
    """Read ``{"train": [...], "val": [...], "test": [...]}`` (test optional); a patient may appear once."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{p}: split file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DatasetError(f"{p}: not valid JSON; expected {{\"train\": [\"Patient_01\", ...], \"val\": [...], \"test\": [...]}}") from None
    if not isinstance(data, dict) or not {"train", "val"} <= set(data) or not set(data) <= set(SPLITS):
        raise DatasetError(f"{p}: must be an object with keys train, val and optionally test")
    split: dict[str, tuple[str, ...]] = {}
    seen: dict[str, str] = {}
    for name, pats in data.items():
        if not isinstance(pats, list) or not all(isinstance(x, str) for x in pats):
            raise DatasetError(f"{p}: '{name}' must be a list of patient names like \"Patient_01\"")
        for x in pats:
            if x in seen:
                raise DatasetError(f"{p}: {x} is in both '{seen[x]}' and '{name}'; put each patient in one split")
            seen[x] = name
        split[name] = tuple(pats)
    return split


def fallback_split(patients: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Deterministic split of the patients present, in the paper's proportions (31/4/5 of 40).

    Sorted by name; the last ``max(1, round(n/8))`` go to test (n >= 3), the
    ``max(1, round(n/10))`` before them to val, the rest to train.
    """
    pats = sorted(patients)
    n = len(pats)
    if n < 2:
        raise DatasetError(f"need at least 2 patients for a train/val split, found {n}; add patients or pass --split-file")
    n_test = max(1, round(n / 8)) if n >= 3 else 0
    n_val = max(1, round(n / 10))
    n_train = n - n_val - n_test
    return {"train": tuple(pats[:n_train]), "val": tuple(pats[n_train : n_train + n_val]), "test": tuple(pats[n_train + n_val :])}


def _axial_slices(arr: np.ndarray) -> np.ndarray:
    """(X, Y, Z) in RAS -> (Z, H=Y, W=X) with anterior up and the patient's right on the left."""
    return np.ascontiguousarray(arr.transpose(2, 1, 0)[:, ::-1, ::-1])


def load_patient(ct_path: Path, gt_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """CT (Z, H, W) float32 in HU and labels (Z, H, W) uint8, both canonical axial slices."""
    import nibabel as nib

    vols = []
    for p in (ct_path, gt_path):
        try:
            img = nib.as_closest_canonical(nib.load(str(p)))
            arr = np.asarray(img.dataobj)
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a file problem
            raise DatasetError(f"{p}: cannot be read as NIfTI ({type(exc).__name__}); replace the file") from None
        arr = np.squeeze(arr)
        if arr.ndim != 3:
            raise DatasetError(f"{p}: has shape {arr.shape}; expected a 3D volume (X, Y, Z)")
        vols.append(arr)
    ct, gt = vols
    if ct.shape != gt.shape:
        raise DatasetError(f"{gt_path}: shape {gt.shape} differs from the CT {ct_path.name} {ct.shape}; labels must be on the CT grid")
    if not np.isfinite(ct).all():
        raise DatasetError(f"{ct_path}: contains NaN or inf values")
    gt_r = np.round(gt)
    if gt_r.min() < 0 or gt_r.max() >= len(SEGTHOR_CLASSES) or not np.array_equal(gt_r, gt):
        bad = np.unique(gt[(gt_r != gt) | (gt_r < 0) | (gt_r >= len(SEGTHOR_CLASSES))])[:5]
        raise DatasetError(f"{gt_path}: has label values {bad.tolist()}; SegTHOR labels are 0..4 (background, esophagus, heart, trachea, aorta)")
    return _axial_slices(ct.astype(np.float32)), _axial_slices(gt_r.astype(np.uint8))


def window_and_resize(ct: np.ndarray, gt: np.ndarray, size: int, window: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(Z, H, W) HU and labels -> (Z, size, size) uint16 image (window mapped to 0..65535) and uint8 labels."""
    lo, hi = float(window[0]), float(window[1])
    x = (np.clip(ct, lo, hi) - lo) / (hi - lo)
    t = torch.from_numpy(x)[:, None]
    lab = torch.from_numpy(gt)[:, None].float()
    if tuple(t.shape[-2:]) != (size, size):
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)  # like cv2 INTER_LINEAR
        lab = F.interpolate(lab, size=(size, size), mode="nearest-exact")
    img = np.round(t[:, 0].clamp(0, 1).numpy() * 65535).astype(np.uint16)
    return img, lab[:, 0].to(torch.uint8).numpy()


def prepare_segthor(
    raw_dir: str | Path,
    out_dir: str | Path,
    size: int = 256,
    window: Sequence[float] = DEFAULT_WINDOW,
    all_slices: bool = False,
    overwrite: bool = False,
    split: Optional[Mapping[str, Sequence[str]]] = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Write SegTHOR in the generic format (see module docstring); returns the ``prepare.json`` summary.

    ``split``: ``{"train": [...], "val": [...], "test": [...]}`` patient names
    (default :data:`SEGTHOR_SPLIT`). Patients of the split missing from
    ``raw_dir`` are skipped with a warning; if that leaves train or val empty,
    the patients present are split by :func:`fallback_split` instead.
    """
    raw, out = Path(raw_dir), Path(out_dir)
    if size < 8:
        raise DatasetError(f"--size must be >= 8, got {size}")
    if len(window) != 2 or not float(window[0]) < float(window[1]):
        raise DatasetError(f"--window must be two numbers LOW HIGH with LOW < HIGH (HU), got {list(window)}")
    patients = find_patients(raw)
    plan = {k: tuple(v) for k, v in (split or SEGTHOR_SPLIT).items()}
    listed = {p for v in plan.values() for p in v}
    missing = sorted(listed - set(patients))
    unlisted = sorted(set(patients) - listed)
    if missing:
        log(f"warning: {len(missing)} patient(s) of the split not in {raw}, skipped: {', '.join(missing)}")
    if unlisted:
        log(f"warning: {len(unlisted)} patient(s) in {raw} not in the split, skipped: {', '.join(unlisted)}")
    plan = {k: tuple(p for p in v if p in patients) for k, v in plan.items()}
    split_used = "given" if split is not None else "adele-paper"
    if not plan.get("train") or not plan.get("val"):
        plan = fallback_split(list(patients))
        split_used = "fallback"
        log(f"warning: the split leaves train or val empty for the patients present; using a deterministic split of them instead: "
            + "; ".join(f"{k}: {', '.join(v) or '-'}" for k, v in plan.items()))
    counts: dict[str, int] = {}
    with staged_output(out, "data prepare segthor", [raw], overwrite, flag="output folder") as tmp:
        write_dataset_json(tmp, "segthor", SEGTHOR_CLASSES, 255)
        for name in SPLITS:
            n = 0
            for pat in plan.get(name, ()):
                ct, gt = load_patient(*patients[pat])
                keep = np.arange(len(gt)) if all_slices else np.flatnonzero(gt.reshape(len(gt), -1).max(1) > 0)
                if keep.size == 0:
                    log(f"warning: {pat} has no labelled slice; skipped")
                    continue
                img, lab = window_and_resize(ct[keep], gt[keep], size, window)
                for j, z in enumerate(keep):
                    sid = f"{pat}_z{int(z):03d}"
                    write_array(tmp / name / "images" / f"{sid}.png", img[j])
                    write_array(tmp / name / "labels" / f"{sid}.png", lab[j])
                n += len(keep)
                log(f"{name}: {pat}: {len(keep)} slices")
            if n == 0 and name in ("train", "val"):
                raise DatasetError(f"{raw}: no {name} slice with foreground; check the GT files or pass --all-slices")
            if n:
                counts[name] = n
        summary = {
            "dataset": "segthor", "source": str(raw), "size": [size, size], "window_hu": [float(window[0]), float(window[1])],
            "slices": "all" if all_slices else "foreground", "split": split_used,
            "patients": {k: list(v) for k, v in plan.items()}, "skipped_patients": missing + unlisted, "images": counts,
            "image_format": "16-bit PNG, window mapped to [0, 1]",
        }
        (tmp / "prepare.json").write_text(json.dumps(summary, indent=1) + "\n")
    log(f"wrote {out}: " + ", ".join(f"{k} {v} slices" for k, v in counts.items()))
    return summary
