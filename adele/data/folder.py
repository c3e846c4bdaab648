"""The generic dataset format, and sources that serve images and labels by index.

Layout::

    DIR/dataset.json            {"name": ..., "classes": ["background", ...], "ignore_index": 255}
    DIR/{train,val,test}/images/<id>.png|.npy|.nii.gz
    DIR/{train,val,test}/labels/<id>.png|.npy|.nii.gz      uint8 class ids; 255 = ignore
    DIR/train/labels_clean/<id>.*                          optional, analysis only

:func:`open_dataset` validates everything before any training starts; every
violation is a one-line :class:`~adele.errors.DatasetError`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol, Sequence

import numpy as np

from ..errors import DatasetError
from .io import SUFFIXES, read_image, read_label, stem_of, suffix_of

SPLITS = ("train", "val", "test")


class Split(Protocol):
    """One split: ``len``, ids, and loaders by index."""

    ids: Sequence[str]

    def __len__(self) -> int: ...
    def image(self, i: int) -> np.ndarray: ...  # float32 (H, W) or (H, W, 3)
    def label(self, i: int) -> np.ndarray: ...  # uint8 (H, W)
    def clean_label(self, i: int) -> Optional[np.ndarray]: ...  # uint8 (H, W) or None
    @property
    def has_clean(self) -> bool: ...


@dataclass
class Source:
    """A dataset: class names, ignore index and its splits."""

    name: str
    classes: tuple[str, ...]
    ignore_index: int
    splits: dict[str, Split]
    root: Optional[Path] = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass
class FolderSplit:
    """A split of a dataset folder; files are read on demand."""

    ids: tuple[str, ...]
    image_paths: tuple[Path, ...]
    label_paths: tuple[Path, ...]
    clean_paths: Optional[tuple[Path, ...]] = None
    #: filled by :func:`open_dataset` when it decodes the files: ((H, W, channels) per image, labelled pixels of ``labels``)
    checked: Optional[tuple[tuple[tuple[int, int, int], ...], int]] = None

    def __len__(self) -> int:
        return len(self.ids)

    def image(self, i: int) -> np.ndarray:
        return read_image(self.image_paths[i])

    def label(self, i: int) -> np.ndarray:
        return read_label(self.label_paths[i])

    def clean_label(self, i: int) -> Optional[np.ndarray]:
        return None if self.clean_paths is None else read_label(self.clean_paths[i])

    @property
    def has_clean(self) -> bool:
        return self.clean_paths is not None


@dataclass
class ArraySplit:
    """A split held in memory: images ``(N, H, W)`` (float or uint8 in [0,255]), labels ``(N, H, W)`` uint8."""

    ids: tuple[str, ...]
    images: np.ndarray
    labels: np.ndarray
    clean: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.ids)

    def image(self, i: int) -> np.ndarray:
        img = self.images[i]
        return img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)

    def label(self, i: int) -> np.ndarray:
        return self.labels[i]

    def clean_label(self, i: int) -> Optional[np.ndarray]:
        return None if self.clean is None else self.clean[i]

    @property
    def has_clean(self) -> bool:
        return self.clean is not None


def _files_by_stem(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_symlink() and not p.exists():
            raise DatasetError(f"{p}: broken symbolic link (its target {os.readlink(p)} does not exist); restore the target or remove the link")
        if not p.is_file():
            continue
        if not suffix_of(p):
            raise DatasetError(f"{p}: unsupported file type; use one of {', '.join(SUFFIXES)} or remove it")
        stem = stem_of(p)
        if stem in out:
            raise DatasetError(f"{p}: two files share the id '{stem}' ({out[stem].name}); keep one")
        out[stem] = p
    return out


def read_dataset_json(root: Path) -> tuple[str, tuple[str, ...], int]:
    meta_path = root / "dataset.json"
    if meta_path.is_dir():
        raise DatasetError(f"{meta_path}: is a folder, not a file; replace it with a JSON file "
                           f"{{\"name\": ..., \"classes\": [\"background\", ...], \"ignore_index\": 255}}")
    if not meta_path.is_file():
        raise DatasetError(f"{meta_path}: missing; create it with {{\"name\": ..., \"classes\": [\"background\", ...], \"ignore_index\": 255}}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8-sig"))  # a UTF-8 byte-order mark is accepted
    except PermissionError:
        raise DatasetError(f"{meta_path}: cannot be read (permission denied); make it readable (chmod a+r)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{meta_path}: not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc}); fix the syntax") from None
    if not isinstance(meta, dict):
        raise DatasetError(f"{meta_path}: must be a JSON object with 'classes'")
    if "classes" not in meta and isinstance(meta.get("labels"), dict):
        raise DatasetError(f"{root}: is an nnU-Net dataset (dataset.json has 'labels', not 'classes'); convert it first with "
                           f"`adele data prepare volumes {root} OUT`, then train on OUT")
    classes = meta.get("classes")
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise DatasetError(f"{meta_path}: 'classes' must be a list of at least 2 class names, background first")
    seen: dict[str, int] = {}
    for i, c in enumerate(classes):
        key = c.strip().lower()
        if not key:
            raise DatasetError(f"{meta_path}: class {i} has an empty name; give every class a name")
        if any(ch in c for ch in "\n\r\t") or not c.isprintable():
            raise DatasetError(f"{meta_path}: class {i} ({c!r}) contains a line break, tab or control character; "
                               "use a one-line name (tables and CSV files list classes one per cell)")
        if key in seen:
            raise DatasetError(f"{meta_path}: classes {seen[key]} and {i} are both named '{c}'; class names must be unique (metrics are reported by name)")
        seen[key] = i
    if len(classes) > 255:
        raise DatasetError(f"{meta_path}: at most 255 classes are supported (ids 0..254)")
    ignore = meta.get("ignore_index", 255)
    if not isinstance(ignore, int) or not (len(classes) <= ignore <= 255):
        raise DatasetError(f"{meta_path}: 'ignore_index' must be an integer in {len(classes)}..255, got {ignore!r}")
    name = str(meta.get("name", root.name))
    return name, tuple(classes), ignore


def open_dataset(
    root: str | Path,
    splits: Sequence[str] = SPLITS,
    required: Sequence[str] = ("train", "val"),
    check_files: bool = True,
) -> Source:
    """Open and validate a dataset folder (see module docstring).

    With ``check_files`` every image and label is decoded once: shapes must
    match and class ids must be < len(classes) or equal ``ignore_index``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found; pass a folder in the generic format or 'colin27'")
    name, classes, ignore = read_dataset_json(root)
    out: dict[str, Split] = {}
    for split in splits:
        sdir = root / split
        if not sdir.exists():
            if split in required:
                raise DatasetError(f"{sdir}: split folder missing; create {split}/images and {split}/labels")
            continue
        img_dir, lab_dir = sdir / "images", sdir / "labels"
        for d in (img_dir, lab_dir):
            if not d.is_dir():
                raise DatasetError(f"{d}: folder missing; every split needs images/ and labels/")
        images, labels = _files_by_stem(img_dir), _files_by_stem(lab_dir)
        if not images:
            raise DatasetError(f"{img_dir}: empty split; add images or remove the '{split}' folder")
        for stem, p in images.items():
            if stem not in labels:
                raise DatasetError(f"{p}: no label with id '{stem}' in {lab_dir}; add {split}/labels/{stem}.png or remove the image")
        for stem, p in labels.items():
            if stem not in images:
                raise DatasetError(f"{p}: label has no image with id '{stem}' in {img_dir}; add the image or remove the label")
        ids = tuple(images)
        clean = None
        clean_dir = sdir / "labels_clean"
        if clean_dir.is_dir():
            cl = _files_by_stem(clean_dir)
            missing = [s for s in ids if s not in cl]
            if missing:
                raise DatasetError(f"{clean_dir}: no clean label for id '{missing[0]}'; labels_clean must cover every image or be removed")
            clean = tuple(cl[s] for s in ids)
        fs = FolderSplit(ids, tuple(images[s] for s in ids), tuple(labels[s] for s in ids), clean)
        if check_files:
            _check_split(fs, len(classes), ignore)
        out[split] = fs
    return Source(name=name, classes=classes, ignore_index=ignore, splits=out, root=root)


