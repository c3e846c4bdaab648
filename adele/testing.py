"""Small datasets for tests and examples: a synthetic folder dataset and a subset of the embedded data."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from .data import load_colin27
from .data.folder import ArraySplit, Source, write_dataset_json
from .data.io import write_array


def make_dataset(root: Path, n_train=4, n_val=2, n_test=2, size=(24, 20), classes=3, clean=False, fmt="png", seed=0):
    """Write a tiny dataset in the generic format; returns root."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    write_dataset_json(root, "tiny", ["background"] + [f"c{i}" for i in range(1, classes)], 255)
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        for i in range(n):
            lab = np.zeros(size, np.uint8)
            for c in range(1, classes):
                y, x = rng.integers(0, size[0] - 8), rng.integers(0, size[1] - 8)
                lab[y : y + 8, x : x + 8] = c
            img = (lab * 60 + rng.integers(0, 30, size)).astype(np.uint8)
            write_array(root / split / "images" / f"im{i:02d}.{fmt}", img)
            write_array(root / split / "labels" / f"im{i:02d}.{fmt}", lab)
            if clean and split == "train":
                write_array(root / split / "labels_clean" / f"im{i:02d}.{fmt}", lab)
    return root


def small_colin27(n_train=16, n_eval=6, spread: str = "step") -> Source:
    """A subset of the embedded Colin27 slices: ``n_train`` training, ``n_eval`` validation and test slices each.

    ``spread="step"``: every (len // n)-th slice from the first; ``"ends"``: n slices evenly spaced from the first
    to the last (``np.linspace``).
    """
    if spread not in ("step", "ends"):
        raise ValueError(f"spread must be 'step' or 'ends', got {spread!r}")
    full = load_colin27()
    splits = {}
    for name, n in (("train", n_train), ("val", n_eval), ("test", n_eval)):
        s = full.splits[name]
        if spread == "step":
            idx = np.arange(0, len(s), max(1, len(s) // n))[:n]
        else:
            idx = np.linspace(0, len(s) - 1, n).round().astype(int)
        splits[name] = ArraySplit(tuple(s.ids[i] for i in idx), s.images[idx], s.labels[idx])
    return Source(full.name, full.classes, 255, splits)


def write_source(src: Source, root: Path, name: Optional[str] = None) -> Path:
    """Write an in-memory dataset (its images and labels, as PNG) as a folder in the generic format; returns root."""
    root = Path(root)
    for split_name, split in src.splits.items():
        for i, sid in enumerate(split.ids):
            write_array(root / split_name / "images" / f"{sid}.png", split.images[i])
            write_array(root / split_name / "labels" / f"{sid}.png", split.labels[i])
    write_dataset_json(root, name or src.name, src.classes, src.ignore_index)
    return root


def make_volume_dataset(root: Path, layout: str = "generic", n_subjects: int = 5, channels: int = 1, noisy: bool = False,
                        shape=(14, 20, 24), test_cases: int = 0, seed: int = 0) -> Path:
    """Write a tiny multi-subject volume dataset (NIfTI) in the ``generic`` or ``nnunet`` layout; returns root.

    Volumes are stored in a non-canonical orientation (axes permuted and flipped,
    like many scanner exports) with anisotropic voxels (0.8 x 1.1 x 2.5 mm):
    stored axis 0 runs superior->inferior, axis 1 left->right, axis 2 anterior->posterior.
    Two ellipsoids (classes 1, 2) per subject; channel c has intensity (c + 1) * 100 * label + noise.
    ``noisy`` adds a labels*_noisy folder with the classes' masks eroded/dilated by one voxel.
    """
    import json

    import nibabel as nib
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    root = Path(root)
    # stored (i, j, k) -> world: x = 1.1 * j (L->R is -x in RAS... here +x), y = -0.8 * k ... a permuted, flipped frame
    affine = np.array([[0.0, -1.1, 0.0, 12.0], [0.0, 0.0, -0.8, 30.0], [-2.5, 0.0, 0.0, 40.0], [0, 0, 0, 1.0]])
    nn = layout == "nnunet"
    img_dir, lab_dir = root / ("imagesTr" if nn else "images"), root / ("labelsTr" if nn else "labels")
    noisy_dir = root / ("labelsTr_noisy" if nn else "labels_noisy")
    for d in (img_dir, lab_dir) + ((noisy_dir,) if noisy else ()):
        d.mkdir(parents=True, exist_ok=True)
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=float) for s in shape], indexing="ij"), -1)

    def case(name: str, folder: Path, lab_folder: Optional[Path]):
        lab = np.zeros(shape, np.uint8)
        for cls in (1, 2):
            c = np.array([rng.uniform(0.3, 0.7) * s for s in shape])
            r = np.array([rng.uniform(0.2, 0.3) * s for s in shape]) * np.array([1.0, 1.0, 1.0])
            lab[(((grid - c) / r) ** 2).sum(-1) <= 1] = cls
        chans = [((ch + 1) * 100.0 * lab + rng.normal(0, 20, shape) + 50).astype(np.float32) for ch in range(channels)]
        if nn:
            for ch, arr in enumerate(chans):
                nib.save(nib.Nifti1Image(arr, affine), str(folder / f"{name}_{ch:04d}.nii.gz"))
        else:
            arr = chans[0] if channels == 1 else np.stack(chans, -1)
            nib.save(nib.Nifti1Image(arr, affine), str(folder / f"{name}.nii.gz"))
        if lab_folder is not None:
            li = nib.Nifti1Image(lab, affine)
            li.header["descrip"] = b"labels " + name.encode()
            nib.save(li, str(lab_folder / f"{name}.nii.gz"))
            if noisy:
                nz = lab.copy()
                nz[ndimage.binary_dilation(lab == 1) & (lab == 0)] = 1
                nz[(lab == 2) & ~ndimage.binary_erosion(lab == 2)] = 0
                nib.save(nib.Nifti1Image(nz, affine), str(noisy_dir / f"{name}.nii.gz"))

    for i in range(n_subjects):
        case(f"sub{i:02d}", img_dir, lab_dir)
    if test_cases:
        (root / "imagesTs").mkdir(exist_ok=True)
        for i in range(test_cases):
            case(f"test{i:02d}", root / "imagesTs", None)
    if nn:
        meta = {"channel_names": {str(c): ("T1", "T2", "FLAIR")[c % 3] for c in range(channels)},
                "labels": {"background": 0, "left_blob": 1, "right_blob": 2}, "numTraining": n_subjects, "file_ending": ".nii.gz",
                "name": "tinyvol"}
    else:
        meta = {"name": "tinyvol", "classes": ["background", "left_blob", "right_blob"]}
    (root / "dataset.json").write_text(json.dumps(meta, indent=1))
    return root


