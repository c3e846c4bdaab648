"""``adele export-labels``: a run's corrected training labels as a dataset, ranked by suspicion.

Writes, at the run's training resolution (``data.size``; images and labels
were resized to it for training):

    OUT/dataset.json                 classes, ignore_index, a note on where the labels come from
    OUT/train/images/<id>.png|.npy   8-bit PNG when the image lies in [0, 1], else float32 NPY
    OUT/train/labels/<id>.png        corrected labels (latest labels/round_XXX.npz; the original ones without rounds)
    OUT/train/labels_original/       the noisy labels the run started from
    OUT/train/labels_clean/          clean labels, when the run knew them
    OUT/{val,test}/images|labels     unchanged evaluation splits (so OUT is a complete dataset)
    OUT/label_quality.csv            one row per training image, most suspicious first (+ subject, slice for volume datasets)
    OUT/label_quality_classes.csv    per class: estimated share of wrong pixels, its interval, systematic errors (adele.core.review)
    OUT/suspect/<id>.png             255 where a confident prediction disagrees with the label
    OUT/README.md                    what the folder holds
    OUT/labelstudio/                 tasks.json + config.xml: the corrected masks as Label Studio tasks, worst first (:mod:`.labelstudio`)

and, in the source's own space (:func:`corrected_in_original`: the source
labels with the pixels the correction changed replaced, so labels without
correction come back exactly as given):

    OUT/original/labels/<id>.png             2D datasets: at each source image's size
    OUT/original/labels/<subject>.nii.gz     volume datasets: on each training subject's grid, with its label file's header
    OUT/label_quality_subjects.csv           volume datasets: one row per training subject, most suspicious first

The folder is built beside OUT and renamed into place at the end.

``suspects="ignore"`` (``--suspects ignore``) writes an nnU-Net v2 raw dataset instead (imagesTr/, labelsTr/,
dataset.json with ``"ignore": C``, the number of classes): the labels of ``original/labels/`` with the suspect pixels
set to C (:mod:`adele.reporting.nnunet_export`).

``label_quality.csv`` and ``suspect/`` rank the labels the run was given (before
any correction): :func:`rank_given_labels`, from the run's early-learning probabilities
(:mod:`adele.engine.quality`), or from the final model's softmax for runs without them.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Callable, Optional

import numpy as np

import torch

from ..core.quality import early_learning_scores, label_quality_scores
from ..data import dataset_folder
from ..data.dataset import PreparedSplit, batch_indices, preprocess_image, resize_label, smooth_resize_label
from ..data.io import write_array
from ..data.volumes import (VolumeSpec, label_slices, read_volume, read_volume_index, slices_to_volume, volume_suffix,
                            write_label_volume)
from ..errors import RunError
from ..prediction import LoadedModel, predict_probs
from ..run import RunFolder
from ..runfolder import load_early_probs
from ..safety import check_output, staged_output
from .labelstudio import write_labelstudio
from .review import run_verdict, verdict_csv, verdict_line, verdict_markdown


def _image_arrays(source, split: str, size) -> list[np.ndarray]:
    """Raw images of a split resized to ``size`` like in training, without normalization."""
    s = source.splits[split]
    out = []
    for i in range(len(s)):
        t = preprocess_image(s.image(i), size, "unit").numpy()
        out.append(t[0] if t.shape[0] == 1 else np.moveaxis(t, 0, -1))
    return out


def _write_images(root: Path, ids, images: list[np.ndarray]) -> str:
    use_png = all(float(a.min()) >= 0.0 and float(a.max()) <= 1.0 for a in images)
    ext = "png" if use_png else "npy"
    for sid, img in zip(ids, images):
        write_array(root / f"{sid}.{ext}", img if use_png else img.astype(np.float32))
    return ext


def _write_labels(root: Path, ids, labels) -> None:
    for sid, lab in zip(ids, labels):
        write_array(root / f"{sid}.png", np.asarray(lab, dtype=np.uint8))


def score_labels(lm, split: PreparedSplit, labels: list[np.ndarray], ignore_index: int, batch_size: int = 8, tau: float = 0.5):
    """:func:`label_quality_scores` of ``labels`` against the model's softmax on ``split``'s images, a batch at a time.

    Returns (scores (N,), disagree_frac (N,), suspect: list of (H, W) bool, prediction: list of (H, W) uint8).
    """
    scores, disagree, suspect, pred = [], [], [], []
    for chunk in batch_indices(split.shapes, batch_size):
        x = torch.stack([split.images[i] for i in chunk]).to(lm.device)
        probs = predict_probs(lm.model, x).cpu().numpy()
        sc, d, m = label_quality_scores(np.stack([labels[i] for i in chunk]), probs, ignore_index, tau)
        scores.append(sc)
        disagree.append(d)
        suspect.extend(m)
        pred.extend(probs.argmax(1).astype(np.uint8))
    return np.concatenate(scores), np.concatenate(disagree), suspect, pred


#: where the label-quality probabilities come from, as said in the exported README and the report
EARLY_SOURCE = ("this run's early-learning probabilities: each class's eval-mode training softmax at the epoch its "
                "memorization was detected (`adele.core.quality`)")
FINAL_SOURCE = ("the final model's softmax on its own training images (the run has no early-learning probabilities: "
                "quality.track was off or it predates it). A model that has fitted the labels agrees with their errors, "
                "so this ranking is weaker")


def score_given_labels(run_dir: str | Path, labels: list[np.ndarray], ignore_index: int, tau: float = 0.5):
    """(scores, disagree_frac, suspect list, probabilities) of ``labels`` against the run's early-learning probabilities; None without them."""
    probs = load_early_probs(run_dir)
    if probs is None:
        return None
    if [tuple(np.shape(l)) for l in labels] != probs.shapes:
        raise RunError(f"{run_dir}: its early-learning probabilities are of other images than these labels; the dataset changed since training")
    return (*early_learning_scores(probs, labels, ignore_index, tau), probs)


