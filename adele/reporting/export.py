"""``adele export-labels``: a run's corrected training labels as a dataset, ranked by suspicion.

Writes, at the run's training resolution (``data.size``; images and labels
were resized to it for training):

    OUT/dataset.json                 classes, ignore_index, a note on where the labels come from
    OUT/train/images/<id>.png|.npy   8-bit PNG when the image lies in [0, 1], else float32 NPY
    OUT/train/labels/<id>.png        corrected labels (latest labels/round_XXX.npz; the original ones without rounds)
    OUT/train/labels_original/       the noisy labels the run started from
    OUT/train/labels_clean/          clean labels, when the run knew them
    OUT/{val,test}/images|labels     unchanged evaluation splits (so OUT is a complete dataset)
    OUT/label_quality.csv            one row per training image, most suspicious first
    OUT/suspect/<id>.png             255 where a confident prediction disagrees with the label
    OUT/README.md                    what the folder holds

Scores come from :func:`adele.core.quality.label_quality_scores` on the
model's eval-mode softmax over the exported labels.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Callable

import numpy as np

from ..core.quality import label_quality_scores
from ..data.dataset import PreparedSplit, preprocess_image
from ..data.io import write_array
from ..errors import RunError
from .runs import label_rounds, load_run


def current_labels(run_dir: Path, train: PreparedSplit) -> tuple[list[np.ndarray], str]:
    """(labels, origin): the latest corrected round of the run, else its original training labels."""
    from ..engine.adele import load_labels

    rounds = label_rounds(run_dir)
    if not rounds:
        return [x.copy() for x in train.original], "original labels (no correction round)"
    labels = load_labels(rounds[-1])
    if len(labels) != len(train) or any(a.shape != b.shape for a, b in zip(labels, train.original)):
        raise RunError(f"{rounds[-1]}: does not match the run's training set ({len(labels)} vs {len(train)} images); the dataset changed since training")
    return labels, f"corrected labels of {rounds[-1].relative_to(run_dir)}"


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


def score_labels(lm, split: PreparedSplit, labels: list[np.ndarray], ignore_index: int, batch_size: int = 8):
    """:func:`label_quality_scores` of ``labels`` against the model's softmax on ``split``'s images, a batch at a time.

    Returns (scores (N,), disagree_frac (N,), suspect: list of (H, W) bool).
    """
    import torch

    from ..inference import predict_probs

    bs = batch_size if len(set(split.shapes)) == 1 else 1
    scores, disagree, suspect = [], [], []
    for s in range(0, len(split), bs):
        x = torch.stack(split.images[s : s + bs]).to(lm.device)
        probs = predict_probs(lm.model, x).cpu().numpy()
        sc, d, m = label_quality_scores(np.stack(labels[s : s + bs]), probs, ignore_index)
        scores.append(sc)
        disagree.append(d)
        suspect.extend(m)
    return np.concatenate(scores), np.concatenate(disagree), suspect


def quality_csv(ids, scores, disagree, suspect, labels, clean=None, ignore_index: int = 255) -> str:
    """CSV text, sorted by score (lowest first)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["rank", "id", "score", "disagree_frac", "suspect_pixels"] + (["true_error_frac"] if clean is not None else [])
    w.writerow(head)
    for rank, i in enumerate(np.argsort(scores, kind="stable"), start=1):
        row = [rank, ids[i], f"{scores[i]:.4f}", f"{disagree[i]:.4f}", int(suspect[i].sum())]
        if clean is not None:
            valid = (labels[i] != ignore_index) & (clean[i] != ignore_index)
            row.append(f"{(labels[i] != clean[i])[valid].mean() if valid.any() else 0.0:.4f}")
        w.writerow(row)
    return buf.getvalue()


def export_labels(run_dir: str | Path, out: str | Path, device: str = "auto", overwrite: bool = False,
                  log: Callable[[str], None] = print) -> Path:
    """Write the dataset described in the module doc; returns ``out``."""
    from ..engine.trainer import load_run_data
    from ..inference import load_run_model, saved_config

    from ..safety import check_output, staged_output

    run = load_run(run_dir)
    out = Path(out)
    cfg = saved_config(run.path / "config.yaml")
    inputs = [run.path, cfg.data.path if cfg.data.path != "colin27" else None]
    check_output(out, "export-labels", inputs, overwrite)  # refused before anything is read or written
    lm = load_run_model(run.path, device)
    data = load_run_data(cfg)
    train = data.train
    if list(train.ids) != list(run.info.get("train_ids", train.ids)):
        raise RunError(f"{run.path}: the training images of {cfg.data.path} differ from those the run was trained on; export from the original dataset")
    labels, origin = current_labels(run.path, train)
    scores, disagree, suspect = score_labels(lm, train, labels, data.source.ignore_index)

    src, size = data.source, cfg.data.size
    shape = train.labels[0].shape
    res_text = f"{shape[0]}x{shape[1]}" if size is not None else "native image size"
    with staged_output(out, "export-labels", inputs, overwrite) as tmp:
        exts = _write_export(tmp, run, data, train, labels, origin, scores, disagree, suspect, size, shape, res_text)
    worst = np.argsort(scores, kind="stable")[:3]
    log(f"wrote {out}: {len(train)} training labels ({origin}), label_quality.csv (most suspicious: "
        + ", ".join(f"{train.ids[i]} {scores[i]:.3f}" for i in worst) + ")")
    return out


def _write_export(out: Path, run, data, train, labels, origin, scores, disagree, suspect, size, shape, res_text) -> dict:
    src = data.source
    exts = {}
    for name, split in (("train", train), ("val", data.val), ("test", data.test)):
        if split is None:
            continue
        exts[name] = _write_images(out / name / "images", split.ids, _image_arrays(src, name, size))
        _write_labels(out / name / "labels", split.ids, labels if name == "train" else split.original)
    _write_labels(out / "train" / "labels_original", train.ids, train.original)
    if train.clean is not None:
        _write_labels(out / "train" / "labels_clean", train.ids, train.clean)
    for sid, mask in zip(train.ids, suspect):
        write_array(out / "suspect" / f"{sid}.png", (mask * 255).astype(np.uint8))
    (out / "label_quality.csv").write_text(quality_csv(train.ids, scores, disagree, suspect, labels, train.clean, src.ignore_index))
    note = (f"train/labels: {origin} of run {run.name} (method {run.method}); train/labels_original: the labels it was trained on "
            f"before correction. All images and labels are at the run's training resolution ({res_text}), not the source resolution.")
    meta = {"name": f"{src.name}-{run.name}-labels", "classes": list(src.classes), "ignore_index": src.ignore_index,
            "note": note, "resolution": None if size is None else list(shape), "source_run": run.name}
    (out / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out / "README.md").write_text(_readme(note, train.clean is not None, exts["train"]))
    return exts


def _readme(note: str, has_clean: bool, ext: str) -> str:
    return f"""# Exported training labels

{note}

- `train/images/*.{ext}`, `train/labels/*.png`: a dataset in the generic format (`adele data check .`, `adele train --data .`)
- `train/labels_original/`: the labels before correction{chr(10) + "- `train/labels_clean/`: the clean reference labels" if has_clean else ""}
- `label_quality.csv`: one row per training image, most suspicious first. `score` in [0, 1] (lower = more suspicious)
  combines confidence-weighted pixel agreement with per-class mean probability of the given label (see
  `adele.core.quality`); `disagree_frac` = fraction of labelled pixels where the model predicts another
  class with probability > 0.7.
- `suspect/<id>.png`: 255 on those pixels.
"""
