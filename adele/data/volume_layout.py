"""Finding the cases of a volume dataset (generic or nnU-Net layout), and splitting them by subject: a split file,
the sorted fallback, or nnU-Net's cross-validation folds (see :mod:`adele.data.volumes`)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import DatasetError
from .folder import SPLITS
from .volume_files import _FORMATS_TEXT, OTHER_VOLUME_SUFFIXES, VOLUME_SUFFIXES, volume_stem, volume_suffix


#: nnU-Net channel files: <case>_0000, <case>_0001, ...
_CHANNEL_RE = re.compile(r"^(.+)_(\d{4})$")


# ----------------------------------------------------------------------------- discovery


@dataclass
class Case:
    """One subject: its image files (one per channel, or one 4D file), training labels and optional clean reference."""

    subject: str
    images: tuple[Path, ...]
    label: Path
    clean: Optional[Path] = None


@dataclass
class VolumeLayout:
    layout: str
    cases: list[Case]
    classes: Optional[tuple[str, ...]]
    channel_names: Optional[tuple[str, ...]]
    file_ending: str
    name: str
    test_images: Optional[Path] = None
    notes: list[str] = field(default_factory=list)
    #: the label value dataset.json declares as nnU-Net's "ignore" (the number of classes), or None
    ignore_label: Optional[int] = None


def _volume_files(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        low = p.name.lower()
        if any(low.endswith(s) for s in OTHER_VOLUME_SUFFIXES):
            raise DatasetError(f"{p}: DICOM volumes are not read by adele; convert them to NIfTI (.nii.gz), NRRD or MHA, e.g. with SimpleITK")
        if not volume_suffix(p):
            continue
        stem = volume_stem(p)
        if stem in out:
            raise DatasetError(f"{p}: two files share the id '{stem}' ({out[stem].name}); keep one")
        out[stem] = p
    return out


def _read_json(path: Path) -> dict:
    if path.is_dir():
        raise DatasetError(f"{path}: is a folder, not a file; replace it with the JSON file it should be")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # a UTF-8 byte-order mark is accepted
    except PermissionError:
        raise DatasetError(f"{path}: cannot be read (permission denied); make it readable (chmod a+r)") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DatasetError(f"{path}: not valid JSON; fix the syntax") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: must be a JSON object")
    return data


def classes_from_labels_dict(labels: Any, where: Path) -> tuple[str, ...]:
    """nnU-Net ``labels`` {name: id} with ids 0..K-1 -> class names by id. An ``"ignore"`` entry is not a class; nnU-Net's
    rule holds it to K, the highest id (:func:`ignore_from_labels_dict`)."""
    if not isinstance(labels, dict) or not labels:
        raise DatasetError(f"{where}: 'labels' must be an object {{\"background\": 0, \"name\": 1, ...}}")
    by_id: dict[int, str] = {}
    for name, v in labels.items():
        if name == "ignore":
            continue
        if not isinstance(v, int) or isinstance(v, bool):
            raise DatasetError(f"{where}: label '{name}' maps to {v!r}; only integer ids are supported (nnU-Net region labels are not)")
        if v in by_id:
            raise DatasetError(f"{where}: labels '{by_id[v]}' and '{name}' share the id {v}; give each class its own id")
        by_id[v] = str(name)
    if sorted(by_id) != list(range(len(by_id))) or len(by_id) < 2:
        raise DatasetError(f"{where}: label ids {sorted(by_id)} must be consecutive from 0 (background) with at least 2 classes")
    ignore = labels.get("ignore")
    if "ignore" in labels and (not isinstance(ignore, int) or isinstance(ignore, bool) or ignore != len(by_id)):
        raise DatasetError(f"{where}: \"ignore\": {ignore!r}, but nnU-Net's ignore label must be the highest label id, the one after "
                           f"the classes 0..{len(by_id) - 1}: set \"ignore\": {len(by_id)} and give its voxels that value")
    return tuple(by_id[i] for i in range(len(by_id)))


def ignore_from_labels_dict(labels: Any, where: Path) -> Optional[int]:
    """nnU-Net's ignore label of a ``labels`` dict ({..., "ignore": K}, K = the number of classes), or None without one."""
    classes_from_labels_dict(labels, where)  # checks the rule
    return labels.get("ignore")