def check_label_values(label: np.ndarray, num_classes: int, ignore_index: int, where: str) -> None:
    bad = (label >= num_classes) & (label != ignore_index)
    if bad.any():
        v = int(label[bad].max())
        raise DatasetError(
            f"{where}: has class {v} but dataset.json lists {num_classes} classes (ids 0..{num_classes - 1}, {ignore_index} = ignore); fix the label or the class list"
        )


def image_info(img: np.ndarray) -> tuple[int, int, int]:
    """(H, W, channels) of an image as sources return it."""
    return int(img.shape[0]), int(img.shape[1]), int(img.shape[2]) if img.ndim == 3 else 1


def _check_split(split: FolderSplit, num_classes: int, ignore_index: int) -> None:
    infos, labelled = [], 0
    for i in range(len(split)):
        img = split.image(i)
        infos.append(image_info(img))
        for k, paths in enumerate((split.label_paths, split.clean_paths)):
            if paths is None:
                continue
            lab = read_label(paths[i])
            if lab.shape != img.shape[:2]:
                raise DatasetError(
                    f"{paths[i]}: label shape {lab.shape} differs from image {split.image_paths[i].name} shape {img.shape[:2]}; labels must have the image's height and width"
                )
            check_label_values(lab, num_classes, ignore_index, str(paths[i]))
            if k == 0:
                labelled += int((lab != ignore_index).sum())
    split.checked = (tuple(infos), labelled)


