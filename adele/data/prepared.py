"""Prepared splits on disk: a dataset larger than memory, read image by image.

:func:`~adele.data.dataset.prepare_split` holds a split in memory. Past ``data.memory_budget_mb`` the split is
written once, image by image, into a cache folder and served from there (:func:`disk_split`): training,
validation, correction rounds and scoring read one image (or one batch) at a time, so memory is bounded by the
batch, the model and a page or two of metadata per image, not by the dataset.

Layout of one cache entry (``<data.cache_dir>/<dataset>-<split>-<key>/``)::

    images.bin  images.idx.npy      preprocessed images: uint8 (C, H, W) where ImageList keeps uint8, else float32
    original.bin original.idx.npy   the training labels as prepared (noise applied): uint8 (H, W)
    clean.bin   clean.idx.npy       clean labels, when known
    noisy.bin   noisy.idx.npy       val with ``data.val_labels: clean`` and ``data.noise``: the noise drawn on val
    meta.json                       ids, noise events, channels, the key's inputs

``*.idx.npy``: int64 (N, 5) rows ``(byte offset, dtype code, d0, d1, d2)`` (``d2`` = 0 for 2-D arrays); each
array starts on a 64-byte boundary. ``key``: a hash of the source's fingerprint (file names, sizes, modification
times; embedded sets: their arrays) and of the settings that shape the prepared form, so an entry is reused while
both are unchanged and a new one is written when either changes. An entry is written under a temporary name and
renamed when complete: a killed preparation leaves nothing half-written behind a valid name.

Values are those of the in-memory form bit for bit (the same functions prepare them).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..errors import DatasetError
from .cache import mark_used
from .dataset import ImageList, PreparedSplit, normalize_image, resize_label, stored_image
from .folder import ArraySplit, FolderSplit, Source, _split_info, check_label_values

VERSION = 1
_ALIGN = 64
_DTYPES = (np.dtype(np.uint8), np.dtype(np.float32))
#: label kinds a split may hold on disk
KINDS = ("original", "clean", "noisy")


# ----------------------------------------------------------------------------- flat arrays


class FlatArrays(Sequence):
    """A read (or read/write) sequence of arrays of any shapes stored back to back in one file.

    Each access reads its bytes with ``os.pread`` into a new array: nothing stays mapped, so the resident memory
    of a process that walks the whole file is one array, not the file. ``writable``: ``arr[i] = value`` writes
    image i in place (same shape and dtype). Safe across ``fork`` (DataLoader workers): each process opens its own
    descriptor.
    """

    def __init__(self, path: Path, index: np.ndarray, writable: bool = False):
        self.path = Path(path)
        self.index = np.asarray(index, dtype=np.int64)
        self.writable = writable
        self._fd: Optional[int] = None
        self._pid = -1

    @classmethod
    def open(cls, directory: Path, kind: str, writable: bool = False) -> "FlatArrays":
        return cls(Path(directory) / f"{kind}.bin", np.load(Path(directory) / f"{kind}.idx.npy"), writable)

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR if self.writable else os.O_RDONLY)
            self._pid = os.getpid()
        return self._fd

    def __del__(self):
        if self._fd is not None and self._pid == os.getpid():
            try:
                os.close(self._fd)
            except OSError:
                pass

    def __getstate__(self):
        return {"path": self.path, "index": self.index, "writable": self.writable}

    def __setstate__(self, state):
        self.__init__(state["path"], state["index"], state["writable"])

    def __len__(self) -> int:
        return len(self.index)

    def shape(self, i: int) -> tuple[int, ...]:
        d = self.index[i, 2:]
        return tuple(int(x) for x in (d if d[2] else d[:2]))

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [self.shape(i) for i in range(len(self))]

    def _where(self, i: int) -> tuple[int, np.dtype, tuple[int, ...], int]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} arrays")
        i = i % len(self)
        dtype, shape = _DTYPES[int(self.index[i, 1])], self.shape(i)
        return int(self.index[i, 0]), dtype, shape, int(np.prod(shape)) * dtype.itemsize

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        off, dtype, shape, n = self._where(int(i))
        buf = bytearray(n)
        got = os.preadv(self._file(), [buf], off)
        if got != n:
            raise DatasetError(f"{self.path}: truncated (read {got} of {n} bytes at {off}); delete the cache folder {self.path.parent} and run again")
        return np.frombuffer(buf, dtype=dtype).reshape(shape)

    def __setitem__(self, i: int, value) -> None:
        if not self.writable:
            raise TypeError(f"{self.path} is read-only")
        off, dtype, shape, n = self._where(int(i))
        arr = np.ascontiguousarray(value, dtype=dtype)
        if arr.shape != shape:
            raise ValueError(f"array {i} has shape {shape}, got {arr.shape}")
        os.pwrite(self._file(), arr.tobytes(), off)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def flush(self) -> None:
        if self._fd is not None and self.writable:
            os.fsync(self._fd)

    @property
    def nbytes(self) -> int:
        return sum(self._where(i)[3] for i in range(len(self)))

    def copy_to(self, path: Path) -> "FlatArrays":
        """A writable copy of these arrays at ``path`` (the file copied, then opened read/write)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        shutil.copyfile(self.path, tmp)
        os.replace(tmp, path)
        return FlatArrays(path, self.index, writable=True)