def rank_given_labels(run: RunFolder, load_model: Callable[[], LoadedModel]) -> dict:
    """Score the labels the run was given (its training data's ``original`` labels): which masks to re-annotate.

    From the run's early-learning probabilities when it has them (:mod:`adele.engine.quality`), else from
    the final model, which ``load_model()`` returns (called only then). Returns {scores, disagree, suspect,
    prediction (argmax of the probabilities used), source, early}.
    """
    data = run.training_data()
    train, ignore_index, tau = data.train, data.source.ignore_index, run.config.quality.tau
    labels = [np.asarray(x) for x in train.original]
    got = score_given_labels(run.path, labels, ignore_index, tau)
    if got is not None:
        scores, disagree, suspect, probs = got
        pred = [probs.probs(i).argmax(0).astype(np.uint8) for i in range(len(labels))]
        return dict(scores=scores, disagree=disagree, suspect=suspect, prediction=pred, source=EARLY_SOURCE, early=True)
    scores, disagree, suspect, pred = score_labels(load_model(), train, labels, ignore_index, tau=tau)
    return dict(scores=scores, disagree=disagree, suspect=suspect, prediction=pred, source=FINAL_SOURCE, early=False)


def true_error_frac(label: np.ndarray, clean: np.ndarray, ignore_index: int = 255) -> float:
    valid = (label != ignore_index) & (clean != ignore_index)
    return float((label != clean)[valid].mean()) if valid.any() else 0.0


def quality_rows(ids, scores, disagree, suspect, labels, clean=None, ignore_index: int = 255, extra: Optional[dict] = None) -> list[dict]:
    """One dict per image, sorted by score (lowest first): rank, id, score, disagree_frac, suspect_pixels
    (+ true_error_frac with ``clean``), + ``extra`` columns {name: values by image}; the values rounded as in the CSV."""
    extra = extra or {}
    rows = []
    for rank, i in enumerate(np.argsort(scores, kind="stable"), start=1):
        row = {"rank": rank, "id": ids[i], "score": round(float(scores[i]), 4), "disagree_frac": round(float(disagree[i]), 4),
               "suspect_pixels": int(suspect[i].sum())}
        if clean is not None:
            row["true_error_frac"] = round(true_error_frac(labels[i], clean[i], ignore_index), 4)
        row.update({k: v[i] for k, v in extra.items()})
        rows.append(row)
    return rows