def _group_channels(files: dict[str, Path], where: Path, n_channels: Optional[int], ending_hint: str) -> dict[str, tuple[Path, ...]]:
    """{stem: path} -> {case: (channel paths)}; ``<case>_NNNN`` stems are channels when every stem has the suffix."""
    grouped = bool(files) and all(_CHANNEL_RE.match(s) for s in files)
    if grouped and n_channels is None:
        # undeclared channels: <case>_NNNN are channels only when every case has a _0000 and there are several cases
        # (subjects numbered like patient_0001, patient_0002 are subjects, not channels)
        cases0 = {_CHANNEL_RE.match(s).group(1) for s in files}  # type: ignore[union-attr]
        grouped = len(cases0) > 1 and all(f"{c}_0000" in files for c in cases0)
    if not grouped:
        if n_channels is not None and n_channels > 1:
            first = next(iter(files.values()), where)
            raise DatasetError(f"{first}: dataset.json lists {n_channels} channels; name channel files <case>_0000{ending_hint}, <case>_0001{ending_hint}, ...")
        return {s: (p,) for s, p in files.items()}
    cases: dict[str, dict[int, Path]] = {}
    for s, p in files.items():
        m = _CHANNEL_RE.match(s)
        cases.setdefault(m.group(1), {})[int(m.group(2))] = p  # type: ignore[union-attr]
    n = n_channels if n_channels is not None else max(len(v) for v in cases.values())
    out: dict[str, tuple[Path, ...]] = {}
    for case, chans in cases.items():
        for c in range(n):
            if c not in chans:
                ending = volume_suffix(next(iter(chans.values())))
                raise DatasetError(f"{where / f'{case}_{c:04d}{ending}'}: missing channel file ({n} channel(s) expected); add it or remove case '{case}'")
        extra = sorted(set(chans) - set(range(n)))
        if extra:
            raise DatasetError(f"{chans[extra[0]]}: channel {extra[0]} but the dataset has {n} channel(s); remove the file or list the channel in dataset.json")
        out[case] = tuple(chans[c] for c in range(n))
    return out


def find_volumes(src: str | Path, noisy_dir: Optional[str | Path] = None) -> VolumeLayout:
    """Discover the cases of a generic or nnU-Net volume folder (see module doc); validates names, not contents."""
    src = Path(src)
    if not src.is_dir():
        raise DatasetError(f"{src}: folder not found; pass a folder with images/ and labels/ (or nnU-Net imagesTr/ and labelsTr/)")
    meta_path = src / "dataset.json"
    meta = _read_json(meta_path) if meta_path.is_file() else {}
    nnunet = (src / "imagesTr").is_dir()
    if nnunet:
        img_dir, lab_dir, default_noisy = src / "imagesTr", src / "labelsTr", src / "labelsTr_noisy"
        if not meta:
            raise DatasetError(f"{meta_path}: missing; an nnU-Net dataset needs dataset.json with 'channel_names' and 'labels'")
        if "labels" not in meta or "channel_names" not in meta:
            raise DatasetError(f"{meta_path}: needs 'channel_names' and 'labels' (nnU-Net v2); add them")
        classes: Optional[tuple[str, ...]] = classes_from_labels_dict(meta["labels"], meta_path)
        ignore_label = ignore_from_labels_dict(meta["labels"], meta_path)
        ch = meta["channel_names"]
        if not isinstance(ch, dict) or not ch or sorted(int(k) for k in ch) != list(range(len(ch))):
            raise DatasetError(f"{meta_path}: 'channel_names' must be {{\"0\": \"CT\", ...}} with keys 0..N-1")
        channel_names: Optional[tuple[str, ...]] = tuple(str(ch[str(i)] if str(i) in ch else ch[i]) for i in range(len(ch)))
        ending = str(meta.get("file_ending", ".nii.gz"))
        if ending and not ending.startswith("."):  # "nii.gz" means ".nii.gz"
            ending = "." + ending
        if ending.lower() not in VOLUME_SUFFIXES:
            raise DatasetError(f"{meta_path}: file_ending '{ending}' is not supported; adele reads {_FORMATS_TEXT}: convert the files")
        n_channels: Optional[int] = len(channel_names)
    else:
        img_dir, lab_dir, default_noisy = src / "images", src / "labels", src / "labels_noisy"
        classes, ignore_label = None, None
        if "classes" in meta:
            c = meta["classes"]
            if not isinstance(c, list) or len(c) < 2 or not all(isinstance(x, str) for x in c):
                raise DatasetError(f"{meta_path}: 'classes' must be a list of at least 2 class names, background first")
            classes = tuple(c)
        elif "labels" in meta:
            classes = classes_from_labels_dict(meta["labels"], meta_path)
            ignore_label = ignore_from_labels_dict(meta["labels"], meta_path)
        channel_names = None
        if isinstance(meta.get("channel_names"), dict):
            channel_names = tuple(str(v) for _, v in sorted(meta["channel_names"].items(), key=lambda kv: int(kv[0])))
        ending = ""  # the images' own, below
        n_channels = len(channel_names) if channel_names else None
    for d in (img_dir, lab_dir):
        if not d.is_dir():
            raise DatasetError(f"{d}: folder missing; a volume dataset needs {img_dir.name}/ and {lab_dir.name}/")
    notes: list[str] = []
    image_files = _volume_files(img_dir)
    ending = ending or next((volume_suffix(p) for p in image_files.values()), ".nii.gz")
    if nnunet:
        notes += _check_nnunet_names(image_files, img_dir, ending)
    images = _group_channels(image_files, img_dir, n_channels, ending)
    labels = _volume_files(lab_dir)
    if not images:
        raise DatasetError(f"{img_dir}: no volumes ({_FORMATS_TEXT})")
    for case, paths in images.items():
        if case not in labels:
            raise DatasetError(f"{paths[0]}: no label volume '{case}' in {lab_dir}; add {lab_dir.name}/{case}{volume_suffix(paths[0])} or remove the image")
    for case, p in labels.items():
        if case not in images:
            raise DatasetError(f"{p}: label has no image '{case}' in {img_dir}; add the image or remove the label")
    noisy = Path(noisy_dir) if noisy_dir is not None else (default_noisy if default_noisy.is_dir() else None)
    noisy_files: dict[str, Path] = {}
    if noisy is not None:
        if not noisy.is_dir():
            raise DatasetError(f"{noisy}: noisy-label folder not found")
        noisy_files = _volume_files(noisy)
        for case in images:
            if case not in noisy_files:
                raise DatasetError(f"{noisy / (case + ending)}: missing; the noisy-label folder must have a label for every case (or be removed)")
    cases = [Case(c, images[c], noisy_files[c] if noisy else labels[c], labels[c] if noisy else None) for c in sorted(images)]
    test_dir = src / "imagesTs" if nnunet else None
    return VolumeLayout("nnunet" if nnunet else "generic", cases, classes, channel_names, ending,
                        str(meta.get("name", src.name)), test_dir if test_dir is not None and test_dir.is_dir() else None, notes,
                        ignore_label)


