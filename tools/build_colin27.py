"""Rebuild the embedded Colin27 + AAL dataset byte-for-byte from Debian's ``mricron-data``.

Usage::

    apt-get install mricron-data
    python tools/build_colin27.py            # rewrites adele/data/colin27.npz
    python tools/build_colin27.py --check    # exit 1 if the committed file differs
    python tools/build_colin27.py --atlas brodmann [--check]   # the second label set

    python tools/build_colin27.py --atlas structures [--check] # separate structures on background

The second label set (``colin27_brodmann.npz``, dataset name ``colin27-brodmann``)
labels the *same* slices, with the same split, from ``brodmann.nii.gz`` (Brodmann
areas on the same Colin27 grid, in the same package), grouped into 9 classes
(``BRODMANN_GROUPS``) of 0.7% to 5% of the brain: a second development task on
the embedded T1, so that a recipe can be checked beyond the AAL grouping. It
stores only labels; the images are those of ``colin27.npz``.

The third (``colin27_structures.npz``, dataset ``colin27-structures``) is the
regime of the ADELE paper, separate organs on background: five AAL structures
(``STRUCTURES``: caudate, thalamus, hippocampus, calcarine cortex, vermis; left
and right merged) on a background that is everything else, on the slices of
the same split that contain at least one of them. Where two structures come
within ``MARGIN`` pixels of each other in a slice, the pixels of both within
that distance of the other become background, so no two touch (at least a
2-pixel gap). It stores labels, ``slice_z`` and ``split`` of its slices; the
images are those of ``colin27.npz``.

Source volumes (both 181 x 217 x 181 voxels, 1 mm, same grid):

* ``ch2.nii.gz``: the Colin27 single-subject T1 MRI (Holmes et al. 1998).
* ``aal.nii.gz`` + ``aal.nii.txt``: the AAL atlas, 116 hand-drawn regions
  (Tzourio-Mazoyer et al. 2002) on that brain.

What the script does:

1. Axial slices (z) that contain at least one AAL voxel are kept, oriented
   with anterior up: ``slice = vol[:, :, z].T[::-1]`` gives (217, 181) = (H, W).
2. AAL regions are grouped into 9 anatomical classes (plus background) of very
   different sizes, by the AAL code's leading digits (see ``GROUPS``).
3. Intensities are normalized per volume: divided by the 99.5th percentile of
   the brain voxels, clipped to [0, 1] and quantized to uint8.
4. The slices are cut into contiguous blocks of ``BLOCK`` slices separated by
   ``GAP`` dropped slices, and the blocks go to train/val/test in the repeating
   pattern ``PATTERN``, so neighbouring slices never straddle two splits.
5. Arrays are written into a zip (npz) with fixed timestamps, so the output is
   identical on every run.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

SOURCE_DIR = Path("/usr/share/mricron/templates")
#: the embedded data files live in the package; this maintainer's script, outside it, writes them there
DATA_DIR = Path(__file__).resolve().parents[1] / "adele" / "data"
OUT_PATH = DATA_DIR / "colin27.npz"

#: class name -> AAL label indices (1-based, from aal.nii.txt)
GROUPS: dict[str, tuple[int, ...]] = {
    "frontal": tuple(range(1, 29)),  # precentral .. rectus (AAL 2xxx)
    "insula": (29, 30),  # 3xxx
    "cingulate": tuple(range(31, 37)),  # 40xx
    "hippocampus_amygdala": tuple(range(37, 43)),  # 41xx-42xx
    "occipital": tuple(range(43, 57)),  # 5xxx
    "parietal": tuple(range(57, 71)),  # 6xxx
    "deep_grey": tuple(range(71, 79)),  # caudate, putamen, pallidum, thalamus (7xxx)
    "temporal": tuple(range(79, 91)),  # 8xxx
    "cerebellum": tuple(range(91, 117)),  # cerebellum + vermis (9xxx)
}
CLASSES = ("background",) + tuple(GROUPS)

#: class name -> Brodmann area numbers (values of brodmann.nii.gz; 48 covers the insula and claustrum there)
BRODMANN_GROUPS: dict[str, tuple[int, ...]] = {
    "sensorimotor": (1, 2, 3, 4, 5, 43),
    "premotor": (6, 8),
    "prefrontal": (9, 10, 11, 44, 45, 46, 47),
    "visual": (17, 18, 19),
    "parietal_association": (7, 39, 40),
    "lateral_temporal": (20, 21, 22, 37, 38, 41, 42),
    "cingulate": (23, 24, 25, 26, 29, 30, 31, 32, 33),
    "medial_temporal": (27, 28, 34, 35, 36),
    "insular_ba48": (48,),
}
BRODMANN_CLASSES = ("background",) + tuple(BRODMANN_GROUPS)
BRODMANN_OUT_PATH = DATA_DIR / "colin27_brodmann.npz"

#: separate structures on background: class name -> AAL label indices (aal.nii.txt)
STRUCTURES: dict[str, tuple[int, ...]] = {
    "caudate": (71, 72),
    "thalamus": (77, 78),
    "hippocampus": (37, 38),
    "calcarine": (43, 44),
    "vermis": tuple(range(109, 117)),
}
STRUCTURES_CLASSES = ("background",) + tuple(STRUCTURES)
STRUCTURES_OUT_PATH = DATA_DIR / "colin27_structures.npz"
#: pixels of two structures closer than this (in-plane, 8-connected steps) become background
MARGIN = 2
BLOCK = 6
GAP = 2
PATTERN = ("train", "val", "train", "test", "train", "train")


def _load(name: str) -> np.ndarray:
    import nibabel as nib

    path = SOURCE_DIR / name
    if not path.exists():
        sys.exit(f"error: {path} not found; install it with `apt-get install mricron-data`")
    return np.asarray(nib.load(str(path)).dataobj)


def _grouped(name: str, groups: dict[str, tuple[int, ...]]) -> np.ndarray:
    """The atlas volume ``name`` with its label values mapped to classes 1.. in the order of ``groups`` (0 elsewhere)."""
    lut = np.zeros(256, dtype=np.uint8)
    for cls, values in enumerate(groups.values(), start=1):
        lut[list(values)] = cls
    return lut[_load(name).astype(np.int64)]


def build() -> dict[str, np.ndarray]:
    """Return the dataset arrays (see module docstring)."""
    t1 = _load("ch2.nii.gz").astype(np.float64)
    aal = _load("aal.nii.gz").astype(np.int64)
    lut = np.zeros(256, dtype=np.uint8)
    for cls, regions in enumerate(GROUPS.values(), start=1):
        lut[list(regions)] = cls
    classes = lut[aal]

    brain = aal > 0
    scale = np.percentile(t1[brain], 99.5)
    image = np.clip(t1 / scale, 0.0, 1.0)
    image = np.round(image * 255).astype(np.uint8)

    zs = np.flatnonzero(brain.any(axis=(0, 1)))
    images, labels, splits, slice_z = [], [], [], []
    block_idx, pos = 0, 0
    while pos + BLOCK <= len(zs):
        split = PATTERN[block_idx % len(PATTERN)]
        for z in zs[pos : pos + BLOCK]:
            images.append(image[:, :, z].T[::-1])
            labels.append(classes[:, :, z].T[::-1])
            splits.append(split)
            slice_z.append(int(z))
        pos += BLOCK + GAP
        block_idx += 1
    split_codes = {"train": 0, "val": 1, "test": 2}
    return {
        "images": np.ascontiguousarray(np.stack(images)),
        "labels": np.ascontiguousarray(np.stack(labels)),
        "split": np.array([split_codes[s] for s in splits], dtype=np.uint8),
        "slice_z": np.array(slice_z, dtype=np.int16),
        "classes": np.array(json.dumps(list(CLASSES))),
    }


def build_brodmann(base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Brodmann labels of the slices (``slice_z``) and split of ``base`` (the AAL build)."""
    classes = _grouped("brodmann.nii.gz", BRODMANN_GROUPS)
    labels = [classes[:, :, int(z)].T[::-1] for z in base["slice_z"]]
    return {
        "labels": np.ascontiguousarray(np.stack(labels)),
        "split": base["split"],
        "slice_z": base["slice_z"],
        "classes": np.array(json.dumps(list(BRODMANN_CLASSES))),
    }


