"""Volume datasets (3D scans + label volumes) -> 2D slices in the generic format, and back.

``adele data prepare volumes SRC OUT`` reads either layout::

    generic                                   nnU-Net (v2 raw dataset)
    SRC/images/<subject>.nii.gz               SRC/dataset.json   {"channel_names": {"0": "CT"}, "labels": {"background": 0, ...},
    SRC/labels/<subject>.nii.gz                                   "file_ending": ".nii.gz"}
    SRC/labels_noisy/<subject>.nii.gz  opt.   SRC/imagesTr/<case>_0000.nii.gz (one file per channel: _0000, _0001, ...)
    SRC/dataset.json  optional                SRC/labelsTr/<case>.nii.gz
      {"classes": [...]} or nnU-Net "labels"  SRC/labelsTr_noisy/<case>.nii.gz   optional
                                              SRC/imagesTs/<case>_0000.nii.gz     optional (for `adele predict`)

A generic image is a 3D volume, or 4D with the channels last; ``<subject>_0000``
channel files work there too. When a noisy-label folder is present, its
labels are the training labels and the others the clean reference
(``train/labels_clean``, and the labels of val/test). nnU-Net's ignore label
(``"ignore": K`` in ``labels``, K = the number of classes, as nnU-Net requires)
is read as ``ignore_index`` (255) in the slices.

Volumes are NIfTI (``.nii.gz``, ``.nii``, read by nibabel) or, with SimpleITK
installed (``pip install 'adele[formats]'``), NRRD (``.nrrd``, ``.nhdr``) and
MetaImage (``.mha``, ``.mhd``), as nnU-Net reads them (``file_ending`` in
dataset.json). Every format gives the array (X, Y, Z) and RAS affine that
nibabel gives for the same image saved as NIfTI, and masks are written back in
their input's format (:func:`write_volume_like`).

Each volume goes through the same steps, here and in ``adele predict``
(:func:`image_slices`):

1. reorientation to the closest canonical frame (RAS), as ``nibabel.as_closest_canonical``;
2. intensity normalization per channel over the whole volume: ``ct`` clips to a
   window in HU and maps it to [0, 1]; ``mr`` clips to the 0.5/99.5 percentiles
   of the non-zero voxels and z-scores with their mean and std; ``none`` keeps
   the values;
3. slicing along ``axial`` (default), ``coronal`` or ``sagittal``: axial slices
   have anterior up and the patient's right on the left (radiological view),
   coronal and sagittal have superior up;
4. optional neighbour slices as extra channels (``context`` k: slices
   i-k..i+k of every channel, repeated at the volume's ends);
5. in-plane resampling to a size (H, W) or a spacing in mm (bilinear for
   images, nearest for labels); none by default;
6. storage: single-channel CT as 16-bit PNG (the window in [0, 1]), anything
   else as float32 NPY ``(H, W)`` or ``(H, W, C)``.

``OUT/volumes.json`` records the steps (``spec``) and, per subject, its split,
files, grid (shape, affine, orientation, spacing), in-plane sizes and the slice
ids with their index, so every later step can go back to the native grid:
:func:`slices_to_volume` undoes 3 and 1 for any per-slice array at the native
in-plane size. ``OUT/native/labels/`` keeps byte copies of the label volumes
(``labels_clean/`` for the reference) for ``adele export-labels``. Slices are
split by **subject**: no subject has slices in two splits.

The code: :mod:`adele.data.volume_files` reads and writes the formats,
:mod:`adele.data.volume_geometry` holds the steps (:class:`VolumeSpec`),
:mod:`adele.data.volume_layout` finds the cases and splits them (split files,
nnU-Net's folds); this module prepares a dataset and reads back what it wrote,
and its ``__all__`` is the whole volume API.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from ..errors import DatasetError
from ..safety import atomic_write_text, staged_output
from .colin27 import DATASETS as EMBEDDED
from .folder import SPLITS, write_dataset_json
from .io import write_array
from .volume_files import (affine_to_itk, check_same_grid, copy_volume_file, DETACHED_SUFFIXES, FORMATS_HINT,
    _FORMATS_TEXT, itk_affine, ITK_SUFFIXES, ItkHeader, NIFTI_SUFFIXES, OTHER_VOLUME_SUFFIXES, read_volume, Volume,
    volume_stem, volume_suffix, VOLUME_SUFFIXES, write_itk_like, write_label_volume, write_nifti_like,
    write_volume_like)
from .volume_geometry import (add_context, AXES, AXIS_LETTER, canonical_spacing, DEFAULT_PERCENTILES, DEFAULT_WINDOW,
    from_canonical, from_slices, image_slices, inplane_size, label_slices, MODALITIES, normalize_intensity,
    orientation, quantize16, resample_images, resample_labels, SlicedImage, slices_to_volume, to_canonical,
    to_slices, VolumeSpec)
from .volume_layout import (NNUNET_FOLDS, NNUNET_SPLIT_SEED, Case, _CHANNEL_RE, classes_from_labels_dict, fallback_split, find_test_cases,
    find_volumes, generate_folds, ignore_from_labels_dict, load_split_file, read_folds, _read_json, SPLITS_FINAL, VolumeLayout)


SPEC_FILE = "volumes.json"

#: the volume API: this module's functions and those of volume_files, volume_geometry and volume_layout
__all__ = [
    "_CHANNEL_RE", "_FORMATS_TEXT", "_read_json", "add_context", "affine_to_itk", "AXES", "AXIS_LETTER",
    "canonical_spacing", "Case", "check_same_grid", "classes_from_labels_dict", "copy_volume_file",
    "copy_volume_index", "copy_volume_spec", "DEFAULT_PERCENTILES", "DEFAULT_WINDOW", "DETACHED_SUFFIXES",
    "fallback_split", "find_test_cases", "find_volumes", "FORMATS_HINT", "from_canonical", "from_slices",
    "generate_folds", "guess_modality", "ignore_from_labels_dict", "image_slices", "infer_classes", "inplane_size", "itk_affine",
    "ITK_SUFFIXES", "ItkHeader", "label_slices", "load_split_file", "MODALITIES", "NIFTI_SUFFIXES",
    "NNUNET_FOLDS", "NNUNET_SPLIT_SEED", "normalize_intensity", "orientation", "OTHER_VOLUME_SUFFIXES",
    "prepare_volumes", "quantize16", "read_folds", "read_volume", "read_volume_index", "resample_images",
    "resample_labels", "run_volume_spec", "SlicedImage", "slices_to_volume", "SPEC_FILE", "SPLITS_FINAL",
    "to_canonical", "to_slices", "Volume", "volume_stem", "volume_suffix", "VOLUME_SUFFIXES", "VolumeLayout",
    "VolumeSpec", "write_itk_like", "write_label_volume", "write_nifti_like", "write_volume_dataset",
    "write_volume_like"
]


# ----------------------------------------------------------------------------- writing


def _check_labels(lab: np.ndarray, classes: Sequence[str], ignore: int, path: Path, describe: Optional[str]) -> None:
    bad = (lab >= len(classes)) & (lab != ignore)
    if bad.any():
        vals = np.unique(lab[bad])[:5].tolist()
        what = describe or f"the dataset's classes are ids 0..{len(classes) - 1} ({', '.join(classes)})"
        raise DatasetError(f"{path}: has label values {vals}; {what}; fix the labels or the class list in dataset.json")


def _read_labels(path: Path, label_ignore: Optional[int], ignore_index: int) -> Volume:
    """A label volume with its ``label_ignore`` voxels (nnU-Net's ignore label) set to ``ignore_index``."""
    lab = read_volume(path, "label")
    if label_ignore is None or label_ignore == ignore_index:
        return lab
    return replace(lab, data=np.where(lab.data == label_ignore, ignore_index, lab.data).astype(lab.data.dtype))


def _write_case(tmp: Path, split: str, case: Case, spec: VolumeSpec, classes: Sequence[str], ignore_index: int, all_slices: bool,
                allow_empty: bool, label_values: Optional[str], log: Callable[[str], None], label_ignore: Optional[int] = None) -> Optional[dict]:
    """One subject into the staged dataset ``tmp``: its checked volumes as slices of ``split`` and a byte copy of its
    label volume(s); returns its record of volumes.json, or None when it has no labelled slice. Label voxels equal to
    ``label_ignore`` (nnU-Net's ignore label) become ``ignore_index`` in the slices; the copies keep them as given."""
    letter = AXIS_LETTER[spec.axis]
    chans = [read_volume(p, "image") for p in case.images]
    for v in chans[1:]:
        check_same_grid(chans[0], v, "channel")
    lab = _read_labels(case.label, label_ignore, ignore_index)
    check_same_grid(chans[0], lab, "label")
    _check_labels(lab.data, classes, ignore_index, lab.path, label_values)
    clean = None
    if case.clean is not None:
        clean = _read_labels(case.clean, label_ignore, ignore_index)
        check_same_grid(chans[0], clean, "label")
        _check_labels(clean.data, classes, ignore_index, clean.path, label_values)
    fg_any = (lab.data > 0) & (lab.data != ignore_index)
    if clean is not None:
        fg_any |= (clean.data > 0) & (clean.data != ignore_index)
    if not fg_any.any() and not allow_empty:
        raise DatasetError(f"{lab.path}: label volume has no foreground voxel (all background); fix or remove the subject, or pass --allow-empty")
    img = image_slices(chans, spec)
    lab_sl = label_slices(lab, img.ornt, spec.axis)
    # the training labels of val/test are the clean reference when there is one
    main = lab_sl if (clean is None or split == "train") else label_slices(clean, img.ornt, spec.axis)
    clean_sl = label_slices(clean, img.ornt, spec.axis) if (clean is not None and split == "train") else None
    fg = label_slices(Volume(lab.path, fg_any.astype(np.uint8), lab.affine, None), img.ornt, spec.axis)
    keep = np.arange(len(lab_sl)) if all_slices else np.flatnonzero(fg.reshape(len(fg), -1).max(1) > 0)
    if keep.size == 0:
        log(f"warning: {case.subject} has no labelled slice; skipped")
        return None
    size = img.slices.shape[1:3]
    main_r = resample_labels(main[keep], size)
    clean_r = resample_labels(clean_sl[keep], size) if clean_sl is not None else None
    ids: dict[str, int] = {}
    for j, k in enumerate(keep):
        sid = f"{case.subject}_{letter}{int(k):03d}"
        im = img.slices[k]
        if spec.storage == "png16":
            write_array(tmp / split / "images" / f"{sid}.png", quantize16(im[..., 0]))
        else:
            write_array(tmp / split / "images" / f"{sid}.npy", im[..., 0] if im.shape[-1] == 1 else im)
        write_array(tmp / split / "labels" / f"{sid}.png", main_r[j])
        if clean_r is not None:
            write_array(tmp / split / "labels_clean" / f"{sid}.png", clean_r[j])
        ids[sid] = int(k)
    ending = volume_suffix(case.label) or ".nii.gz"
    rec = {
        "split": split, "images": [str(p) for p in case.images], "label": str(case.label),
        "clean": None if case.clean is None else str(case.clean),
        "shape": list(lab.shape3), "affine": np.round(lab.affine, 6).tolist(), "ornt": img.ornt.astype(int).tolist(),
        "spacing": [round(s, 6) for s in img.spacing], "native_hw": list(img.native_hw), "size_hw": [int(size[0]), int(size[1])],
        "num_slices": int(len(lab_sl)), "slices": ids,
        "label_file": f"native/labels/{case.subject}{ending}",
        "clean_file": None if case.clean is None else f"native/labels_clean/{case.subject}{ending}",
    }
    copy_volume_file(case.label, tmp / rec["label_file"])
    if case.clean is not None:
        copy_volume_file(case.clean, tmp / rec["clean_file"])
    return rec


def write_volume_dataset(
    out: Path,
    plan: Mapping[str, Sequence[Case]],
    spec: VolumeSpec,
    classes: Sequence[str],
    name: str,
    ignore_index: int = 255,
    all_slices: bool = False,
    allow_empty: bool = False,
    overwrite: bool = False,
    summary: Optional[dict] = None,
    label_values: Optional[str] = None,
    log: Callable[[str], None] = print,
    extra_files: Optional[Mapping[str, str]] = None,
    label_ignore: Optional[int] = None,
) -> dict:
    """Write ``plan`` ({split: cases}) as a generic dataset with ``volumes.json``; all or nothing. Returns the summary.
    ``extra_files``: {file name: text} written beside (e.g. ``splits_final.json``). ``label_ignore``: the label value
    that means ignore in the label files (nnU-Net's ``"ignore"``), stored as ``ignore_index``."""
    spec.validate()
    subjects: dict[str, dict] = {}
    counts: dict[str, int] = {}
    seen: dict[str, str] = {}
    for split, cases in plan.items():
        for c in cases:
            if c.subject in seen:
                raise DatasetError(f"subject {c.subject} is in both '{seen[c.subject]}' and '{split}'; put each subject in one split")
            seen[c.subject] = split
    inputs = sorted({p.parent for cases in plan.values() for c in cases for p in (*c.images, c.label, c.clean) if p is not None})
    with staged_output(out, f"data prepare {name if name == 'segthor' else 'volumes'}", inputs, overwrite, flag="output folder") as tmp:
        write_dataset_json(tmp, name, classes, ignore_index)
        for split in SPLITS:
            n = 0
            for case in plan.get(split, ()):
                rec = _write_case(tmp, split, case, spec, classes, ignore_index, all_slices, allow_empty, label_values, log, label_ignore)
                if rec is None:
                    continue
                subjects[case.subject] = rec
                n += len(rec["slices"])
                log(f"{split}: {case.subject}: {len(rec['slices'])} slices")
            if n == 0 and split in ("train", "val"):
                raise DatasetError(f"{out}: no {split} slice with foreground; check the label volumes or pass --all-slices")
            if n:
                counts[split] = n
        (tmp / SPEC_FILE).write_text(json.dumps({"version": 1, "spec": spec.to_dict(), "classes": list(classes),
                                                  "ignore_index": ignore_index, "subjects": subjects}, indent=1) + "\n")
        summary = dict(summary or {})
        summary.setdefault("subjects", {k: [c.subject for c in v if c.subject in subjects] for k, v in plan.items()})
        summary["images"] = counts
        (tmp / "prepare.json").write_text(json.dumps(summary, indent=1) + "\n")
        for fname, text in (extra_files or {}).items():
            (tmp / fname).write_text(text)
    log(f"wrote {out}: " + ", ".join(f"{k} {v} slices" for k, v in counts.items()))
    return summary


def infer_classes(cases: Sequence[Case]) -> tuple[str, ...]:
    """Class names from the label values when no dataset.json lists them: background, class_1, ..., class_K."""
    top = 0
    for c in cases:
        for p in (c.label, c.clean):
            if p is not None:
                d = read_volume(p, "label").data
                top = max(top, int(d[d != 255].max(initial=0)))
    return ("background",) + tuple(f"class_{i}" for i in range(1, max(top, 1) + 1))


def guess_modality(case: Case) -> str:
    """``ct`` when the first volume has values below -500 (Hounsfield units), else ``mr``."""
    v = read_volume(case.images[0], "image").data
    return "ct" if float(np.percentile(v, 1)) < -500 else "mr"


def _modality_of_channel(name: str) -> str:
    n = name.strip().lower()
    if n == "ct":
        return "ct"
    if n in ("nonorm", "none", "rescale_to_0_1", "rgb_to_0_1"):
        return "none"
    return "mr"


def prepare_volumes(
    src: str | Path,
    out: str | Path,
    axis: str = "axial",
    size: Optional[Sequence[int]] = None,
    spacing: Optional[Sequence[float]] = None,
    modality: str = "auto",
    window: Sequence[float] = DEFAULT_WINDOW,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    context: int = 0,
    all_slices: bool = False,
    allow_empty: bool = False,
    split: Optional[Mapping[str, Sequence[str]]] = None,
    noisy_labels: Optional[str | Path] = None,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    fold: Optional[int] = None,
    folds: Optional[Sequence[Mapping[str, Sequence[str]]]] = None,
    n_folds: int = NNUNET_FOLDS,
) -> dict:
    """``adele data prepare volumes SRC OUT``: any generic or nnU-Net volume folder -> the generic 2D format (module doc).

    ``fold``: cross-validation as nnU-Net: train/val are fold ``fold`` of ``folds`` (nnU-Net's splits_final.json; by
    default SRC/splits_final.json if there is one, else :func:`generate_folds` with ``n_folds``), written to
    OUT/splits_final.json; the test split is the labelled test cases (nnU-Net imagesTs + labelsTs), if any."""
    if spacing is not None and len(spacing) == 1:
        spacing = (spacing[0], spacing[0])
    if modality not in ("auto",) + MODALITIES:
        raise DatasetError(f"--modality {modality}: use auto, {', '.join(MODALITIES)}")
    # the options first, before any file is read
    VolumeSpec(axis=axis, size=None if size is None else tuple(size), spacing=None if spacing is None else tuple(spacing),  # type: ignore[arg-type]
               window=tuple(window), percentiles=tuple(percentiles), context=int(context)).validate()  # type: ignore[arg-type]
    lay = find_volumes(src, noisy_labels)
    for note in lay.notes:
        log(f"note: {note}")
    names, mods = _channels_and_modalities(lay, modality, window, log)
    storage = "png16" if (len(mods) == 1 and mods[0] == "ct" and context == 0) else "npy"
    spec = VolumeSpec(axis=axis, size=None if size is None else (int(size[0]), int(size[1])),
                      spacing=None if spacing is None else (float(spacing[0]), float(spacing[1])), modality=tuple(mods),
                      window=(float(window[0]), float(window[1])), percentiles=(float(percentiles[0]), float(percentiles[1])),
                      context=int(context), channel_names=tuple(names), storage=storage, layout=lay.layout, file_ending=lay.file_ending).validate()
    classes = lay.classes or infer_classes(lay.cases)
    if lay.classes is None:
        log(f"classes: {', '.join(classes)} (from the label values; list names in {Path(src) / 'dataset.json'} as {{\"classes\": [...]}})")
    by_name = {c.subject: c for c in lay.cases}
    plan_names, split_used, folds, extra_files = _split_subjects(Path(src), lay, by_name, split, fold, folds, n_folds, log)
    plan = {k: [by_name[s] for s in v] for k, v in plan_names.items()}
    size_text = (f"{spec.size[0]}x{spec.size[1]} px" if spec.size else f"{spec.spacing[0]:g}x{spec.spacing[1]:g} mm" if spec.spacing else "native grid")
    log(f"{lay.layout} layout, {len(lay.cases)} subjects, channels {', '.join(names)}: {spec.axis} slices, "
        + ", ".join(f"{m.upper()} {'window ' + str(list(spec.window)) + ' HU' if m == 'ct' else 'percentile clip + z-score' if m == 'mr' else 'as stored'}"
                    for m in dict.fromkeys(spec.modality))
        + f", in-plane {size_text}" + (f", {spec.context} neighbour slice(s) per side" if spec.context else "")
        + ("; noisy labels for training, the others as clean reference" if any(c.clean is not None for c in lay.cases) else ""))
    summary = {
        "dataset": lay.name, "source": str(src), "layout": lay.layout, "split": split_used,
        "subjects": {k: list(v) for k, v in plan_names.items()}, "spec": spec.to_dict(),
        "slices": "all" if all_slices else "foreground", "noisy_labels": any(c.clean is not None for c in lay.cases),
        "test_images": None if lay.test_images is None else str(lay.test_images),
        **({"fold": int(fold), "folds": len(folds or ())} if fold is not None else {}),
        **({"ignore_label": lay.ignore_label} if lay.ignore_label is not None else {}),
    }
    if lay.ignore_label is not None:
        log(f"labels: {lay.ignore_label} is nnU-Net's ignore label (dataset.json); stored as 255, ignored in training")
    return write_volume_dataset(Path(out), plan, spec, classes, lay.name, all_slices=all_slices, allow_empty=allow_empty,
                                overwrite=overwrite, summary=summary, log=log, extra_files=extra_files, label_ignore=lay.ignore_label)


def _channels_and_modalities(lay: VolumeLayout, modality: str, window: Sequence[float], log: Callable[[str], None]):
    """(channel names, modality per channel): nnU-Net's channel_names, else guessed from the first volume (``auto``)."""
    names = lay.channel_names
    if modality == "auto":
        if names:
            mods = tuple(_modality_of_channel(n) for n in names)
        else:
            mods = (guess_modality(lay.cases[0]),)
            log(f"intensities: {mods[0].upper()} ({'window ' + str(list(window)) + ' HU' if mods[0] == 'ct' else 'percentile clip + z-score'}), "
                f"guessed from {lay.cases[0].images[0].name}; pass --modality to choose")
    else:
        mods = None  # type: ignore[assignment]
    if names is None:
        v0 = read_volume(lay.cases[0].images[0], "image").data
        n = len(lay.cases[0].images) * (1 if v0.ndim == 3 else v0.shape[3])
        names = ("image",) if n == 1 else tuple(f"channel_{i}" for i in range(n))
    if mods is None:
        mods = (modality,) * len(names)
    elif len(mods) != len(names):
        mods = (mods[0],) * len(names)
    return names, mods


def _split_subjects(src: Path, lay: VolumeLayout, by_name: dict, split, fold, folds, n_folds: int, log: Callable[[str], None]):
    """({split: subjects}, how they were split, the folds or None, files to write beside): a fold of nnU-Net's
    cross-validation, a split file, or the sorted fallback."""
    extra_files: dict[str, str] = {}
    if fold is not None:
        if split is not None:
            raise DatasetError("--fold reads the folds of splits_final.json (nnU-Net's list of {train, val}); a {train, val, test} split "
                               "file is for a single split without --fold")
        plan_names, split_used, folds = _fold_plan(Path(src), lay, by_name, fold, folds, n_folds, log)
        extra_files[SPLITS_FINAL] = json.dumps(list(folds), indent=1) + "\n"
    elif split is not None:
        unknown = sorted({s for v in split.values() for s in v} - set(by_name))
        if unknown:
            raise DatasetError(f"split file: subject(s) {', '.join(unknown[:5])} not in {src}; fix the names")
        plan_names = {k: tuple(v) for k, v in split.items()}
        left = sorted(set(by_name) - {s for v in plan_names.values() for s in v})
        if left:
            log(f"warning: {len(left)} subject(s) not in the split file, skipped: {', '.join(left)}")
        split_used = "given"
    else:
        plan_names = fallback_split(list(by_name))
        split_used = "sorted-fallback"
        held = len(plan_names["val"]) + len(plan_names["test"])
        if len(by_name) < 10:
            log(f"note: {len(by_name)} subjects: the default split holds out {held} of them ({100 * held // len(by_name)}%) for val and "
                "test; cross-validate with --fold 0..4 (nnU-Net's 5 folds) and ensemble the folds in `adele predict`")
    return plan_names, split_used, folds, extra_files


def _fold_plan(src: Path, lay: VolumeLayout, by_name: dict, fold: int, folds, n_folds: int, log: Callable[[str], None]):
    """({split: subjects} of fold ``fold``, how the split was made, the folds); adds the labelled test cases to ``by_name``."""
    if folds is None and (src / SPLITS_FINAL).is_file():
        folds, origin = read_folds(src / SPLITS_FINAL), f"{src / SPLITS_FINAL}"
    elif folds is None:
        folds, origin = generate_folds(list(by_name), n_folds), f"generated: {n_folds} folds, nnU-Net's seed {NNUNET_SPLIT_SEED}"
    else:
        origin = "given"
    if not 0 <= fold < len(folds):
        raise DatasetError(f"--fold {fold}: the split has folds 0..{len(folds) - 1}")
    names = {"train": tuple(folds[fold]["train"]), "val": tuple(folds[fold]["val"])}
    unknown = sorted(set(names["train"] + names["val"]) - set(by_name))
    if unknown:
        raise DatasetError(f"fold {fold}: subject(s) {', '.join(unknown[:5])} not in {src}; fix splits_final.json")
    test = find_test_cases(src, lay)
    clash = sorted({c.subject for c in test} & set(by_name))
    if clash:
        raise DatasetError(f"{src / 'imagesTs'}: case {clash[0]} is also a training case; rename it")
    by_name.update({c.subject: c for c in test})
    if test:
        names["test"] = tuple(c.subject for c in test)
    log(f"fold {fold} of {len(folds)} ({origin}): {len(names['train'])} train, {len(names['val'])} val subjects"
        + (f"; test: the {len(test)} labelled case(s) of imagesTs" if test else "; no labelled test cases (imagesTs + labelsTs)"))
    return names, f"fold {fold}", folds


# ----------------------------------------------------------------------------- reading back


def read_volume_index(root: str | Path) -> Optional[dict]:
    """``DIR/volumes.json`` of a prepared dataset, or None for a 2D dataset."""
    p = Path(root) / SPEC_FILE
    if not p.is_file():
        return None
    data = _read_json(p)
    if "spec" not in data or "subjects" not in data:
        raise DatasetError(f"{p}: not a volume index written by `adele data prepare volumes`; re-prepare the dataset")
    return data


def copy_volume_index(src_root: Path, dst_root: Path, noised_splits: Sequence[str]) -> None:
    """For a copy of a prepared volume dataset whose ``noised_splits`` got new (synthetic) labels: keep ``volumes.json``
    and ``native/``, and note that those splits' labels exist only as slices."""
    idx = read_volume_index(src_root)
    if idx is None:
        return
    idx["noised_splits"] = sorted(set(idx.get("noised_splits", [])) | set(noised_splits))
    (Path(dst_root) / SPEC_FILE).write_text(json.dumps(idx, indent=1) + "\n")
    if (Path(src_root) / "native").is_dir():
        shutil.copytree(Path(src_root) / "native", Path(dst_root) / "native")


def copy_volume_spec(source, spec_file: Path) -> None:
    """Save the volume steps of ``source`` (if it is a prepared volume dataset) as ``spec_file`` (a run's ``volumes.json``)
    for ``adele predict``."""
    root = getattr(source, "root", None)
    idx = read_volume_index(root) if root is not None else None
    if idx is None:
        return
    atomic_write_text(json.dumps({"version": 1, "spec": idx["spec"], "classes": idx["classes"], "dataset": str(root)}, indent=1) + "\n",
                      spec_file)


def run_volume_spec(spec_file: str | Path, data_path: Optional[str] = None) -> Optional[VolumeSpec]:
    """The volume steps a run was trained with: ``spec_file`` (the run's ``volumes.json``), else the dataset's at ``data_path``;
    None for 2D runs."""
    p = Path(spec_file)
    if p.is_file():
        return VolumeSpec.from_dict(_read_json(p)["spec"])
    if data_path and data_path not in EMBEDDED and Path(data_path).is_dir():
        idx = read_volume_index(data_path)
        if idx is not None:
            return VolumeSpec.from_dict(idx["spec"])
    return None