def _check_nnunet_names(files: dict[str, Path], img_dir: Path, ending: str) -> list[str]:
    """nnU-Net file names: every image <case>_NNNN<file_ending>. A file without the suffix among files with it is an
    error naming that file; no suffix at all and endings other than file_ending are read, with a note."""
    suffixed = {s for s in files if _CHANNEL_RE.match(s)}
    bare = sorted(set(files) - suffixed)
    if suffixed and bare:
        p = files[bare[0]]
        more = f" (and {len(bare) - 1} more)" if len(bare) > 1 else ""
        raise DatasetError(f"{p}: lacks the channel suffix _0000 that the other images in {img_dir.name}/ have{more}; "
                           f"rename it to {bare[0]}_0000{volume_suffix(p)}")
    notes = []
    if files and not suffixed:
        notes.append(f"{img_dir}: no image has nnU-Net's channel suffix (<case>_0000{ending}); each file is read as one "
                     "single-channel case (nnU-Net itself needs the suffix)")
    other = sorted(p.name for p in files.values() if volume_suffix(p).lower() != ending.lower())
    if other:
        notes.append(f"{img_dir}: {len(other)} file(s) end otherwise than dataset.json's file_ending {ending} "
                     f"({', '.join(other[:3])}{', ...' if len(other) > 3 else ''}); read anyway (nnU-Net would skip them)")
    return notes


# ----------------------------------------------------------------------------- splits