def separate(label: np.ndarray, margin: int = MARGIN) -> np.ndarray:
    """(H, W) uint8 class map -> a copy where no two classes come within ``margin`` pixels (8-connected steps):
    pixels of a class within ``margin`` of another class become background, on both sides."""
    from scipy import ndimage

    out = label.copy()
    ids = [int(c) for c in np.unique(label) if c != 0]
    struct = np.ones((3, 3), dtype=bool)
    for c in ids:
        others = (label != 0) & (label != c)
        near = ndimage.binary_dilation(others, struct, iterations=margin) if others.any() else others
        out[(label == c) & near] = 0
    return out


def build_structures(base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Separate-structure labels of the slices of ``base`` (the AAL build) that contain one of ``STRUCTURES``."""
    classes = _grouped("aal.nii.gz", STRUCTURES)
    keep, labels = [], []
    for i, z in enumerate(base["slice_z"]):
        lab = separate(np.ascontiguousarray(classes[:, :, int(z)].T[::-1]))
        if lab.any():
            keep.append(i)
            labels.append(lab)
    keep = np.array(keep)
    return {
        "labels": np.ascontiguousarray(np.stack(labels)),
        "split": base["split"][keep],
        "slice_z": base["slice_z"][keep],
        "classes": np.array(json.dumps(list(STRUCTURES_CLASSES))),
    }


def write_npz(arrays: dict[str, np.ndarray], path: Path) -> bytes:
    """Write an npz whose bytes depend only on the arrays (fixed zip timestamps)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key in sorted(arrays):
            npy = io.BytesIO()
            np.lib.format.write_array(npy, np.asanyarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, npy.getvalue(), compresslevel=9)
    data = buf.getvalue()
    path.write_bytes(data)
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--atlas", choices=["aal", "brodmann", "structures"], default="aal", help="which label set to build")
    parser.add_argument("--out", type=Path, default=None, help="default: the embedded file of that atlas")
    parser.add_argument("--check", action="store_true", help="compare with the existing file instead of replacing it")
    args = parser.parse_args(argv)
    arrays = build()
    if args.atlas == "brodmann":
        arrays = build_brodmann(arrays)
    elif args.atlas == "structures":
        arrays = build_structures(arrays)
    if args.out is None:
        args.out = {"aal": OUT_PATH, "brodmann": BRODMANN_OUT_PATH, "structures": STRUCTURES_OUT_PATH}[args.atlas]
    if args.check:
        tmp = args.out.with_suffix(".check.npz")
        new = write_npz(arrays, tmp)
        tmp.unlink()
        old = args.out.read_bytes() if args.out.exists() else b""
        same = new == old
        print(f"{'identical' if same else 'DIFFERENT'}: sha256 {hashlib.sha256(new).hexdigest()}")
        return 0 if same else 1
    data = write_npz(arrays, args.out)
    counts = {s: int((arrays['split'] == i).sum()) for i, s in enumerate(("train", "val", "test"))}
    print(f"wrote {args.out} ({len(data) / 1e6:.2f} MB, sha256 {hashlib.sha256(data).hexdigest()[:16]}), slices {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
