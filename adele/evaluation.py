"""Score a folder of predicted masks against a folder of reference masks (``adele evaluate``, as nnU-Net's ``nnUNetv2_evaluate_folder``).

Cases are matched by file name without the extension (``.png``, ``.npy``,
``.nii.gz``, ``.nii``); every prediction needs a reference and every reference
a prediction. 2D masks are compared pixel by pixel (volumes in pixels); NIfTI
volumes in their native space: prediction and reference must share the voxel
grid (shape and affine), and volumes are in ml (voxel volume from the header
zooms, mm^3 / 1000).

The numbers follow :mod:`adele.metrics`: one confusion matrix per case
(ignore voxels of the reference are never counted), Dice and IoU from
:func:`~adele.metrics.scores_from_confusion` (NaN for a class absent from
both, 0 when only predicted). ``mean`` and ``foreground_mean`` are nnU-Net v2's
(``compute_metrics_on_folder``): per class, the mean over the cases whose Dice
is not NaN, so a case that predicts a class its reference lacks counts as 0;
then the plain mean of those over the foreground classes (NaN when a class is
in no mask at all). ``mean_present`` / ``foreground_mean_present`` take Dice and
IoU over the cases whose *reference* has the class instead (a class only
predicted is left out), as do ``per_case_mean`` and ``dataset_level``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .data.io import SUFFIXES, IMAGE_ONLY_SUFFIXES, read_label, stem_of, suffix_of
from .data.volumes import VOLUME_SUFFIXES, classes_from_labels_dict, read_volume, volume_stem, volume_suffix
from .errors import ConfigError, DatasetError
from .metrics import confusion_matrix, foreground_mean, nanmean, present_in_truth, scores_from_confusion

#: mask files read from PREDICTIONS and LABELS
MASK_SUFFIXES = tuple(dict.fromkeys([s for s in SUFFIXES if s not in IMAGE_ONLY_SUFFIXES] + list(VOLUME_SUFFIXES)))
#: largest difference allowed between a prediction's and its reference's affine (as in ``adele data prepare volumes``)
AFFINE_RTOL, AFFINE_ATOL = 1e-4, 1e-3
#: per-class counts of a case, besides Dice and IoU
COUNTS = ("TP", "FP", "FN", "TN", "n_pred", "n_ref")
#: how many case names an error message lists
_SHOWN = 5


# ----------------------------------------------------------------------------- one case


def case_metrics_from_confusion(cm: np.ndarray, voxel_volume: float = 1.0) -> dict[str, dict[str, float]]:
    """Per-class metrics of one case from its confusion matrix.

    ``cm``: (C, C) int, rows = reference, cols = prediction (:func:`adele.metrics.confusion_matrix`).
    Returns {str(class id): {"Dice", "IoU", "TP", "FP", "FN", "TN", "n_pred", "n_ref", "volume_difference"}}
    for the foreground classes 1..C-1: Dice/IoU float (NaN when the class is in neither mask, 0.0 when
    only predicted), counts int, ``volume_difference`` = (n_pred - n_ref) * ``voxel_volume`` float.
    """
    cm = np.asarray(cm, dtype=np.int64)
    scores = scores_from_confusion(cm)
    tp = np.diagonal(cm)
    n_ref, n_pred, total = cm.sum(1), cm.sum(0), int(cm.sum())
    out: dict[str, dict[str, float]] = {}
    for c in range(1, cm.shape[0]):
        fp, fn = int(n_pred[c] - tp[c]), int(n_ref[c] - tp[c])
        out[str(c)] = {
            "Dice": float(scores["dice"][c]), "IoU": float(scores["iou"][c]),
            "TP": int(tp[c]), "FP": fp, "FN": fn, "TN": total - int(tp[c]) - fp - fn,
            "n_pred": int(n_pred[c]), "n_ref": int(n_ref[c]),
            "volume_difference": float((int(n_pred[c]) - int(n_ref[c])) * voxel_volume),
        }
    return out


def evaluate_case(pred: np.ndarray, ref: np.ndarray, num_classes: int, ignore_index: int = 255, voxel_volume: float = 1.0) -> dict:
    """Score one predicted mask against its reference.

    ``pred``, ``ref``: integer class ids of the same shape, (H, W) or (X, Y, Z); ``ref`` may hold
    ``ignore_index`` (those voxels are not counted), ``pred`` values must be < ``num_classes``.
    ``voxel_volume``: volume of one voxel in the unit wanted for ``volume_difference`` (1.0: pixels;
    a NIfTI's ``prod(zooms) / 1000``: ml).
    Returns {"metrics": :func:`case_metrics_from_confusion` (classes 1..num_classes-1),
    "confusion": (C, C) int64 confusion matrix, rows = reference}.
    """
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from the reference shape {ref.shape}")
    for what, arr in (("prediction", pred[ref != ignore_index]), ("reference", ref[ref != ignore_index])):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"{what} has class ids {arr.min()}..{arr.max()}, expected 0..{num_classes - 1}")
    cm = confusion_matrix(pred, ref, num_classes, ignore_index)
    return {"metrics": case_metrics_from_confusion(cm, voxel_volume), "confusion": cm}


# ----------------------------------------------------------------------------- folders


def find_masks(folder: str | Path, what: str) -> dict[str, Path]:
    """{case: path} of the mask files (PNG, NPY, NIfTI) directly in ``folder``; hidden files and others are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: {what} folder not found; pass a folder of masks (.png, .npy, .nii.gz, .nii, .nrrd, .mha)")
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file() or (volume_suffix(p) or suffix_of(p)) not in MASK_SUFFIXES:
            continue
        case = volume_stem(p) if volume_suffix(p) else stem_of(p)
        if case in out:
            raise DatasetError(f"{p}: two {what} files share the case name '{case}' ({out[case].name}); keep one")
        out[case] = p
    if not out:
        raise DatasetError(f"{folder}: no {what} masks (.png, .npy, .nii.gz, .nii, .nrrd, .mha) in this folder; pass the folder that holds them")
    return out


def match_cases(preds: dict[str, Path], refs: dict[str, Path], pred_dir: Path, ref_dir: Path) -> list[str]:
    """The sorted case names, after checking that both folders hold the same cases."""
    only_pred, only_ref = sorted(set(preds) - set(refs)), sorted(set(refs) - set(preds))
    if only_pred:
        raise DatasetError(f"{pred_dir}: {_cases(only_pred)} no reference in {ref_dir}; "
                           "add the reference masks (same name) or remove those predictions")
    if only_ref:
        raise DatasetError(f"{ref_dir}: {_cases(only_ref)} no prediction in {pred_dir}; "
                           "predict those cases too (`adele predict`) or evaluate against a folder without them")
    return sorted(preds)


def _cases(names: Sequence[str]) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:_SHOWN]) + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")
    return f"case {shown} has" if len(names) == 1 else f"{len(names)} cases ({shown}) have"


