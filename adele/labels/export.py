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
    OUT/labelstudio/                 tasks.json + config.xml + README.md: the labels of original/labels/ as Label Studio tasks at the source's size, worst first (:mod:`.labelstudio`)

and, in the source's own space (:func:`corrected_in_original`: the source
labels with the pixels the correction changed replaced, so labels without
correction come back exactly as given):

    OUT/original/labels/<id>.png             2D datasets: at each source image's size
    OUT/original/labels/<subject>.nii.gz     volume datasets: on each training subject's grid, with its label file's header
    OUT/label_quality_subjects.csv           volume datasets: one row per training subject, most suspicious first

The folder is built beside OUT and renamed into place at the end.

``suspects="ignore"`` (``--suspects ignore``) writes an nnU-Net v2 raw dataset instead (imagesTr/, labelsTr/,
dataset.json with ``"ignore": C``, the number of classes): the labels of ``original/labels/`` with the suspect pixels
set to C (:mod:`adele.labels.nnunet_dataset`).

``label_quality.csv`` and ``suspect/`` rank the labels the run was given (before
any correction): :func:`rank_given_labels`, from the run's early-learning probabilities
(:mod:`adele.engine.early_learning`), or from the final model's softmax for runs without them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from ..data import dataset_folder
from ..data.dataset import preprocess_image
from ..data.io import write_array
from ..data.volumes import read_volume_index
from ..run import RunFolder
from ..safety import check_output, staged_output
from .ranking import EARLY_SOURCE, quality_csv, rank_given_labels, subject_quality_csv
from .labelstudio import write_labelstudio
from .source_space import export_native_slices, export_native_volumes
from .nnunet_dataset import NnunetExport, export_nnunet
from .verdict import run_verdict, verdict_csv, verdict_line, verdict_markdown


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


def export_labels(run_dir: str | Path, out: str | Path, device: str = "auto", overwrite: bool = False, checkpoint: str = "model",
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
        return export_nnunet(NnunetExport(run, data, labels, origin, q, out, inputs, overwrite), log)
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
            fh.write(write_labelstudio(tmp, f"adele {run.name}", src, cfg, vol_index))
    worst = np.argsort(scores, kind="stable")[:3]
    log(f"wrote {out}: {len(train)} training labels ({origin}), {native['summary']}, label_quality.csv (most suspicious: "
        + ", ".join(f"{train.ids[i]} {scores[i]:.3f}" for i in worst) + ")")
    log(verdict_line(verdict, q["early"]))
    return out


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