def quality_csv(ids, scores, disagree, suspect, labels, clean=None, ignore_index: int = 255, extra: Optional[dict] = None) -> str:
    """:func:`quality_rows` as CSV text."""
    rows = quality_rows(ids, scores, disagree, suspect, labels, clean, ignore_index, extra)
    head = ["rank", "id", "score", "disagree_frac", "suspect_pixels"] + (["true_error_frac"] if clean is not None else []) + list(extra or {})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for row in rows:
        w.writerow([f"{v:.4f}" if k in ("score", "disagree_frac", "true_error_frac") else v for k, v in row.items()])
    return buf.getvalue()


def export_labels(run_dir: str | Path, out: str | Path, device: str = "auto", overwrite: bool = False, checkpoint: str = "last",
                  log: Callable[[str], None] = print, suspects: str = "keep") -> Path:
    """Write the dataset described in the module doc (``suspects="ignore"``: the nnU-Net folder); returns ``out``."""
    if suspects not in ("keep", "ignore"):
        raise ValueError(f"suspects must be 'keep' or 'ignore', got {suspects!r}")
    run = RunFolder.open(run_dir)
    out = Path(out)
    cfg = run.config
    inputs = [run.path, dataset_folder(cfg.data.path)]
    check_output(out, "export-labels", inputs, overwrite)  # refused before anything is read or written
    data = run.training_data()
    train = data.train
    labels, origin = run.latest_labels()
    q = rank_given_labels(run, lambda: run.model(device, checkpoint))
    if suspects == "ignore":
        from .nnunet_export import export_nnunet  # deferred: nnunet_export imports this module

        return export_nnunet(run, out, cfg, data, labels, origin, q, inputs, overwrite, log)
    scores, disagree, suspect = q["scores"], q["disagree"], q["suspect"]
    verdict = run_verdict(q, train.original, data.source.classes, data.source.ignore_index)

    src, size = data.source, cfg.data.size
    shape = train.labels[0].shape
    res_text = f"{shape[0]}x{shape[1]}" if size is not None else "native image size"
    with staged_output(out, "export-labels", inputs, overwrite) as tmp:  # all or nothing: built beside OUT, renamed at the end
        exts = {}
        for name, split in (("train", train), ("val", data.val), ("test", data.test)):
            if split is None:
                continue
            exts[name] = _write_images(tmp / name / "images", split.ids, _image_arrays(src, name, size))
            _write_labels(tmp / name / "labels", split.ids, labels if name == "train" else split.original)
        _write_labels(tmp / "train" / "labels_original", train.ids, train.original)
        if train.clean is not None:
            _write_labels(tmp / "train" / "labels_clean", train.ids, train.clean)
        for sid, mask in zip(train.ids, suspect):
            write_array(tmp / "suspect" / f"{sid}.png", (mask * 255).astype(np.uint8))
        vol_index = read_volume_index(src.root) if src.root is not None else None
        if vol_index is not None:
            native = export_native_volumes(tmp / "original", vol_index, src.root, cfg, train, labels)
            where = {sid: (subj, k) for subj, rec in vol_index["subjects"].items() for sid, k in rec["slices"].items()}
            extra = {"subject": [where[i][0] for i in train.ids], "slice": [where[i][1] for i in train.ids]}
            (tmp / "label_quality_subjects.csv").write_text(subject_quality_csv(train, train.original, scores, disagree, suspect, extra["subject"],
                                                                               native, src.ignore_index))
        else:
            native = export_native_slices(tmp / "original", src, cfg, train, labels)
            extra = None
        (tmp / "label_quality.csv").write_text(quality_csv(train.ids, scores, disagree, suspect, train.original, train.clean, src.ignore_index, extra))
        note = (f"train/labels: {origin} of run {run.name} (method {run.method}); train/labels_original: the labels it was trained on "
                f"before correction. All images and labels are at the run's training resolution ({res_text}), not the source resolution. "
                f"original/labels/: the corrected labels in the source's own space ({native['what']}).")
        meta = {"name": f"{src.name}-{run.name}-labels", "classes": list(src.classes), "ignore_index": src.ignore_index,
                "note": note, "resolution": None if size is None else list(shape), "source_run": run.name}
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
        (tmp / "label_quality_classes.csv").write_text(verdict_csv(verdict))
        (tmp / "README.md").write_text(_readme(note, train.clean is not None, exts["train"], native["readme"], vol_index is not None, q["source"], cfg.quality.tau)
                                       + verdict_markdown(verdict, q["early"]))
        with (tmp / "README.md").open("a") as fh:  # OUT/labelstudio: the masks as Label Studio tasks, worst first
            fh.write(write_labelstudio(tmp, f"adele {run.name}", vol_index))
    worst = np.argsort(scores, kind="stable")[:3]
    log(f"wrote {out}: {len(train)} training labels ({origin}), {native['summary']}, label_quality.csv (most suspicious: "
        + ", ".join(f"{train.ids[i]} {scores[i]:.3f}" for i in worst) + ")")
    log(verdict_line(verdict, q["early"]))
    return out


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


