"""PASCAL VOC 2012 with pseudo-labels from a weakly supervised method -> the generic dataset format.

Input::

    VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    VOCdevkit/VOC2012/SegmentationClass/<id>.png            palette PNGs, 255 = boundary (ignored)
    VOCdevkit/VOC2012/SegmentationClassAug/<id>.png         optional (SBD-augmented true labels)
    VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val}.txt
    VOCdevkit/VOC2012/ImageSets/SegmentationAug/train_aug.txt   (or ImageSets/Segmentation/train_aug.txt)
    PSEUDO/<id>.png                                          one pseudo-label per training id (CAM, SEAM, ...)

Output (``adele data prepare voc VOCdevkit OUT --pseudo PSEUDO``)::

    OUT/dataset.json                   the 21 VOC classes, ignore_index 255
    OUT/train/images/<id>.jpg          copies (or symlinks with --link) of the JPEGs
    OUT/train/labels/<id>.png          the pseudo-labels: what ADELE trains on and corrects
    OUT/train/labels_clean/<id>.png    true labels, for analysis only (see below)
    OUT/val/images/<id>.jpg, OUT/val/labels/<id>.png     true labels: mIoU over 21 classes
    OUT/prepare.json                   lists, counts, where the clean labels came from

True training labels come from ``SegmentationClassAug`` when present, else
``SegmentationClass``. ``train_aug`` ids without a true label (most of the
10,582 have none without SBD) get an all-255 ("unknown") clean map, so the
analysis simply ignores them; ``labels_clean`` is left out when no id has one.
Pseudo-labels may be class-index PNGs (grayscale or palette) or VOC-coloured
RGB PNGs; all are written as uint8 class-id PNGs.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DatasetError
from ..safety import staged_output
from .folder import write_dataset_json
from .io import check_readable, write_array

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
IGNORE = 255


def voc_palette() -> np.ndarray:
    """The standard VOC colour map: ``uint8 (256, 3)``; class c has colour ``palette[c]``, 255 is (224, 224, 192)."""
    pal = np.zeros((256, 3), np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def find_voc_root(path: str | Path) -> Path:
    """``VOCdevkit`` or ``VOCdevkit/VOC2012`` -> the folder that holds ``JPEGImages``."""
    p = Path(path)
    for cand in (p, p / "VOC2012", p / "VOCdevkit" / "VOC2012"):
        if (cand / "JPEGImages").is_dir():
            return cand
    raise DatasetError(f"{p}: no JPEGImages folder here or in {p / 'VOC2012'}; pass the VOCdevkit folder (VOCdevkit/VOC2012/JPEGImages/...)")


def read_id_list(path: Path) -> list[str]:
    """Ids from an ImageSets list; also accepts DeepLab-style lines ``/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png``."""
    ids = []
    for line in path.read_text().splitlines():
        tok = line.strip().split()
        if not tok:
            continue
        name = tok[0].rsplit("/", 1)[-1]
        ids.append(name[:-4] if name.lower().endswith((".jpg", ".png")) else name)
    if not ids:
        raise DatasetError(f"{path}: empty image list")
    return ids


def train_list_path(root: Path, which: str) -> Path:
    if which == "train":
        cands = [root / "ImageSets" / "Segmentation" / "train.txt"]
    elif which == "train_aug":
        cands = [root / "ImageSets" / "SegmentationAug" / "train_aug.txt", root / "ImageSets" / "Segmentation" / "train_aug.txt"]
    else:
        raise DatasetError(f"--train-list must be train or train_aug, got {which!r}")
    for c in cands:
        if c.is_file():
            return c
    raise DatasetError(f"{cands[0]}: missing; put the {which} list there" + (f" (or at {cands[1]})" if len(cands) > 1 else "") + " or use --train-list train")


def read_voc_label(path: Path, num_classes: int = len(VOC_CLASSES)) -> np.ndarray:
    """A VOC-style label PNG -> ``uint8 (H, W)`` class ids (palette, grayscale, or VOC-coloured RGB)."""
    from PIL import Image

    check_readable(path)
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            arr = np.asarray(im.convert("RGB") if mode in ("RGBA", "PA") else im)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a file problem
        raise DatasetError(f"{path}: cannot be decoded ({type(exc).__name__}); replace it with a class-index PNG") from None
    if arr.ndim == 3:
        pal = voc_palette()
        key = (arr[..., 0].astype(np.int64) << 16) | (arr[..., 1].astype(np.int64) << 8) | arr[..., 2]
        lut = {int(r) << 16 | int(g) << 8 | int(b): i for i, (r, g, b) in enumerate(pal[:num_classes])}
        lut[int(pal[IGNORE][0]) << 16 | int(pal[IGNORE][1]) << 8 | int(pal[IGNORE][2])] = IGNORE
        uniq, inv = np.unique(key, return_inverse=True)
        bad = [u for u in uniq.tolist() if u not in lut]
        if bad:
            u = bad[0]
            raise DatasetError(f"{path}: RGB colour {(u >> 16, (u >> 8) & 255, u & 255)} is not a VOC class colour; save labels as class-index PNGs")
        arr = np.array([lut[u] for u in uniq.tolist()], np.uint8)[inv.reshape(key.shape)]
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise DatasetError(f"{path}: label has shape {arr.shape} ({arr.dtype}); expected (H, W) class ids")
    bad = (arr >= num_classes) & (arr != IGNORE)
    if bad.any():
        raise DatasetError(f"{path}: has class {int(arr[bad].max())}; VOC has {num_classes} classes (0..{num_classes - 1}, {IGNORE} = ignore)")
    return arr.astype(np.uint8)


def _image_size(path: Path) -> tuple[int, int]:
    """(H, W) from the file header, without decoding the pixels."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except Exception as exc:  # noqa: BLE001
        raise DatasetError(f"{path}: cannot be opened as an image ({type(exc).__name__})") from None


