"""Corrected labels in the source's own space: at each 2D image's size, or on each volume's grid.

:func:`corrected_in_original` replaces, in the labels as given, only the pixels the correction changed, so labels
without correction come back exactly as given; :func:`native_label_slices` / :func:`native_label_volumes` yield the
labels of a run in that space, and the ``export_native_*`` functions write them (``OUT/original/labels/``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.dataset import PreparedSplit, resize_label, smooth_resize_label
from ..data.io import write_array
from ..data.volumes import VolumeSpec, label_slices, read_volume, slices_to_volume, volume_suffix, write_label_volume
from ..errors import RunError


def _resize_nearest(lab: np.ndarray, size) -> np.ndarray:
    return resize_label(lab, tuple(int(s) for s in size))


def corrected_in_original(base: np.ndarray, initial: np.ndarray, final: np.ndarray, synthetic_noise: bool) -> np.ndarray:
    """Corrected labels of one image at the source's size ``base.shape``.

    ``initial``/``final``: the run's labels before/after correction at the
    training resolution. The source labels ``base`` are kept and only the
    pixels the correction changed are replaced (both masks resized nearest),
    so an image without correction comes back exactly as the user gave it.
    With synthetic noise (``data.noise``) the noisy labels exist only at the
    training resolution and the final labels are resized as a whole. Labels are
    upsampled through their one-hot maps (bilinear, then the argmax on the
    source's grid: :func:`smooth_resize_label`), not pixel-blocky nearest.
    """
    if synthetic_noise:
        return smooth_resize_label(final, base.shape)
    out = np.array(base, dtype=np.uint8, copy=True)
    changed = final != initial
    if changed.any():
        up_changed = _resize_nearest(changed.astype(np.uint8), base.shape).astype(bool)
        out[up_changed] = smooth_resize_label(final, base.shape)[up_changed]
    return out


def native_label_slices(source, cfg, train: PreparedSplit, labels: list[np.ndarray]):
    """Yield (id, corrected labels at the source image's size, the source labels) per training image of a 2D dataset."""
    s = source.splits["train"]
    clean = cfg.data.train_labels == "clean"
    for i, sid in enumerate(train.ids):
        base = np.asarray(s.clean_label(i) if clean and s.has_clean else s.label(i), dtype=np.uint8)
        yield sid, corrected_in_original(base, train.original[i], labels[i], bool(cfg.data.noise)), base


def export_native_slices(root: Path, source, cfg, train: PreparedSplit, labels: list[np.ndarray]) -> dict:
    """2D datasets: ``root/labels/<id>.png`` at each source image's own size."""
    changed = 0
    for sid, new, base in native_label_slices(source, cfg, train, labels):
        changed += int((new != base).sum())
        write_array(root / "labels" / f"{sid}.png", new)
    how = ("the synthetic noisy labels (data.noise) and their corrections, resized from the training resolution (bilinear one-hot, argmax)"
           if cfg.data.noise else "the source labels with the pixels the correction changed replaced")
    return {"what": "PNG at each image's original size", "summary": f"original/labels/ ({len(train)} PNGs at the source size, {changed} pixels differ from the source labels)",
            "readme": f"- `original/labels/<id>.png`: the labels at each source image's own size: {how} "
                      f"({changed} pixels differ from the source labels)."}


def native_label_volumes(index: dict, dataset_root: Path, cfg, train: PreparedSplit, labels: list[np.ndarray]):
    """Yield (subject, corrected volume in the stored orientation, its label Volume as given, voxels changed) per training subject."""
    spec = VolumeSpec.from_dict(index["spec"])
    pos = {sid: i for i, sid in enumerate(train.ids)}
    clean = cfg.data.train_labels == "clean"
    # noisy labels made at the training resolution (data.noise, or `adele noise` on the prepared slices) have no native volume
    synthetic = bool(cfg.data.noise) or (not clean and "train" in index.get("noised_splits", []))
    for subject, rec in index["subjects"].items():
        if rec["split"] != "train":
            continue
        rel = rec["clean_file"] if clean and rec.get("clean_file") else rec["label_file"]
        base = read_volume(Path(dataset_root) / rel, "label")
        ornt = np.asarray(rec["ornt"])
        sl = label_slices(base, ornt, spec.axis)
        before = sl.copy()
        for sid, k in rec["slices"].items():
            if sid not in pos:
                raise RunError(f"{dataset_root}: slice {sid} of volumes.json is not in the run's training set; the dataset changed since training")
            i = pos[sid]
            sl[k] = corrected_in_original(sl[k], train.original[i], labels[i], synthetic)
        yield subject, slices_to_volume(sl, ornt, spec.axis), base, int((sl != before).sum())


def export_native_volumes(root: Path, index: dict, dataset_root: Path, cfg, train: PreparedSplit, labels: list[np.ndarray]) -> dict:
    """Volume datasets: ``root/labels/<subject>.nii.gz`` on each subject's own grid, with its label file's header."""
    per_subject: dict[str, int] = {}
    for subject, vol, base, changed in native_label_volumes(index, dataset_root, cfg, train, labels):
        per_subject[subject] = changed
        dtype = base.image.get_data_dtype()
        write_label_volume(root / "labels" / f"{subject}{volume_suffix(base.path)}", vol, base,
                           dtype=dtype if np.issubdtype(dtype, np.integer) else np.uint8)
    n = sum(per_subject.values())
    how = ("the synthetic noisy labels (data.noise or `adele noise`) and their corrections, resized from the training resolution"
           if cfg.data.noise or "train" in index.get("noised_splits", []) else "the labels as given with the voxels the correction changed replaced")
    return {"what": "NIfTI per subject on its own voxel grid, with its label file's header", "changed": per_subject,
            "summary": f"original/labels/ ({len(per_subject)} label volumes on the subjects' grids, {n} voxels differ from the label files)",
            "readme": f"- `original/labels/<subject>.nii.gz`: the label volume of every training subject, on the grid and with the "
                      f"header of its label file: {how} ({n} voxels differ from the label files); "
                      "slices not used for training are unchanged.\n- `label_quality_subjects.csv`: one row per training subject, most suspicious first."}