def add_nnunet_ignore(root: Path, subjects=("sub00", "sub01"), band=(5, 9)) -> Path:
    """Declare nnU-Net's ignore label (``"ignore": 3``, after the 3 classes) in a :func:`make_volume_dataset` nnU-Net folder
    and give it to a band of voxels (stored axis 1 in ``band``, every slice) in the labels of ``subjects``; returns root."""
    import json

    import nibabel as nib

    meta = json.loads((root / "dataset.json").read_text())
    meta["labels"]["ignore"] = len(meta["labels"])
    (root / "dataset.json").write_text(json.dumps(meta, indent=1))
    for s in subjects:
        path = root / "labelsTr" / f"{s}.nii.gz"
        img = nib.load(path)
        lab = np.asarray(img.dataobj).copy()
        lab[:, band[0] : band[1], :] = meta["labels"]["ignore"]
        nib.save(nib.Nifti1Image(lab, img.affine, img.header), str(path))
    return root


#: overrides that make a tiny ADELE run correct labels within 3 epochs (the detection's refusals off, a round every epoch)
ADELE_FORCED = ["method=adele", "train.epochs=3", "adele.detection.min_peak_iou=0", "adele.detection.min_rise=0",
                "adele.detection.trim_flat=null", "adele.detection.horizon=3", "adele.correction.every=1"]
