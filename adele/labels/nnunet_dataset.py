"""``adele export-labels --suspects ignore``: a run's corrected training labels as an nnU-Net v2 raw dataset in which the
suspect pixels take nnU-Net's ignore label, so that nnU-Net trains on the labels without them.

    OUT/dataset.json                     channel_names, labels {class: id, ..., "ignore": C}, numTraining, file_ending
    OUT/imagesTr/<case>_0000<ending>     the training images, one file per channel
    OUT/labelsTr/<case><ending>          corrected labels; C (the number of classes) on suspect pixels and where the
                                         labels were already ignore (255)
    OUT/label_quality.csv                one row per training image, most suspicious first (+ subject, slice for volumes)
    OUT/README.md                        what the folder holds

In the source's own space, as ``original/labels/`` of the default export (:func:`adele.labels.export.export_labels`):
volume datasets give one case per training subject on its own grid, its images the source volumes as read by
``adele data prepare volumes`` (copied, or split into channel files); 2D datasets give one case per training image at
the source image's size in nnU-Net's 2D PNG format (``file_ending`` ".png"). The suspect mask, found at the training
resolution, is brought to that space nearest-neighbour, as the pixels the correction changed are.
``adele data prepare volumes OUT`` reads the volume export back with the ignore label as 255.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.dataset import PreparedSplit, RunData, resize_label
from ..data.io import write_array
from ..data.nnunet import image_name, write_nnunet_json
from ..data.volumes import (DETACHED_SUFFIXES, VolumeSpec, _modality_of_channel, label_slices, read_volume, read_volume_index,
                            slices_to_volume, volume_suffix, write_label_volume, write_volume_like)
from ..errors import DatasetError
from ..run import RunFolder
from ..safety import staged_output
from .ranking import quality_csv
from .source_space import native_label_slices, native_label_volumes

#: nnU-Net's channel names that choose the normalization adele used (``_modality_of_channel`` reads them back)
_NNUNET_NORM = {"ct": "CT", "none": "noNorm", "mr": "zscore"}
#: detached headers are written as their single-file format (nnU-Net lists files by ``file_ending``)
_ATTACHED = {".nhdr": ".nrrd", ".mhd": ".mha"}


@dataclass(frozen=True)
class NnunetExport:
    """What the nnU-Net export of a run is made from, and where it goes."""

    run: RunFolder
    #: the run's dataset, prepared as for training (:meth:`RunFolder.training_data`)
    data: RunData
    #: the run's corrected training labels, ``(H, W)`` uint8 each (:meth:`RunFolder.latest_labels`)
    labels: list[np.ndarray]
    #: where ``labels`` come from (said in the README and the log)
    origin: str
    #: the ranking of the given labels (:func:`adele.labels.ranking.rank_given_labels`)
    quality: dict
    out: Path
    #: the folders the export reads (an output inside one of them is refused)
    inputs: list
    overwrite: bool


def export_nnunet(job: NnunetExport, log: Callable[[str], None]) -> Path:
    """Write the folder of the module doc to ``job.out``; returns it."""
    run, out, cfg, data, labels, origin = job.run, job.out, job.run.config, job.data, job.labels, job.origin
    quality, inputs, overwrite = job.quality, job.inputs, job.overwrite
    src, train = data.source, data.train
    suspect = quality["suspect"]
    index = read_volume_index(src.root) if src.root is not None else None
    if index is not None:
        inputs = inputs + sorted({Path(p).parent for r in index["subjects"].values() for p in r["images"]})
    with staged_output(out, "export-labels", inputs, overwrite) as tmp:
        if index is not None:
            channels, ending, counts = _volume_cases(tmp, index, src.root, cfg, train, labels, suspect, src.ignore_index)
            where = {sid: (subj, k) for subj, rec in index["subjects"].items() for sid, k in rec["slices"].items()}
            extra = {"subject": [where[i][0] for i in train.ids], "slice": [where[i][1] for i in train.ids]}
        else:
            channels, ending, counts = _slice_cases(tmp, src, cfg, train, labels, suspect)
            extra = None
        n_cases, n_suspect, n_ignore = counts
        ignore = src.num_classes
        write_nnunet_json(tmp, f"{src.name}-{run.name}-ignore", channels, src.classes, n_cases, ending, ignore=True,
                          where=str(src.root / "dataset.json") if src.root is not None else src.name)
        (tmp / "label_quality.csv").write_text(quality_csv(train.ids, quality["scores"], quality["disagree"], suspect, train.original,
                                                           train.clean, src.ignore_index, extra))
        (tmp / "README.md").write_text(_readme(run, origin, ignore, index is not None, ending, quality, cfg.quality.tau, counts))
    unit = "voxels" if index is not None else "pixels"
    log(f"wrote {out}: an nnU-Net dataset of {n_cases} training cases ({origin}), {n_suspect} suspect {unit} and {n_ignore} "
        f"already ignored as its ignore label {ignore}" + ("; read it back with `adele data prepare volumes`" if index is not None else ""))
    return out


def _volume_cases(tmp: Path, index: dict, root: Path, cfg, train: PreparedSplit, labels, suspect, ignore_index: int):
    """Volume datasets: imagesTr/labelsTr per training subject on its own grid; returns (channel_names, file_ending, counts)."""
    spec = VolumeSpec.from_dict(index["spec"])
    ignore = len(index["classes"])
    pos = {sid: i for i, sid in enumerate(train.ids)}
    train_subjects = [r for r in index["subjects"].values() if r["split"] == "train"]
    first = volume_suffix(train_subjects[0]["images"][0]) if train_subjects else ".nii.gz"
    ending = _ATTACHED.get(first, first)
    n_cases = n_suspect = n_ignore = 0
    for subject, vol, base, _ in native_label_volumes(index, root, cfg, train, labels):
        rec = index["subjects"][subject]
        ornt = np.asarray(rec["ornt"])
        mask = np.zeros(label_slices(base, ornt, spec.axis).shape, np.uint8)
        for sid, k in rec["slices"].items():
            mask[k] = resize_label(suspect[pos[sid]].astype(np.uint8), mask.shape[1:])
        mask_vol = slices_to_volume(mask, ornt, spec.axis).astype(bool)
        lab = np.where(vol == ignore_index, ignore, vol)
        n_ignore += int((lab == ignore).sum())
        n_suspect += int((mask_vol & (lab != ignore)).sum())
        lab[mask_vol] = ignore
        dtype = base.image.get_data_dtype()
        write_label_volume(tmp / "labelsTr" / f"{subject}{ending}", lab, base, dtype=dtype if np.issubdtype(dtype, np.integer) else np.uint8)
        _write_volume_images(tmp / "imagesTr", subject, [Path(p) for p in rec["images"]], spec.channels, ending)
        n_cases += 1
    names = {str(c): name if _modality_of_channel(name) == mod else _NNUNET_NORM[mod]
             for c, (name, mod) in enumerate(zip(spec.channel_names, spec.modality))}
    return names, ending, (n_cases, n_suspect, n_ignore)


def _write_volume_images(folder: Path, case: str, paths: list[Path], channels: int, ending: str) -> None:
    """A subject's image volumes as nnU-Net channel files: copied when already one file per channel in ``ending``,
    else read and written (a 4D file split into its channels)."""
    for p in paths:
        if not p.is_file():
            raise DatasetError(f"{p}: image of subject '{case}' not found; the source volumes must stay where "
                               "`adele data prepare volumes` read them")
    folder.mkdir(parents=True, exist_ok=True)
    if len(paths) == channels:
        for c, p in enumerate(paths):
            dst = folder / image_name(case, c, ending)
            if volume_suffix(p) == ending and ending not in DETACHED_SUFFIXES:
                shutil.copyfile(p, dst)
            else:
                v = read_volume(p, "image")
                write_volume_like(dst, v.data, v.image, dtype=np.float32)
        return
    v = read_volume(paths[0], "image")  # one 4D file, channels last
    for c in range(channels):
        write_volume_like(folder / image_name(case, c, ending), v.data[..., c], v.image, dtype=np.float32)


def _slice_cases(tmp: Path, src, cfg, train: PreparedSplit, labels, suspect):
    """2D datasets: imagesTr/labelsTr as PNG at each source image's size; returns (channel_names, ".png", counts)."""
    ignore = src.num_classes
    s = src.splits["train"]
    paths = getattr(s, "image_paths", None)
    n_suspect = n_ignore = 0
    channels: dict[str, str] = {}
    for i, (sid, new, _) in enumerate(native_label_slices(src, cfg, train, labels)):
        mask = resize_label(suspect[i].astype(np.uint8), new.shape).astype(bool)
        lab = np.where(new == src.ignore_index, ignore, new).astype(np.uint8)
        n_ignore += int((lab == ignore).sum())
        n_suspect += int((mask & (lab != ignore)).sum())
        lab[mask] = ignore
        write_array(tmp / "labelsTr" / f"{sid}.png", lab)
        files = _png_channels(s.image(i), paths[i] if paths is not None else f"{src.name}: training image {sid}")
        for c, arr in enumerate(files):
            write_array(tmp / "imagesTr" / image_name(sid, c, ".png"), arr)
        if not channels:  # the dataset has one channel count (checked when it was opened)
            channels = ({"0": "R", "1": "G", "2": "B"} if files[0].ndim == 3 else {"0": "image"} if len(files) == 1
                        else {str(c): f"channel_{c}" for c in range(len(files))})
    return channels, ".png", (len(train), n_suspect, n_ignore)