def find_dataset_json(ref_dir: str | Path) -> Optional[Path]:
    """dataset.json next to the reference masks, in their parent or grandparent (``DIR/test/labels``), else None."""
    ref_dir = Path(ref_dir).resolve()
    for d in (ref_dir, ref_dir.parent, ref_dir.parent.parent):
        if (d / "dataset.json").is_file():
            return d / "dataset.json"
    return None


def read_class_names(path: Path) -> tuple[Optional[tuple[str, ...]], Optional[int]]:
    """(class names by id, ignore id) from a dataset.json: nnU-Net ``labels`` (with an optional ``ignore`` entry)
    or adele's ``classes`` + ``ignore_index``; (None, None) when it has neither."""
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DatasetError(f"{path}: not valid JSON; fix the syntax") from None
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: must be a JSON object")
    if "labels" in meta:
        classes = classes_from_labels_dict(meta["labels"], path)
        ignore = meta["labels"].get("ignore")
    elif "classes" in meta:
        classes = meta["classes"]
        if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(x, str) for x in classes):
            raise DatasetError(f"{path}: 'classes' must be a list of at least 2 class names, background first")
        classes, ignore = tuple(classes), meta.get("ignore_index")
    else:
        return None, None
    if ignore is not None and (not isinstance(ignore, int) or isinstance(ignore, bool) or not len(classes) <= ignore <= 255):
        raise DatasetError(f"{path}: the ignore label must be an integer in {len(classes)}..255, got {ignore!r}")
    return classes, ignore


def _is_volume(path: Path) -> bool:
    return volume_suffix(path) != ""


