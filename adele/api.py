"""A small Python API for notebooks: load a run, predict arrays or files, read corrected labels and quality scores.

::

    import adele

    run = adele.load_run("runs/adele", device="cpu")   # a finished run folder (the --out of `adele train`)
    run.classes                                          # ['background', ...]
    mask = run.predict(image)                            # (H, W) or (H, W, C) array -> uint8 (H, W)
    probs = run.predict(image, probs=True)               # -> float32 (num_classes, H, W)
    mask = run.predict(volume, affine=affine)            # 3D array of a volume run -> uint8 on the same grid
    mask = run.predict_file("scan.nii.gz")               # any input `adele predict` takes; volumes in their own space
    run.predict_file("scan.nii.gz", out="masks/")        # ... and write it like `adele predict`
    labels = run.corrected_labels()                      # {slice id: uint8 (H, W)} at the training resolution
    labels = run.corrected_labels(space="original")      # {subject: volume} (volume datasets) / {id: (H, W)} at source size
    rows = run.label_quality()                           # [{"id", "score", "disagree_frac", ...}], most suspicious first
    run.export_labels("data/fixed")                      # = `adele export-labels`

Everything runs the code paths of the CLI, so results are the same.
"""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from .data.io import read_label
from .data.volumes import Volume, read_volume, read_volume_index, volume_suffix
from .errors import DatasetError, RunError
from .predict_files import _segment_slices, predict_files, segment_volume
from .run import RunFolder
from .labels.export import export_labels
from .labels.ranking import quality_rows, rank_given_labels
from .labels.source_space import native_label_slices, native_label_volumes
from .labels.verdict import run_verdict, verdict_line