def _put_image(src: Path, dst: Path, link: bool) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if link:
        os.symlink(src.resolve(), dst)
    else:
        shutil.copyfile(src, dst)


def prepare_voc(
    devkit: str | Path,
    out_dir: str | Path,
    pseudo_dir: str | Path,
    train_list: str = "train_aug",
    link: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Write VOC 2012 + pseudo-labels in the generic format (see module docstring); returns the ``prepare.json`` summary."""
    root = find_voc_root(devkit)
    pseudo = Path(pseudo_dir)
    if not pseudo.is_dir():
        raise DatasetError(f"{pseudo}: pseudo-label folder not found; pass --pseudo DIR with one <id>.png per training image")
    jpeg = root / "JPEGImages"
    val_list = root / "ImageSets" / "Segmentation" / "val.txt"
    if not val_list.is_file():
        raise DatasetError(f"{val_list}: missing; the VOC 2012 val list is needed for evaluation")
    train_ids = read_id_list(train_list_path(root, train_list))
    val_ids = read_id_list(val_list)
    overlap = set(train_ids) & set(val_ids)
    if overlap:
        log(f"warning: {len(overlap)} id(s) of the {train_list} list are also in val; dropped from train")
        train_ids = [i for i in train_ids if i not in overlap]
    seg, seg_aug = root / "SegmentationClass", root / "SegmentationClassAug"
    clean_dirs = [d for d in (seg_aug, seg) if d.is_dir()]
    # validate every input before writing anything
    for i in train_ids:
        if not (jpeg / f"{i}.jpg").is_file():
            raise DatasetError(f"{jpeg / (i + '.jpg')}: missing image for train id {i}")
        if not (pseudo / f"{i}.png").is_file():
            raise DatasetError(f"{pseudo / (i + '.png')}: missing pseudo-label for train id {i}; every id of the {train_list} list needs one")
    for i in val_ids:
        if not (jpeg / f"{i}.jpg").is_file():
            raise DatasetError(f"{jpeg / (i + '.jpg')}: missing image for val id {i}")
        if not (seg / f"{i}.png").is_file():
            raise DatasetError(f"{seg / (i + '.png')}: missing true label for val id {i}")
    clean_src = {i: next((d / f"{i}.png" for d in clean_dirs if (d / f"{i}.png").is_file()), None) for i in train_ids}
    n_clean = sum(p is not None for p in clean_src.values())
    with staged_output(out_dir, "data prepare voc", [devkit, pseudo], overwrite, flag="output folder") as tmp:
        write_dataset_json(tmp, "voc2012-wsss", VOC_CLASSES, IGNORE)
        for k, i in enumerate(train_ids):
            src = jpeg / f"{i}.jpg"
            shape = _image_size(src)
            lab = read_voc_label(pseudo / f"{i}.png")
            if lab.shape != shape:
                raise DatasetError(f"{pseudo / (i + '.png')}: pseudo-label shape {lab.shape} differs from image {src.name} {shape}")
            _put_image(src, tmp / "train" / "images" / f"{i}.jpg", link)
            write_array(tmp / "train" / "labels" / f"{i}.png", lab)
            if n_clean:
                c = read_voc_label(clean_src[i]) if clean_src[i] is not None else np.full(shape, IGNORE, np.uint8)
                if c.shape != shape:
                    raise DatasetError(f"{clean_src[i]}: label shape {c.shape} differs from image {src.name} {shape}")
                write_array(tmp / "train" / "labels_clean" / f"{i}.png", c)
            if (k + 1) % 1000 == 0:
                log(f"train: {k + 1}/{len(train_ids)}")
        for i in val_ids:
            src = jpeg / f"{i}.jpg"
            lab, shape = read_voc_label(seg / f"{i}.png"), _image_size(src)
            if lab.shape != shape:
                raise DatasetError(f"{seg / (i + '.png')}: label shape {lab.shape} differs from image {src.name} {shape}")
            _put_image(src, tmp / "val" / "images" / f"{i}.jpg", link)
            write_array(tmp / "val" / "labels" / f"{i}.png", lab)
        summary = {
            "dataset": "voc2012-wsss", "source": str(root), "pseudo_labels": str(pseudo), "train_list": train_list,
            "images": {"train": len(train_ids), "val": len(val_ids)},
            "train_clean_labels": {"available": n_clean, "unknown_all_ignore": len(train_ids) - n_clean if n_clean else 0,
                                   "from": [d.name for d in clean_dirs] if n_clean else []},
            "images_linked": link,
        }
        (tmp / "prepare.json").write_text(json.dumps(summary, indent=1) + "\n")
    log(f"wrote {out_dir}: train {len(train_ids)} (pseudo-labels; true labels for {n_clean}), val {len(val_ids)}")
    return summary