def _read_pair(case: str, pred_path: Path, ref_path: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """(prediction, reference, voxel volume in ml for NIfTI / 1.0 for 2D) of one case, on the same grid."""
    if _is_volume(pred_path) != _is_volume(ref_path):
        raise DatasetError(f"{pred_path}: case '{case}' is {pred_path.name} but its reference is {ref_path.name}; "
                           "compare NIfTI with NIfTI and 2D masks with 2D masks")
    if not _is_volume(ref_path):
        pred, ref = read_label(pred_path), read_label(ref_path)
        if pred.shape != ref.shape:
            raise DatasetError(f"{pred_path}: case '{case}': prediction shape {pred.shape} differs from the reference {ref.shape}; "
                               "predict at the reference's size")
        return pred, ref, 1.0
    p, r = read_volume(pred_path, kind="label"), read_volume(ref_path, kind="label")
    if p.data.shape != r.data.shape:
        raise DatasetError(f"{pred_path}: case '{case}': prediction shape {p.data.shape} differs from the reference {r.data.shape}; "
                           "it must be on the reference's voxel grid (resample it first)")
    if not np.allclose(p.affine, r.affine, rtol=AFFINE_RTOL, atol=AFFINE_ATOL):
        raise DatasetError(f"{pred_path}: case '{case}': prediction affine differs from the reference's (voxel size, orientation "
                           "or origin); it must be on the reference's voxel grid (resample it first)")
    voxel_mm3 = abs(float(np.linalg.det(r.affine[:3, :3])))  # the voxel volume, from the grid (any format)
    return p.data, r.data, voxel_mm3 / 1000.0


def _check_values(case: str, path: Path, arr: np.ndarray, num_classes: Optional[int], ignore_index: int, what: str,
                  names: Optional[Sequence[str]]) -> None:
    """``arr``: the counted voxels of a mask (those where the reference is not ignore), 1D."""
    if what == "prediction" and (arr == ignore_index).any():
        raise DatasetError(f"{path}: case '{case}': the prediction has the ignore label {ignore_index} where the reference has a class; "
                           "a prediction holds class ids only (ignore applies to the reference)")
    if num_classes is not None:
        bad = (arr >= num_classes) & (arr != ignore_index)
        if bad.any():
            vals = np.unique(arr[bad])[:5].tolist()
            raise DatasetError(f"{path}: case '{case}': {what} has class ids {vals}, but dataset.json lists {num_classes} classes "
                               f"({', '.join(names or ())}); fix the mask or dataset.json")


def evaluate_folders(pred_dir: str | Path, ref_dir: str | Path, classes: Optional[Sequence[int | str]] = None,
                     ignore_index: Optional[int] = None) -> dict:
    """Score every case of ``pred_dir`` against ``ref_dir``; returns the summary written to summary.json (JSON-ready).

    ``classes``: the foreground class ids (or dataset.json names) to evaluate; default all of them
    (from dataset.json, else 1..the largest id found in any mask). ``ignore_index``: reference value
    not counted; default dataset.json's ignore label, else 255.

    Fields (class keys are ids as strings, NaN written as null):
    ``metric_per_case``: [{"prediction_file", "reference_file", "metrics": {class: case metrics}}],
    case metrics as :func:`case_metrics_from_confusion`;
    ``mean``: {class: {metric: mean over cases}} as nnU-Net's: NaN values skipped (Dice and IoU of the
    cases with the class in neither mask), so a case that only predicts the class counts as 0;
    ``foreground_mean``: {metric: mean of ``mean`` over the classes} as nnU-Net's (NaN if a class's is);
    ``mean_present``: {class: {"Dice", "IoU"}} over the cases whose reference has the class;
    ``foreground_mean_present``: {"Dice", "IoU"}: mean of ``mean_present`` over the classes some reference has;
    ``volume_difference``: {case: {class: predicted - reference volume}} in ``volume_unit`` (ml or pixels);
    ``dataset_level``: Dice/IoU per class from the confusion matrix summed over cases, their means over
    the classes present, ``mean_classes``, ``absent_classes`` {class: false-positive voxels};
    ``per_case_mean``: {"Dice", "IoU"}: each case's mean over the classes its reference has, averaged over cases;
    plus ``class_names``, ``ignore_index``, ``volume_unit``, ``num_cases``.
    """
    pred_dir, ref_dir = Path(pred_dir), Path(ref_dir)
    preds, refs = find_masks(pred_dir, "prediction"), find_masks(ref_dir, "reference")
    cases = match_cases(preds, refs, pred_dir, ref_dir)
    kinds = {_is_volume(refs[c]) for c in cases}
    if len(kinds) > 1:
        raise DatasetError(f"{ref_dir}: mixes NIfTI volumes and 2D masks; their volumes have different units (ml, pixels): "
                           "evaluate them in separate folders")
    meta = find_dataset_json(ref_dir)
    names, meta_ignore = read_class_names(meta) if meta is not None else (None, None)
    ignore = ignore_index if ignore_index is not None else (meta_ignore if meta_ignore is not None else 255)
    known = len(names) if names is not None else None

    cms: list[np.ndarray] = []
    volumes: list[float] = []
    for case in cases:
        pred, ref, vv = _read_pair(case, preds[case], refs[case])
        valid = ref != ignore
        _check_values(case, preds[case], pred[valid], known, ignore, "prediction", names)
        _check_values(case, refs[case], ref[valid], known, ignore, "reference", names)
        seen = max(int(pred[valid].max(initial=0)), int(ref[valid].max(initial=0)))
        cms.append(evaluate_case(pred, ref, max(known or 0, seen + 1, 2), ignore, vv)["confusion"])
        volumes.append(vv)

    selected = _select_classes(classes, names, max(cm.shape[0] for cm in cms) - 1)
    num_classes = max(known or 0, max(cm.shape[0] for cm in cms), max(selected) + 1)
    cms = [_pad(cm, num_classes) for cm in cms]
    per_case = [case_metrics_from_confusion(cm, vv) for cm, vv in zip(cms, volumes)]
    keys = [str(c) for c in selected]

    mean, fg_mean, mean_present, fg_mean_present = _case_means(cms, per_case, selected, keys)
    dataset_level, per_case_mean = _pooled_scores(cms, selected, keys, num_classes)

    summary = {
        "metric_per_case": [{"prediction_file": str(preds[c]), "reference_file": str(refs[c]), "metrics": {k: pc[k] for k in keys}}
                            for c, pc in zip(cases, per_case)],
        "mean": mean,
        "foreground_mean": fg_mean,
        "mean_present": mean_present,
        "foreground_mean_present": fg_mean_present,
        "volume_difference": {c: {k: pc[k]["volume_difference"] for k in keys} for c, pc in zip(cases, per_case)},
        "dataset_level": dataset_level,
        "per_case_mean": per_case_mean,
        "class_names": {k: (names[c] if names is not None and c < len(names) else k) for c, k in zip(selected, keys)},
        "ignore_index": int(ignore),
        "volume_unit": "ml" if kinds == {True} else "pixels",
        "num_cases": len(cases),
    }
    return _json_ready(summary)


def _case_means(cms: list[np.ndarray], per_case: list[dict], selected: list[int], keys: list[str]) -> tuple[dict, dict, dict, dict]:
    """(``mean``, ``foreground_mean``, ``mean_present``, ``foreground_mean_present``) of :func:`evaluate_folders`.

    ``mean``/``foreground_mean`` as nnU-Net v2: per class the NaN-skipping mean over cases of every metric, then
    the plain mean over the classes (NaN stays NaN). The ``_present`` pair: Dice and IoU over the cases whose
    reference has the class, then the mean over the classes some reference has.
    """
    present = np.array([[cm[c].sum() > 0 for c in selected] for cm in cms])  # (cases, classes)
    metrics = ("Dice", "IoU") + COUNTS + ("volume_difference",)
    mean = {k: {metric: nanmean(np.array([pc[k][metric] for pc in per_case])) for metric in metrics} for k in keys}
    fg_mean = {metric: float(np.mean([mean[k][metric] for k in keys])) for metric in metrics}
    mean_present = {k: {metric: nanmean(np.array([pc[k][metric] if present[i, j] else np.nan for i, pc in enumerate(per_case)]))
                        for metric in ("Dice", "IoU")} for j, k in enumerate(keys)}
    fg_mean_present = {metric: nanmean(np.array([mean_present[k][metric] for k in keys])) for metric in ("Dice", "IoU")}
    return mean, fg_mean, mean_present, fg_mean_present


def _pooled_scores(cms: list[np.ndarray], selected: list[int], keys: list[str], num_classes: int) -> tuple[dict, dict]:
    """``dataset_level`` (from the confusion matrix summed over cases) and ``per_case_mean`` of :func:`evaluate_folders`."""
    total = np.sum(cms, axis=0)
    ds_scores, ds_present = scores_from_confusion(total), present_in_truth(total)
    only = np.zeros(num_classes, bool)
    only[selected] = True
    fp = total.sum(0) - np.diagonal(total)
    dataset_level = {
        "Dice": {k: (float(ds_scores["dice"][c]) if ds_present[c] else None) for c, k in zip(selected, keys)},
        "IoU": {k: (float(ds_scores["iou"][c]) if ds_present[c] else None) for c, k in zip(selected, keys)},
        "mean_Dice": foreground_mean(ds_scores["dice"], ds_present & only),
        "mean_IoU": foreground_mean(ds_scores["iou"], ds_present & only),
        "mean_classes": [k for c, k in zip(selected, keys) if ds_present[c]],
        "absent_classes": {k: int(fp[c]) for c, k in zip(selected, keys) if not ds_present[c]},
    }
    stacked = np.stack(cms)
    pc_scores, pc_present = scores_from_confusion(stacked), present_in_truth(stacked) & only
    per_case_mean = {"Dice": nanmean(foreground_mean(pc_scores["dice"], pc_present)),
                     "IoU": nanmean(foreground_mean(pc_scores["iou"], pc_present))}

    return dataset_level, per_case_mean


def _select_classes(classes: Optional[Sequence[int | str]], names: Optional[Sequence[str]], largest_seen: int) -> list[int]:
    if not classes:
        return list(range(1, len(names))) if names is not None else list(range(1, max(largest_seen, 1) + 1))
    out: list[int] = []
    for c in classes:
        text = str(c).strip()
        if text.lstrip("-").isdigit():
            cid = int(text)
        elif names is not None and text in names:
            cid = list(names).index(text)
        else:
            known = f"dataset.json names them {', '.join(names[1:])}" if names is not None else "no dataset.json names them"
            raise ConfigError(f"--classes: '{text}' is not a class id or name ({known}); give ids such as --classes 1 2")
        if cid < 1 or (names is not None and cid >= len(names)) or cid > 254:
            limit = f"1..{len(names) - 1}" if names is not None else "1..254"
            raise ConfigError(f"--classes: {cid} is not a foreground class id ({limit}; background 0 is never evaluated)")
        if cid not in out:
            out.append(cid)
    return sorted(out)


def _pad(cm: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((n, n), np.int64)
    out[: cm.shape[0], : cm.shape[1]] = cm
    return out


def _json_ready(x: Any) -> Any:
    """NaN -> None, NumPy scalars -> Python, floats rounded to 6 decimals (as metrics.json)."""
    if isinstance(x, dict):
        return {k: _json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_ready(v) for v in x]
    if isinstance(x, (np.integer, int)) and not isinstance(x, bool):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return None if math.isnan(float(x)) else round(float(x), 6)
    return x


# ----------------------------------------------------------------------------- the table


def format_table(summary: dict) -> str:
    """The per-class table printed by ``adele evaluate``: nnU-Net's mean Dice and IoU, volume difference, cases
    whose reference has the class, Dice over those cases; then the foreground means and a line naming the keys."""
    unit = summary["volume_unit"]
    names = summary["class_names"]
    width = max([len(f"{k} {n}") for k, n in names.items()] + [len("foreground mean")])
    vol = '+18.4f' if unit == 'ml' else '+18.1f'

    def num(v: Optional[float], spec: str) -> str:
        return "-" if v is None else format(v, spec)

    head = f"{'class':<{width}}  {'Dice':>7}  {'IoU':>7}  {'vol. diff (' + unit + ')':>18}  {'in ref':>7}  {'Dice in ref':>11}"
    lines = [head, "-" * len(head)]
    for k, m in summary["mean"].items():
        label = f"{k} {names[k]}" if names[k] != k else k
        n_in = sum(1 for pc in summary["metric_per_case"] if pc["metrics"][k]["n_ref"] > 0)
        lines.append(f"{label:<{width}}  {num(m['Dice'], '7.4f')}  {num(m['IoU'], '7.4f')}  {num(m['volume_difference'], vol)}  "
                     f"{n_in:>7}  {num(summary['mean_present'][k]['Dice'], '11.4f')}")
    fg = summary["foreground_mean"]
    lines.append("-" * len(head))
    lines.append(f"{'foreground mean':<{width}}  {num(fg['Dice'], '7.4f')}  {num(fg['IoU'], '7.4f')}  {num(fg['volume_difference'], vol)}  "
                 f"{'':>7}  {num(summary['foreground_mean_present']['Dice'], '11.4f')}")
    lines.append("Dice, IoU: nnU-Net's 'mean' / 'foreground_mean': a case that predicts a class its reference lacks counts 0 "
                 "('-': a class in no mask)")
    lines.append("Dice in ref: over the cases whose reference has the class ('mean_present' / 'foreground_mean_present')")
    ds = summary["dataset_level"]
    lines.append(f"{summary['num_cases']} case(s); dataset-level mean Dice {num(ds['mean_Dice'], '.4f')}, "
                 f"per-case mean Dice {num(summary['per_case_mean']['Dice'], '.4f')}")
    return "\n".join(lines)
