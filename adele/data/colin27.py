"""The embedded dataset: Colin27 T1 MRI + AAL atlas, 2D axial slices, 10 classes.

Built by ``tools/build_colin27.py`` (in the repository, not the package) from Debian's ``mricron-data``
(BSD-3-clause; see ``COLIN27-LICENSE.txt`` beside this file). 108 slices of
217 x 181 pixels: 72 train, 18 val, 18 test, split by contiguous blocks of 6
slices with 2 slices dropped between blocks.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..safety import staged_output
from .folder import ArraySplit, Source, write_dataset_json
from .io import write_array
from .nnunet import image_name, write_nnunet_json

NPZ_PATH = Path(__file__).with_name("colin27.npz")
BRODMANN_NPZ_PATH = Path(__file__).with_name("colin27_brodmann.npz")
STRUCTURES_NPZ_PATH = Path(__file__).with_name("colin27_structures.npz")
NAME = "colin27"
#: embedded dataset names -> atlas of their labels (same images and split)
DATASETS = {"colin27": "aal", "colin27-brodmann": "brodmann", "colin27-structures": "structures"}
#: label files of the other label sets (built by tools/build_colin27.py --atlas NAME)
_LABEL_FILES = {"brodmann": BRODMANN_NPZ_PATH, "structures": STRUCTURES_NPZ_PATH}
SPLIT_NAMES = ("train", "val", "test")


@lru_cache(maxsize=2)
def _arrays(atlas: str = "aal") -> dict[str, np.ndarray]:
    with np.load(NPZ_PATH, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    if atlas == "aal":
        return out
    if atlas not in _LABEL_FILES:
        raise ValueError(f"atlas must be one of {['aal', *_LABEL_FILES]}, got {atlas!r}")
    path = _LABEL_FILES[atlas]
    with np.load(path, allow_pickle=False) as z:
        extra = {k: z[k] for k in z.files}
    # a label set covers the same slices as the images, or a subset of them (separate structures)
    pos = {int(z): i for i, z in enumerate(out["slice_z"])}
    rows = np.array([pos.get(int(z), -1) for z in extra["slice_z"]])
    if (rows < 0).any() or not np.array_equal(out["split"][rows], extra["split"]):
        raise DatasetError(f"{path.name} does not match {NPZ_PATH.name}; rebuild it with "
                       f"`python tools/build_colin27.py --atlas {atlas}`")
    out["images"] = out["images"][rows]
    out.update(extra)
    return out


def load_colin27(atlas: str = "aal") -> Source:
    """Return the embedded dataset as an in-memory :class:`Source`.

    Images are uint8 ``(N, 217, 181)`` (served as float32 in [0, 1]); labels uint8.
    ``atlas="aal"`` (dataset ``colin27``, 9 AAL lobe classes that tile the brain), ``"brodmann"``
    (dataset ``colin27-brodmann``: the same slices and split, 9 groups of Brodmann areas) or
    ``"structures"`` (dataset ``colin27-structures``: 5 separate structures on background, the
    slices of the same split that contain them; 34 train, 6 val, 12 test).
    """
    a = _arrays(atlas)
    classes = tuple(json.loads(str(a["classes"])))
    splits = {}
    for code, split in enumerate(SPLIT_NAMES):
        idx = np.flatnonzero(a["split"] == code)
        ids = tuple(f"z{int(a['slice_z'][i]):03d}" for i in idx)
        splits[split] = ArraySplit(ids=ids, images=a["images"][idx], labels=a["labels"][idx])
    name = next(n for n, at in DATASETS.items() if at == atlas)
    return Source(name=name, classes=classes, ignore_index=255, splits=splits)


def export_colin27(out: str | Path, overwrite: bool = False, name: str = NAME) -> Path:
    """Write the embedded dataset ``name`` (a key of :data:`DATASETS`) to ``out`` in the generic format (8-bit PNGs)."""
    out = Path(out)
    if name not in DATASETS:
        raise ValueError(f"no embedded dataset {name!r}; the embedded ones are {', '.join(DATASETS)}")
    src = load_colin27(DATASETS[name])
    with staged_output(out, "data export", overwrite=overwrite, flag="output folder") as tmp:
        for split_name, split in src.splits.items():
            for i, sid in enumerate(split.ids):
                write_array(tmp / split_name / "images" / f"{sid}.png", split.images[i])
                write_array(tmp / split_name / "labels" / f"{sid}.png", split.labels[i])
        write_dataset_json(tmp, name, src.classes, 255)
        lic = Path(__file__).with_name("COLIN27-LICENSE.txt")
        (tmp / "LICENSE.txt").write_text(lic.read_text())
    return out


def export_colin27_volumes(out: str | Path, overwrite: bool = False, layout: str = "generic") -> Path:
    """Write the embedded data as a volume dataset (NIfTI) in the generic or the nnU-Net layout, for ``adele data prepare volumes``.

    Colin27 is one brain; its 18 blocks of 6 contiguous axial slices become 18
    pseudo-subjects (``c27_b00`` .. ``c27_b17``), 181 x 217 x 6 voxels of 1 mm,
    stored as the source volume was (x left->right, y posterior->anterior, z
    inferior->superior; the affine places each block at its height in the
    brain). Blocks are neighbours in one head, not independent subjects: a split
    by subject here keeps slices of a block together, nothing more.

        OUT/images/c27_bNN.nii.gz   uint8 T1 intensities (the embedded 0..255 values)
        OUT/labels/c27_bNN.nii.gz   uint8 class ids (10 classes)
        OUT/dataset.json            {"name": "colin27-volumes", "classes": [...], "channel_names": {"0": "T1"}}
        OUT/split.json              the embedded data's split by block (``--split-file`` of ``adele data prepare volumes``)

    ``layout="nnunet"``: an nnU-Net v2 raw dataset instead. The embedded train and val blocks are its training
    cases (imagesTr/c27_bNN_0000.nii.gz, labelsTr/c27_bNN.nii.gz; folds come from ``--fold``), the test blocks its
    test cases with their labels (imagesTs/, labelsTs/); dataset.json has channel_names, labels, numTraining and
    file_ending.
    """
    if layout not in ("generic", "nnunet"):
        raise ValueError(f"layout must be 'generic' or 'nnunet', got {layout!r}")
    import nibabel as nib

    a = _arrays()
    classes = json.loads(str(a["classes"]))
    z = a["slice_z"].astype(int)
    blocks: list[list[int]] = [[0]]
    for i in range(1, len(z)):
        if z[i] != z[i - 1] + 1:
            blocks.append([])
        blocks[-1].append(i)
    split = {name: [f"c27_b{b:02d}" for b, idx in enumerate(blocks) if int(a["split"][idx[0]]) == code]
             for code, name in enumerate(SPLIT_NAMES)}
    nnunet = layout == "nnunet"
    with staged_output(out, "data export", overwrite=overwrite, flag="output folder") as tmp:
        for b, idx in enumerate(blocks):
            case = f"c27_b{b:02d}"
            # embedded slice = vol[:, :, z].T[::-1]  ->  vol[:, :, z] = slice[::-1].T
            img = np.stack([a["images"][i][::-1].T for i in idx], axis=-1)
            lab = np.stack([a["labels"][i][::-1].T for i in idx], axis=-1)
            affine = np.diag([1.0, 1.0, 1.0, 1.0])
            affine[:3, 3] = (-90.0, -126.0, -72.0 + float(z[idx[0]]))
            tr = "Ts" if case in split["test"] else "Tr"
            files = ((f"images{tr}/{image_name(case, 0, '.nii.gz')}", img), (f"labels{tr}/{case}.nii.gz", lab)) if nnunet \
                else ((f"images/{case}.nii.gz", img), (f"labels/{case}.nii.gz", lab))
            for name, arr in files:
                (tmp / name).parent.mkdir(exist_ok=True)
                im = nib.Nifti1Image(np.ascontiguousarray(arr, dtype=np.uint8), affine)
                im.header.set_xyzt_units("mm")
                nib.save(im, str(tmp / name))
        if nnunet:
            write_nnunet_json(tmp, "colin27-volumes", {"0": "T1"}, classes, len(split["train"]) + len(split["val"]), ".nii.gz")
        else:
            (tmp / "dataset.json").write_text(json.dumps({"name": "colin27-volumes", "classes": list(classes),
                                                          "channel_names": {"0": "T1"}}, indent=2) + "\n")
            (tmp / "split.json").write_text(json.dumps(split, indent=1) + "\n")
        (tmp / "LICENSE.txt").write_text(Path(__file__).with_name("COLIN27-LICENSE.txt").read_text())
    return Path(out)