def _png_channels(img: np.ndarray, where) -> list[np.ndarray]:
    """A source image (float32 (H, W) or (H, W, C) in [0, 1]) as nnU-Net's PNG files: one file (grayscale, or RGB for 3
    channels) or one per channel; 8-bit when that holds the values exactly, else 16-bit (grayscale)."""
    lo, hi = float(img.min()), float(img.max())
    if lo < 0.0 or hi > 1.0:
        raise DatasetError(f"{where}: image values {lo:g}..{hi:g} lie outside [0, 1], which nnU-Net's 2D format (8/16-bit PNG) cannot "
                           "hold; export without --suspects ignore, or store the images as PNG")
    planes = [img] if img.ndim == 2 or img.shape[-1] == 3 else [img[..., c] for c in range(img.shape[-1])]
    out = []
    for a in planes:
        a8 = a * 255.0
        exact = float(np.abs(a8 - np.round(a8)).max(initial=0.0)) < 1e-3
        out.append(np.round(a8).astype(np.uint8) if exact or a.ndim == 3 else np.round(a * 65535.0).astype(np.uint16))
    return out


def _readme(run, origin: str, ignore: int, volumes: bool, ending: str, quality: dict, tau: float, counts) -> str:
    n_cases, n_suspect, n_ignore = counts
    unit = "voxels" if volumes else "pixels"
    space = ("each training subject's own voxel grid, with its label file's header; the images are the source volumes, one file "
             "per channel" if volumes else
             "each source image's own size (nnU-Net's 2D format: PNG images `<case>_0000.png`, labels `<case>.png`)")
    back = ("\n`adele data prepare volumes OUT PREPARED` reads this folder back: the ignore label becomes adele's ignore (255).\n"
            if volumes else "")
    return f"""# Corrected labels for nnU-Net, suspect {unit} ignored

An nnU-Net v2 raw dataset: {n_cases} training cases with the {origin} of run {run.name} (method {run.method}),
on {space}.

- `labelsTr/<case>{ending}`: the corrected labels (those of `original/labels/` in the default export) with nnU-Net's
  ignore label **{ignore}** (`"ignore": {ignore}` in dataset.json, the highest id) on the {n_suspect} suspect {unit} and
  on the {n_ignore} {unit} that were already ignore (255). nnU-Net neither trains nor evaluates on them.
- Suspect {unit}: those where a class other than the given label has a probability above quality.tau ({tau}) (`suspect/`
  of the default export), in {quality["source"]}. They are found at the training resolution and brought to this space
  nearest-neighbour, as the {unit} the correction changed are.
- `imagesTr/<case>_0000{ending}`: the images; `dataset.json`: channel_names, labels, numTraining, file_ending.
- `label_quality.csv`: one row per training image, most suspicious first (the given labels' score).

To train nnU-Net, place the folder in `nnUNet_raw` as `DatasetNNN_Name` and run `nnUNetv2_plan_and_preprocess -d NNN`.
{back}"""
