"""Which masks to re-annotate: the labels a run was given, scored against its early-learning probabilities.

:func:`rank_given_labels` scores them from the run's early-learning probabilities (each class's eval-mode
training softmax at its memorization flag, :mod:`adele.engine.early_learning`), or, for runs without them, from the
final model's softmax; :func:`quality_rows` / :func:`quality_csv` are the ranked table ``label_quality.csv``
of ``adele export-labels`` and :meth:`adele.api.Run.label_quality`.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..core.quality import early_learning_scores, label_quality_scores
from ..data.dataset import PreparedSplit, batch_indices
from ..errors import RunError
from ..probabilities import LoadedModel, predict_probs
from ..run import RunFolder
from ..run.files import load_early_probs


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

    From the run's early-learning probabilities when it has them (:mod:`adele.engine.early_learning`), else from
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
