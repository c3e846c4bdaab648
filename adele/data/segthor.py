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
    OUT/volumes.json, OUT/native/          geometry per patient, to go back to the CT grid (see adele.data.volumes)

Each axial slice is reoriented to the closest canonical (RAS) frame and shown
radiologically (anterior up, patient's right on the left), clipped to the CT
window (default -1000..1000 HU), scaled to [0, 1] and resized to size x size
(image bilinear, label nearest). By default only slices with foreground are
kept, as in the paper. Images are 16-bit PNGs: lossless, a quarter of the
size of float NPY, and read back as float32 in [0, 1] (resolution 2000/65535
HU for the default window). Training then z-scores each slice
(``data.normalize: zscore``), which is what the official code did on raw HU.

Only the file layout, the split and the label check are SegTHOR's: the volumes
go through :func:`adele.data.volumes.write_volume_dataset`, as for any volume
dataset, so ``adele predict`` and ``adele export-labels`` work in the CT's space.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

from ..errors import DatasetError
from .volumes import Case, VolumeSpec, fallback_split, write_volume_dataset
from .volumes import load_split_file as _load_split_file

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
    return _load_split_file(path, example="Patient_01")


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
        log("warning: the split leaves train or val empty for the patients present; using a deterministic split of them instead: "
            + "; ".join(f"{k}: {', '.join(v) or '-'}" for k, v in plan.items()))
    spec = VolumeSpec(axis="axial", size=(size, size), modality=("ct",), window=(float(window[0]), float(window[1])),
                      channel_names=("CT",), storage="png16", layout="segthor")
    cases = {k: [Case(p, (patients[p][0],), patients[p][1]) for p in v] for k, v in plan.items()}
    summary = {
        "dataset": "segthor", "source": str(raw), "size": [size, size], "window_hu": [float(window[0]), float(window[1])],
        "slices": "all" if all_slices else "foreground", "split": split_used,
        "patients": {k: list(v) for k, v in plan.items()}, "skipped_patients": missing + unlisted,
        "image_format": "16-bit PNG, window mapped to [0, 1]",
    }
    return write_volume_dataset(out, cases, spec, SEGTHOR_CLASSES, "segthor", all_slices=all_slices, allow_empty=True,
                                overwrite=overwrite, summary=summary,
                                label_values="SegTHOR labels are 0..4 (background, esophagus, heart, trachea, aorta)", log=log)