def write_dataset_json(root: Path, name: str, classes: Sequence[str], ignore_index: int = 255) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps({"name": name, "classes": list(classes), "ignore_index": ignore_index}, indent=2) + "\n")


def _split_info(split) -> tuple[tuple[tuple[int, int, int], ...], Optional[int]]:
    """((H, W, channels) per image, labelled pixels or None if unknown) without decoding twice."""
    checked = getattr(split, "checked", None)
    if checked is not None:
        return checked
    images = getattr(split, "images", None)
    if isinstance(images, np.ndarray):  # ArraySplit
        c = int(images.shape[3]) if images.ndim == 4 else 1
        return tuple((int(images.shape[1]), int(images.shape[2]), c) for _ in range(len(images))), None
    return tuple(image_info(split.image(i)) for i in range(len(split))), None


def check_source(source: Source, size: Optional[Sequence[int]] = None, normalize: str = "zscore", crop=None, batch_size: int = 1) -> None:
    """Checks across the splits of a dataset, for training with these settings; one-line :class:`DatasetError`.

    * one channel count (grayscale or RGB) in all splits, unless ``normalize`` is ``imagenet`` (grayscale repeated);
    * with ``size`` and ``crop`` null and batches of more than one image, one image size in the training split;
    * the training labels are not all ``ignore_index``.
    """
    infos = {name: _split_info(split) for name, split in source.splits.items()}
    if normalize != "imagenet":
        chans = {name: sorted({c for _, _, c in info}) for name, (info, _) in infos.items()}
        kinds = {c for cs in chans.values() for c in cs}
        if len(kinds) > 1:
            word = {1: "grayscale", 3: "RGB"}
            mixed = [n for n, cs in chans.items() if len(cs) > 1]
            if mixed:
                where = f"{mixed[0]} images mix grayscale and RGB"
            else:
                by = {n: word.get(cs[0], f"{cs[0]}-channel") for n, cs in chans.items()}
                where = ", ".join(f"{n} images are {k}" for n, k in by.items())
            raise DatasetError(f"{source.root or source.name}: {where}; convert all images to one channel count (or set data.normalize=imagenet, which repeats grayscale to RGB)")
    if size is None and crop is None and batch_size > 1 and "train" in infos:
        shapes = sorted({(h, w) for h, w, _ in infos["train"][0]})
        if len(shapes) > 1:
            raise DatasetError(f"{source.root or source.name}: training images have {len(shapes)} different sizes ({', '.join(f'{h}x{w}' for h, w in shapes[:3])}"
                               f"{', ...' if len(shapes) > 3 else ''}) and data.size is null; set data.size=[H,W] (or data.crop, or train.batch_size=1)")
    if size is None:
        small = [(n, h, w) for n, (info, _) in infos.items() for h, w, _ in info if min(h, w) < 8]
        if small:
            n, h, w = small[0]
            raise DatasetError(f"{source.root or source.name}: {len(small)} image(s) smaller than 8 pixels on a side (e.g. {h}x{w} in {n}) "
                               "and data.size is null; set data.size=[H,W] to resize them, or remove them")
    for name, (_, labelled) in infos.items():
        if labelled == 0:
            raise DatasetError(f"{source.root or source.name}: every {name} label pixel is ignore_index ({source.ignore_index}); "
                               + ("there is nothing to learn from" if name == "train" else "its scores would be meaningless") + ", fix the labels")