class Run:
    """A trained run: its model, config and (lazily) its training data."""

    def __init__(self, path: str | Path, device: str = "auto"):

        self.path = Path(path)
        #: the run folder (:class:`adele.run.RunFolder`): config, run.json, training data, latest labels
        self.folder = RunFolder.open(self.path, model_only=True)
        self._lm = self.folder.model(device)
        self.config = self._lm.config
        #: the volume steps of a run trained on a volume dataset, else None
        self.volume_spec = self.folder.volume_spec

    def __repr__(self) -> str:
        kind = f"volumes ({self.volume_spec.axis})" if self.volume_spec else "2D"
        return f"Run({str(self.path)!r}, method={self.config.method}, classes={len(self.classes)}, data={kind})"

    @property
    def classes(self) -> list[str]:
        return list(self._lm.classes)

    @property
    def model(self):
        """The torch model, in eval mode."""
        return self._lm.model

    # ------------------------------------------------------------------ prediction

    def predict(self, image: np.ndarray, affine: Optional[np.ndarray] = None, probs: bool = False, tta: bool = False):
        """Segment an array.

        2D ``(H, W)`` or ``(H, W, C)`` float images (as the training images were
        read: PNGs scaled to [0, 1]) give ``(H, W)`` masks. A 3D ``(X, Y, Z)``
        (or 4D channels-last) volume needs ``affine`` and a run trained on a
        volume dataset: it goes through that dataset's steps and comes back on
        the same grid. ``probs`` returns class probabilities, classes first.
        """
        if hasattr(image, "affine") and hasattr(image, "dataobj"):  # a nibabel image: its array and affine
            if affine is None:
                affine = image.affine
            image = np.asarray(image.dataobj)
        if not isinstance(image, np.ndarray) and not hasattr(image, "__array__"):
            raise DatasetError(f"predict: expected a numpy array (or a nibabel image), got {type(image).__name__}; "
                               "for a file use run.predict_file(path)")
        arr = np.asarray(image)
        if arr.ndim == 3 and affine is None and arr.shape[0] <= 4 < arr.shape[-1]:
            raise DatasetError(f"predict: image has shape {arr.shape}, which looks channels-first; pass channels last, "
                               f"(H, W, C): np.moveaxis(image, 0, -1) (a volume needs its affine)")
        if arr.ndim == 2 and self.volume_spec is not None:
            warnings.warn("predict: a 2D slice given to a run trained on volumes is used as it is (not reoriented); pass the "
                          "whole volume with its affine to get the training orientation", stacklevel=2)
        if affine is not None or (arr.ndim >= 3 and self.volume_spec is not None and not (arr.ndim == 3 and arr.shape[-1] in (1, 3))):
            if self.volume_spec is None:
                raise RunError(f"{self.path}: was not trained on a volume dataset; pass 2D slices, or train on `adele data prepare volumes` output")
            if affine is None:
                raise DatasetError("predict(volume): pass the volume's 4x4 affine (e.g. nibabel's img.affine) so it is put in canonical orientation")
            data = arr.astype(np.float32)
            if not np.isfinite(data).all():
                raise DatasetError("predict(volume): the array contains NaN or inf values")
            mask, p = segment_volume(self._lm, [Volume(Path("<array>"), data, np.asarray(affine, float), None)], self.volume_spec,
                                     tta=tta, probs=probs)
            return p.astype(np.float32) if probs else mask
        if arr.ndim not in (2, 3):
            raise DatasetError(f"predict: image has shape {arr.shape}; expected (H, W) or (H, W, C)")
        p = _segment_slices(self._lm, [arr.astype(np.float32)], Path("<array>"), tta, 1)[0]
        return p if probs else p.argmax(0).astype(np.uint8)

    def predict_file(self, path: str | Path, out: Optional[str | Path] = None, probs: bool = False, tta: bool = False):
        """Segment a file (PNG/NPY/NIfTI, or a volume with its channel files beside it).

        Returns the mask as an array (a volume on the file's grid); with ``out``
        (a folder) also writes it exactly as ``adele predict`` does.
        """
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(out) if out is not None else Path(tmp)
            written = predict_files(self.path, path, target, probs=probs, tta=tta, device=self._lm.device.type, log=lambda m: None)
            if len(written) != 1:
                raise DatasetError(f"{path}: gave {len(written)} masks; pass a single image or volume")
            w = written[0]
            if volume_suffix(w):  # NIfTI, NRRD, MetaImage: as stored, on the input's grid
                return read_volume(w, "label").data.astype(np.uint8)
            if w.suffix == ".npy":
                return np.load(w)
            return read_label(w)

    # ------------------------------------------------------------------ labels

    @property
    def _train(self):
        labels, origin = self.folder.latest_labels()
        return self.folder.training_data(), labels, origin

    def corrected_labels(self, space: str = "training") -> dict[str, np.ndarray]:
        """The run's latest labels (corrected, else the original ones).

        ``space="training"``: {slice id: (H, W)} at the training resolution.
        ``space="original"``: volume datasets {subject: volume on its grid, stored
        orientation}; 2D datasets {id: (H, W) at the source image's size}.
        """
        data, labels, _ = self._train
        if space == "training":
            return {sid: lab for sid, lab in zip(data.train.ids, labels)}
        if space != "original":
            raise ValueError("space must be 'training' or 'original'")
        root = data.source.root
        index = read_volume_index(root) if root is not None else None
        if index is not None:
            return {subj: vol for subj, vol, _, _ in native_label_volumes(index, root, self.config, data.train, labels)}
        return {sid: lab for sid, lab, _ in native_label_slices(data.source, self.config, data.train, labels)}

    def label_quality(self) -> list[dict]:
        """Which masks to re-annotate: one dict per training slice/image of the labels the run was given, most suspicious
        (lowest ``score``) first (see :func:`adele.labels.ranking.rank_given_labels`): id, score, disagree_frac, suspect_pixels
        (+ true_error_frac with clean labels, + subject and slice for volume datasets)."""
        data = self.folder.training_data()
        train = data.train
        q = rank_given_labels(self.folder, lambda: self._lm)
        root = data.source.root
        index = read_volume_index(root) if root is not None else None
        extra = None
        if index is not None:
            where = {sid: (s, k) for s, rec in index["subjects"].items() for sid, k in rec["slices"].items()}
            extra = {"subject": [where[i][0] for i in train.ids], "slice": [where[i][1] for i in train.ids]}
        return quality_rows(train.ids, q["scores"], q["disagree"], q["suspect"], train.original, train.clean,
                            data.source.ignore_index, extra)

    def verdict(self) -> str:
        """Are the labels the run was given usable as they are? The one line ``adele export-labels`` ends with: the
        estimated share of wrong pixels per class with its interval, the classes with systematic errors, the verdict
        (rules: :mod:`adele.core.review`)."""
        data = self.folder.training_data()
        q = rank_given_labels(self.folder, lambda: self._lm)
        return verdict_line(run_verdict(q, data.train.original, data.source.classes, data.source.ignore_index), q["early"])

    def export_labels(self, out: str | Path, overwrite: bool = False, suspects: str = "keep") -> Path:
        """``adele export-labels`` (``suspects="ignore"``: the nnU-Net folder): see :func:`adele.labels.export.export_labels`."""
        return export_labels(self.path, out, device=self._lm.device.type, overwrite=overwrite, log=lambda m: None, suspects=suspects)


def load_run(path: str | Path, device: str = "auto") -> Run:
    """Load a finished run folder (with ``model.pt``)."""
    return Run(path, device)