class FlatWriter:
    """Appends arrays (uint8 or float32, 2-D or 3-D) to ``<kind>.bin``; :meth:`close` writes ``<kind>.idx.npy``."""

    def __init__(self, directory: Path, kind: str):
        self.directory, self.kind = Path(directory), kind
        self._fh = open(self.directory / f"{kind}.bin", "wb")
        self._rows: list[tuple[int, ...]] = []
        self._pos = 0

    def add(self, arr: np.ndarray) -> None:
        arr = np.ascontiguousarray(arr)
        code = _DTYPES.index(arr.dtype)
        pad = -self._pos % _ALIGN
        if pad:
            self._fh.write(b"\0" * pad)
            self._pos += pad
        dims = list(arr.shape) + [0] * (3 - arr.ndim)
        self._rows.append((self._pos, code, *dims))
        self._fh.write(arr.tobytes())
        self._pos += arr.nbytes

    def close(self) -> None:
        self._fh.close()
        np.save(self.directory / f"{self.kind}.idx.npy", np.asarray(self._rows, dtype=np.int64).reshape(-1, 5))


class DiskImages(Sequence):
    """The preprocessed images of a split read from disk: float32 ``(C_in, H, W)`` tensors, the values of
    :class:`~adele.data.dataset.ImageList` bit for bit (uint8 entries normalized on access as there)."""

    def __init__(self, arrays: FlatArrays, normalize: str):
        self.arrays, self.normalize = arrays, normalize

    def __len__(self) -> int:
        return len(self.arrays)

    def _decode(self, a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(a)
        return normalize_image(t.float() / 255.0, self.normalize) if t.dtype == torch.uint8 else t

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self._decode(self.arrays[i])

    def channels(self, i: int) -> int:
        uint8 = int(self.arrays.index[i, 1]) == 0
        return 3 if self.normalize == "imagenet" and uint8 else self.arrays.shape(i)[0]

    @property
    def nbytes(self) -> int:
        return self.arrays.nbytes


# ----------------------------------------------------------------------------- the cache key


def source_fingerprint(source: Source, split: str) -> dict:
    """What identifies the content of ``source``'s ``split`` without reading it: per file its name, size and
    modification time (a folder), or a hash of the arrays (an embedded set)."""
    s = source.splits[split]
    out: dict = {"name": source.name, "classes": list(source.classes), "ignore_index": source.ignore_index, "ids": list(s.ids)}
    if isinstance(s, FolderSplit):
        def files(paths):
            if paths is None:
                return None
            rows = []
            for p in paths:
                st = os.stat(p)
                rows.append([str(Path(p).resolve()), st.st_size, st.st_mtime_ns])
            return rows

        out.update(images=files(s.image_paths), labels=files(s.label_paths), clean=files(s.clean_paths))
    elif isinstance(s, ArraySplit):
        h = hashlib.sha256()
        for a in (s.images, s.labels, s.clean):
            if a is not None:
                h.update(f"{a.dtype}{a.shape}".encode())
                h.update(np.ascontiguousarray(a).tobytes())
        out["arrays"] = h.hexdigest()
    else:  # another Split: its content, read once
        h = hashlib.sha256()
        for i in range(len(s)):
            for a in (s.image(i), s.label(i), s.clean_label(i) if s.has_clean else None):
                if a is not None:
                    h.update(np.ascontiguousarray(a).tobytes())
        out["content"] = h.hexdigest()
    return out


def cache_key(fingerprint: dict, settings: dict) -> str:
    blob = json.dumps({"version": VERSION, "source": fingerprint, "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


# ----------------------------------------------------------------------------- size estimate, space check


def estimate_bytes(source: Source, split: str, size: Optional[Sequence[int]], normalize: str, kinds: int) -> int:
    """Upper bound of a split's prepared form: float32 images (uint8 ones take a quarter) and ``kinds`` label maps
    of one byte per pixel, per image; from the shapes the dataset check already read (no decoding twice)."""
    info, _ = _split_info(source.splits[split])
    total = 0
    for h, w, c in info:
        hw = int(size[0]) * int(size[1]) if size is not None else h * w
        total += hw * (4 * (3 if normalize == "imagenet" else c) + kinds) + (1 + kinds) * _ALIGN
    return total


def check_free_space(folder: Path, need: int, what: str) -> None:
    """:class:`DatasetError` when the disk holding ``folder`` has less than ``need`` bytes (plus 5%) free."""
    probe = Path(folder)
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need * 1.05:
        raise DatasetError(f"{folder}: {what} needs about {need / 2**30:.2f} GiB on disk, only {free / 2**30:.2f} GiB are free there; "
                           "free some space or set data.cache_dir to a folder on a larger disk")


# ----------------------------------------------------------------------------- writing and opening an entry


def open_entry(directory: Path, normalize: str) -> dict:
    """The arrays of a complete cache entry: ``images`` (:class:`DiskImages`) and a :class:`FlatArrays` per label kind
    it holds, with ``meta`` (ids, noise events, ...)."""
    directory = Path(directory)
    meta = json.loads((directory / "meta.json").read_text())
    out = {"meta": meta, "images": DiskImages(FlatArrays.open(directory, "images"), normalize)}
    for kind in KINDS:
        out[kind] = FlatArrays.open(directory, kind) if kind in meta["kinds"] else None
    return out


def build_entry(root: Path, name: str, need: int, write: Callable[[Path], dict]) -> Path:
    """The cache entry ``root/name``, written by ``write(tmp_folder) -> meta`` when missing: under a lock (one
    writer when several processes start together, e.g. torchrun ranks), in a temporary folder renamed when
    complete; the disk space checked first."""
    root = Path(root)
    final = root / name
    if (final / "meta.json").is_file():
        return final
    check_free_space(root, need, f"the prepared form of {name}")
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = open(root / f".{name}.lock", "w")
    except OSError as exc:
        raise DatasetError(f"{root}: cannot write the prepared dataset there ({exc.strerror}); set data.cache_dir to a writable "
                           "folder (e.g. --set data.cache_dir=/scratch/adele-cache)") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if (final / "meta.json").is_file():  # written by another process while this one waited
                return final
            tmp = root / f".{name}.tmp{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            try:
                meta = write(tmp)
                (tmp / "meta.json").write_text(json.dumps(meta))  # written last: its presence marks a complete entry
                shutil.rmtree(final, ignore_errors=True)
                os.replace(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return final


def write_split(tmp: Path, source: Source, split: str, size, normalize: str, labels_of: Callable[[int], tuple], with_clean: bool,
                noisy_of: Optional[Callable[[int], np.ndarray]]) -> dict:
    """Prepare ``split`` image by image into ``tmp``: ``labels_of(i) -> (labels, clean or None, noise events or
    None)`` (as given, before resizing; clean given when ``with_clean``), ``noisy_of(i)`` the noisy extra labels
    (val). Returns the meta."""
    s = source.splits[split]
    kinds = ["original"] + (["clean"] if with_clean else []) + (["noisy"] if noisy_of is not None else [])
    writers = {k: FlatWriter(tmp, k) for k in ["images", *kinds]}
    events, chans = [], set()
    try:
        for i in range(len(s)):
            lab, clean, ev = labels_of(i)
            img = s.image(i)
            if img.shape[:2] != lab.shape:
                raise DatasetError(f"{source.name}/{split}/{s.ids[i]}: label shape {lab.shape} differs from image shape {img.shape[:2]}")
            t = stored_image(img, size, normalize)
            chans.add(ImageList.stored_channels(t, normalize))
            writers["images"].add(t.numpy())
            lab = resize_label(lab, size)
            check_label_values(lab, source.num_classes, source.ignore_index, f"{source.name}/{split}/{s.ids[i]}")
            writers["original"].add(lab)
            if "clean" in writers:
                writers["clean"].add(resize_label(clean, size))
            if noisy_of is not None:
                writers["noisy"].add(resize_label(noisy_of(i), size))
            if ev is not None:
                events.append(ev)
    finally:
        for w in writers.values():
            w.close()
    if len(chans) > 1:
        raise DatasetError(f"{source.name}/{split}: images mix grayscale and RGB; convert them to one channel count")
    return {"version": VERSION, "ids": list(s.ids), "kinds": kinds, "noise_events": events}


def split_settings(split: str, size, normalize: str, train_labels: str, noise: Optional[dict], noisy_extra: bool) -> dict:
    """The settings that shape a split's prepared form (part of its cache key); ``noise``: the recipe's identity
    (``data.noise``, its file's content when a file, ``data.noise_seed``) or None when no noise is drawn on it."""
    return {"split": split, "size": None if size is None else [int(x) for x in size], "normalize": normalize,
            "train_labels": train_labels if split == "train" else None, "noise": noise, "noisy_extra": noisy_extra}


def disk_split(source: Source, split: str, size, normalize: str, cache_dir: Path, train_labels: str = "noisy",
               synthesize=None, noisy_extra=None, noise_id: Optional[dict] = None):
    """:func:`~adele.data.dataset.prepare_split` (and, with ``noisy_extra``, the ``noisy`` labels of
    :func:`~adele.data.dataset.noisy_labels`), served from a cache entry under ``cache_dir``: written image by image
    on first use, reused while the source and these settings are unchanged. ``synthesize``/``noisy_extra``: the
    noise as in :mod:`adele.run.data` (with a per-image ``one(label, i)``). Same values bit for bit.

    Returns a :class:`PreparedSplit` whose sequences read from disk."""
    s = source.splits[split]
    if train_labels == "clean" and split == "train" and not s.has_clean and synthesize is None:
        raise DatasetError(f"{source.root or source.name}: train/labels_clean not found; --train-labels clean needs clean labels (or set data.noise)")
    noise = noise_id if (synthesize is not None or noisy_extra is not None) else None
    settings = split_settings(split, size, normalize, train_labels, noise, noisy_extra is not None)
    key = cache_key(source_fingerprint(source, split), {**settings, "synthesized": synthesize is not None})
    with_clean = s.has_clean or synthesize is not None
    kinds = 1 + int(with_clean) + int(noisy_extra is not None)
    synth_one = _per_image(synthesize, s, with_clean=True) if synthesize is not None else None
    extra_one = _per_image(noisy_extra, s, with_clean=s.has_clean) if noisy_extra is not None else None

    def labels_of(i: int):
        lab = np.asarray(s.label(i), dtype=np.uint8)
        clean = np.asarray(s.clean_label(i), dtype=np.uint8) if s.has_clean else None
        ev = None
        if synth_one is not None:
            if clean is None:
                clean = lab
            lab, ev = synth_one(clean, i)
        if train_labels == "clean" and split == "train":
            lab = clean
        return lab, clean, ev

    def noisy_of(i: int):
        given = np.asarray(s.clean_label(i) if s.has_clean else s.label(i), dtype=np.uint8)
        return extra_one(given, i)[0]

    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in source.name)
    entry = build_entry(Path(cache_dir), f"{safe}-{split}-{key}", estimate_bytes(source, split, size, normalize, kinds),
                        lambda tmp: write_split(tmp, source, split, size, normalize, labels_of, with_clean,
                                                noisy_of if noisy_extra is not None else None))
    mark_used(entry)  # its last use, for `adele data cache clear --older-than`
    e = open_entry(entry, normalize)
    return PreparedSplit(ids=list(e["meta"]["ids"]), images=e["images"], labels=e["original"], original=e["original"],
                         clean=e["clean"], noise_events=list(e["meta"]["noise_events"]), noisy=e["noisy"])


def _per_image(synthesize, s, with_clean: bool):
    """``synthesize.one(label, i)`` when the noise offers it; else (a plain list function) the whole split's noise
    drawn once in memory and served by index."""
    one = getattr(synthesize, "one", None)
    if one is not None:
        return one
    given = [np.asarray(s.clean_label(i) if with_clean and s.has_clean else s.label(i), dtype=np.uint8) for i in range(len(s))]
    noisy, events = synthesize(given)
    return lambda label, i: (noisy[i], events[i])