def subject_quality_csv(train: PreparedSplit, labels, scores, disagree, suspect, subjects: list[str], native: dict, ignore_index: int) -> str:
    """Per-subject label quality (mean/min slice score, worst slice, voxels changed in the subject's own space), lowest mean first."""
    rows: dict[str, list[int]] = {}
    for i, s in enumerate(subjects):
        rows.setdefault(s, []).append(i)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["rank", "subject", "slices", "mean_score", "min_score", "worst_slice", "disagree_frac", "suspect_pixels", "changed_voxels"]
    w.writerow(head + (["true_error_frac"] if train.clean is not None else []))
    order = sorted(rows, key=lambda s: (float(np.mean(scores[rows[s]])), s))
    for rank, s in enumerate(order, start=1):
        idx = rows[s]
        worst = idx[int(np.argmin(scores[idx]))]
        row = [rank, s, len(idx), f"{np.mean(scores[idx]):.4f}", f"{np.min(scores[idx]):.4f}", train.ids[worst],
               f"{np.mean(disagree[idx]):.4f}", int(sum(suspect[i].sum() for i in idx)), native["changed"].get(s, 0)]
        if train.clean is not None:
            row.append(f"{np.mean([true_error_frac(labels[i], train.clean[i], ignore_index) for i in idx]):.4f}")
        w.writerow(row)
    return buf.getvalue()


def _readme(note: str, has_clean: bool, ext: str, native: str = "", volumes: bool = False, source: str = EARLY_SOURCE, tau: float = 0.5) -> str:
    return f"""# Exported training labels

{note}

- `train/images/*.{ext}`, `train/labels/*.png`: a dataset in the generic format (`adele data check .`, `adele train --data .`)
- `train/labels_original/`: the labels before correction{chr(10) + "- `train/labels_clean/`: the clean reference labels" if has_clean else ""}
- `label_quality.csv`: which masks to re-annotate: one row per training image, most suspicious first. It
  scores the labels the run was given (`train/labels_original/`) against {source}.
  `score` in [0, 1] (lower = more suspicious) combines confidence-weighted pixel agreement with the per-class
  mean probability of the given label; `disagree_frac` = fraction of labelled pixels where those probabilities
  put another class above quality.tau ({tau}){"; `true_error_frac` = fraction of labelled pixels that differ from the clean labels" if has_clean else ""}.
- `suspect/<id>.png`: 255 on those pixels: where to look first when redrawing the mask.{chr(10) + "- `label_quality.csv` columns `subject`, `slice`: where each slice comes from." if volumes else ""}
{native}
"""