def fallback_split(subjects: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Deterministic split of subjects by sorted name, in the ADELE paper's proportions (31/4/5 of 40).

    The last ``max(1, round(n/8))`` go to test (n >= 3), the ``max(1, round(n/10))`` before them to val, the rest to train.
    """
    subs = sorted(subjects)
    n = len(subs)
    if n < 2:
        raise DatasetError(f"need at least 2 subjects for a train/val split, found {n}; add subjects or pass --split-file")
    n_test = max(1, round(n / 8)) if n >= 3 else 0
    n_val = max(1, round(n / 10))
    n_train = n - n_val - n_test
    return {"train": tuple(subs[:n_train]), "val": tuple(subs[n_train : n_train + n_val]), "test": tuple(subs[n_train + n_val :])}


#: nnU-Net's cross-validation: 5 folds, KFold(shuffle=True, random_state=12345) over the sorted case names
NNUNET_FOLDS, NNUNET_SPLIT_SEED = 5, 12345
SPLITS_FINAL = "splits_final.json"


def generate_folds(subjects: Sequence[str], n_folds: int = NNUNET_FOLDS, seed: int = NNUNET_SPLIT_SEED) -> list[dict[str, list[str]]]:
    """nnU-Net's ``generate_crossval_split``: ``[{"train": [...], "val": [...]}, ...]`` over the sorted subject names.

    The same folds as scikit-learn's ``KFold(n_folds, shuffle=True, random_state=seed)`` (which nnU-Net calls): the
    indices shuffled by ``RandomState(seed)``, cut into consecutive blocks (the first ``n % n_folds`` one longer), each
    block a fold's val, the rest its train (both in name order, as KFold's masks give them)."""
    subs = sorted(subjects)
    n = len(subs)
    if not 2 <= n_folds <= n:
        raise DatasetError(f"{n_folds} folds need at least {n_folds} subjects, found {n}" if n_folds >= 2 else
                           f"--folds: must be >= 2, got {n_folds}")
    order = np.arange(n)
    np.random.RandomState(seed).shuffle(order)
    sizes = np.full(n_folds, n // n_folds)
    sizes[: n % n_folds] += 1
    out, start = [], 0
    for size in sizes:
        val = np.zeros(n, dtype=bool)
        val[order[start : start + size]] = True
        start += size
        out.append({"train": [subs[i] for i in np.flatnonzero(~val)], "val": [subs[i] for i in np.flatnonzero(val)]})
    return out


def read_folds(path: str | Path) -> list[dict[str, list[str]]]:
    """nnU-Net's ``splits_final.json``: a list of ``{"train": [...], "val": [...]}``, one per fold."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise DatasetError(f"{p}: split file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DatasetError(f"{p}: not valid JSON; expected nnU-Net's splits_final.json, [{{\"train\": [...], \"val\": [...]}}, ...]") from None
    ok = isinstance(data, list) and data and all(isinstance(f, dict) and set(f) == {"train", "val"}
                                                 and all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in f.values())
                                                 for f in data)
    if not ok:
        raise DatasetError(f"{p}: --fold reads nnU-Net's splits_final.json, a list of {{\"train\": [...], \"val\": [...]}} per fold")
    for k, f in enumerate(data):
        both = sorted(set(f["train"]) & set(f["val"]))
        if both:
            raise DatasetError(f"{p}: fold {k}: {both[0]} is in both train and val; put each subject in one of them")
    return data


def load_split_file(path: str | Path, example: str = "case_01") -> dict[str, tuple[str, ...]]:
    """Read ``{"train": [...], "val": [...], "test": [...]}`` (test optional); a subject may appear once."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{p}: split file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DatasetError(f"{p}: not valid JSON; expected {{\"train\": [\"{example}\", ...], \"val\": [...], \"test\": [...]}}") from None
    if not isinstance(data, dict) or not {"train", "val"} <= set(data) or not set(data) <= set(SPLITS):
        raise DatasetError(f"{p}: must be an object with keys train, val and optionally test")
    split: dict[str, tuple[str, ...]] = {}
    seen: dict[str, str] = {}
    for name, subs in data.items():
        if not isinstance(subs, list) or not all(isinstance(x, str) for x in subs):
            raise DatasetError(f"{p}: '{name}' must be a list of subject names like \"{example}\"")
        for x in subs:
            if x in seen:
                raise DatasetError(f"{p}: {x} is in both '{seen[x]}' and '{name}'; put each subject in one split")
            seen[x] = name
        split[name] = tuple(subs)
    return split




def find_test_cases(src: Path, lay: VolumeLayout) -> list[Case]:
    """The labelled test cases of an nnU-Net folder: imagesTs cases that have a label in labelsTs (none for other layouts)."""
    img_dir, lab_dir = src / "imagesTs", src / "labelsTs"
    if lay.layout != "nnunet" or not img_dir.is_dir() or not lab_dir.is_dir():
        return []
    n = len(lay.channel_names) if lay.channel_names else None
    images = _group_channels(_volume_files(img_dir), img_dir, n, lay.file_ending)
    labels = _volume_files(lab_dir)
    return [Case(c, images[c], labels[c]) for c in sorted(images) if c in labels]
