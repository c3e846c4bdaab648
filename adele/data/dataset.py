"""Turn a :class:`~adele.data.folder.Source` split into tensors ready for training.

A :class:`PreparedSplit` holds, in memory, the preprocessed images
(float32 ``(C_in, H, W)``), the training labels the model currently learns
from (uint8 ``(H, W)``, rewritten by label correction), the original labels
and, when known, the clean labels. :class:`TrainDataset` serves it to a
DataLoader with augmentation that is a pure function of (seed, epoch, index),
so an interrupted run resumes bit-for-bit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..errors import DatasetError
from .folder import Source, check_label_values

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: synthesizes noisy labels from given ones: ``synthesize(labels) -> (noisy, events)``, ``labels`` and ``noisy`` lists
#: of (H, W) uint8 maps (``ignore_index`` kept), ``events`` one dict per noise step drawn; the caller builds it from
#: ``data.noise`` (:func:`adele.run.data.label_noise`), so this package never imports :mod:`adele.noise`
Synthesize = Callable[[list], tuple[list, list]]


def preprocess_image(img: np.ndarray, size: Optional[Sequence[int]], normalize: str) -> torch.Tensor:
    """``img``: float32 (H, W) or (H, W, 3) -> float32 tensor (C_in, H', W')."""
    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
    t = t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)
    if size is not None and tuple(t.shape[-2:]) != tuple(size):
        t = F.interpolate(t[None], size=tuple(size), mode="bilinear", align_corners=False, antialias=True)[0]
    return normalize_image(t, normalize)


def normalize_image(t: torch.Tensor, normalize: str) -> torch.Tensor:
    """``zscore`` (per image), ``imagenet`` (grayscale repeated to 3 channels) or ``unit`` (unchanged) of a (C, H, W) tensor in [0, 1]."""
    if normalize == "zscore":
        mean = t.mean(dim=(1, 2), keepdim=True)
        std = t.std(dim=(1, 2), keepdim=True).clamp_min(1e-6)
        t = (t - mean) / std
    elif normalize == "imagenet":
        if t.shape[0] != 3:
            t = t.expand(3, -1, -1)
        t = (t - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return t.contiguous()


def stored_image(img: np.ndarray, size: Optional[Sequence[int]], normalize: str) -> torch.Tensor:
    """The form an image is kept in (memory or disk): uint8 ``(C, H, W)`` for 8-bit images that are not resized and use
    the ``unit`` or ``imagenet`` normalization (normalized on access), else :func:`preprocess_image`'s float32."""
    if normalize in ("unit", "imagenet") and (size is None or tuple(img.shape[:2]) == tuple(size)):
        q = np.rint(img * 255.0)
        if q.min() >= 0 and q.max() <= 255 and np.array_equal(q.astype(np.float32) / np.float32(255.0), img):
            t = torch.from_numpy(q.astype(np.uint8))
            return (t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)).contiguous()
    return preprocess_image(img, size, normalize)


class ImageList(Sequence):
    """The preprocessed images of a split, as a read-only sequence of float32 ``(C_in, H, W)`` tensors.

    8-bit images that are not resized and use the ``unit`` or ``imagenet``
    normalization (VOC, RGB photographs) are kept as uint8 and normalized on
    access: one byte per value instead of four, with
    the same float values as :func:`preprocess_image` bit for bit.
    """

    def __init__(self, normalize: str):
        self.normalize = normalize
        self._items: list[torch.Tensor] = []

    def add(self, img: np.ndarray, size: Optional[Sequence[int]]) -> None:
        """Preprocess ``img`` (float32 (H, W) or (H, W, 3), as sources return it) and keep it."""
        self._items.append(stored_image(img, size, self.normalize))

    def _decode(self, t: torch.Tensor) -> torch.Tensor:
        return normalize_image(t.float() / 255.0, self.normalize) if t.dtype == torch.uint8 else t

    @staticmethod
    def stored_channels(t: torch.Tensor, normalize: str) -> int:
        """Channels of the image served from ``t``, a stored (C, H, W) tensor (:func:`stored_image`)."""
        return 3 if normalize == "imagenet" and t.dtype == torch.uint8 else int(t.shape[0])

    def channels(self, i: int) -> int:
        return self.stored_channels(self._items[i], self.normalize)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._decode(t) for t in self._items[i]]
        return self._decode(self._items[i])

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._items)


def resize_label(lab: np.ndarray, size: Optional[Sequence[int]]) -> np.ndarray:
    """Nearest-neighbour resize of a uint8 (H, W) label map."""
    if size is None or tuple(lab.shape) == tuple(size):
        return np.ascontiguousarray(lab, dtype=np.uint8)
    t = torch.from_numpy(np.ascontiguousarray(lab))[None, None].float()
    out = F.interpolate(t, size=tuple(size), mode="nearest-exact")[0, 0]
    return out.to(torch.uint8).numpy()


def smooth_resize_label(lab: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Resize a uint8 (H, W) label map through its one-hot maps: each class's indicator (and ignore's) is resized
    bilinearly and the argmax taken on the new grid, so boundaries come out smooth instead of blocky (upsampling)."""
    if tuple(lab.shape) == tuple(size):
        return np.ascontiguousarray(lab, dtype=np.uint8)
    values = np.unique(lab)
    onehot = torch.from_numpy(np.stack([lab == v for v in values]).astype(np.float32))[None]
    up = F.interpolate(onehot, size=tuple(int(s) for s in size), mode="bilinear", align_corners=False)[0]
    return values[up.argmax(0).numpy()].astype(np.uint8)


@dataclass
class PreparedSplit:
    """A split, in memory (lists) or on disk (:mod:`adele.data.prepared`: sequences that read one image at a time,
    with the same values). ``labels`` is the sequence the trainer rewrites, through :meth:`set_label`."""

    ids: list[str]
    images: Sequence[torch.Tensor]  # an ImageList, DiskImages, or any list of (C_in, H, W) float32 tensors
    labels: Sequence[np.ndarray]
    original: Sequence[np.ndarray]
    clean: Optional[Sequence[np.ndarray]] = None
    noise_events: list[dict] = field(default_factory=list)
    #: the split's labels with ``data.noise`` applied, when the split is scored on its labels as given (val with
    #: ``data.val_labels: clean``): what a user's own, noisy validation masks would be. None otherwise
    noisy: Optional[Sequence[np.ndarray]] = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def in_channels(self) -> int:
        return int(self.images[0].shape[0])

    @property
    def shapes(self) -> list[tuple[int, int]]:
        if hasattr(self.labels, "shapes"):  # on disk: from the index, without reading the labels
            return list(self.labels.shapes)  # type: ignore[union-attr]
        return [tuple(lab.shape) for lab in self.labels]  # type: ignore[misc]

    @property
    def on_disk(self) -> bool:
        return not isinstance(self.labels, list)

    def own_labels(self, path) -> None:
        """On disk: make ``labels`` a writable copy of the current labels at ``path`` (a run's own file, as the cache is
        shared and read-only); in memory: nothing to do. Call it before :meth:`set_label`."""
        if self.on_disk and not getattr(self.labels, "writable", True):
            self.labels = self.labels.copy_to(path)  # type: ignore[union-attr]

    def set_label(self, i: int, lab: np.ndarray) -> None:
        """Image i's current label becomes ``lab`` (H, W) uint8: in place in memory, written through on disk."""
        if isinstance(self.labels, list):
            self.labels[i][...] = lab
        else:
            self.labels[i] = lab  # type: ignore[index]


def batch_indices(shapes: Sequence, batch_size: int, rank: int = 0, world_size: int = 1) -> Iterator[list[int]]:
    """Indices of the images of sizes ``shapes`` in batches of ``batch_size``, or one at a time when the sizes differ
    (a batch stacks one size); with ``world_size`` > 1, this process's share: every ``world_size``-th image from
    ``rank``. The loop of every pass that predicts a split (evaluation, correction, scoring, export)."""
    idx = list(range(rank, len(shapes), world_size))
    bs = batch_size if len(set(shapes)) == 1 else 1
    for s in range(0, len(idx), bs):
        yield idx[s : s + bs]


def prepare_split(
    source: Source,
    split: str,
    size: Optional[Sequence[int]],
    normalize: str,
    train_labels: str = "noisy",
    synthesize: Optional[Synthesize] = None,
) -> PreparedSplit:
    """Load, preprocess and resize one split of ``source``.

    ``synthesize`` (see :data:`Synthesize`; ``data.noise`` as a function) synthesizes noisy labels
    from the given ones, which then serve as the clean reference (the caller passes
    it for the training split, and for val with ``data.val_labels: noisy``);
    ``train_labels="clean"`` trains on the clean labels instead.
    """
    s = source.splits[split]
    labels = [np.asarray(s.label(i), dtype=np.uint8) for i in range(len(s))]
    clean = [np.asarray(s.clean_label(i), dtype=np.uint8) for i in range(len(s))] if s.has_clean else None
    events: list[dict] = []
    if synthesize is not None:
        if clean is None:
            clean = labels
        labels, events = synthesize(clean)
    if train_labels == "clean" and split == "train":
        if clean is None:
            raise DatasetError(f"{source.root or source.name}: train/labels_clean not found; --train-labels clean needs clean labels (or set data.noise)")
        labels = clean
    images = ImageList(normalize)
    for i in range(len(s)):
        img = s.image(i)
        if img.shape[:2] != labels[i].shape:
            raise DatasetError(f"{source.name}/{split}/{s.ids[i]}: label shape {labels[i].shape} differs from image shape {img.shape[:2]}")
        images.add(img, size)
    lab = [resize_label(x, size) for x in labels]
    for i, x in enumerate(lab):
        check_label_values(x, source.num_classes, source.ignore_index, f"{source.name}/{split}/{s.ids[i]}")
    chans = {images.channels(i) for i in range(len(images))}
    if len(chans) > 1:
        raise DatasetError(f"{source.name}/{split}: images mix grayscale and RGB; convert them to one channel count")
    return PreparedSplit(
        ids=list(s.ids),
        images=images,
        labels=[x.copy() for x in lab],
        original=lab,
        clean=[resize_label(x, size) for x in clean] if clean is not None else None,
        noise_events=events,
    )


def noisy_labels(source: Source, split: str, size: Optional[Sequence[int]], synthesize: Synthesize) -> list[np.ndarray]:
    """The labels of ``split`` with ``synthesize`` applied (as :func:`prepare_split` applies it), resized:
    a list of (H, W) uint8 arrays, ``ignore_index`` kept."""
    s = source.splits[split]
    given = [np.asarray(s.clean_label(i) if s.has_clean else s.label(i), dtype=np.uint8) for i in range(len(s))]
    labels, _ = synthesize(given)
    return [resize_label(x, size) for x in labels]


def check_prepared(source: Source, train: PreparedSplit, others: dict) -> None:
    """After :func:`prepare_split`: the training labels in use (noise/clean applied) and channel counts agree."""
    if not any(bool((lab != source.ignore_index).any()) for lab in train.labels):
        raise DatasetError(f"{source.root or source.name}: every train label pixel is ignore_index ({source.ignore_index}); there is nothing to learn from, fix the labels")
    for name, split in others.items():
        if split is not None and not any(bool((lab != source.ignore_index).any()) for lab in split.original):
            raise DatasetError(f"{source.root or source.name}: every {name} label pixel is ignore_index ({source.ignore_index}); its scores would be meaningless, fix the labels")
        if split is not None and split.in_channels != train.in_channels:
            raise DatasetError(f"{source.root or source.name}: {name} images have {split.in_channels} channel(s) after preprocessing, train images {train.in_channels}; "
                               "convert them to one channel count")


class TrainDataset(Dataset):
    """Serves ``(image (C,H,W) float32, label (H,W) int64, index)`` with seeded augmentation."""

    def __init__(self, split: PreparedSplit, seed: int, hflip: bool = False, scale_range=None, crop=None, ignore_index: int = 255):
        self.split = split
        self.seed = seed
        self.hflip = hflip
        self.scale_range = scale_range
        self.crop = crop
        self.ignore_index = ignore_index
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.split)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int):
        img = self.split.images[i]
        lab = torch.from_numpy(self.split.labels[i].astype(np.int64))
        if self.hflip or self.scale_range or self.crop:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            crop = self.crop
            if self.scale_range:
                crop = crop or tuple(img.shape[-2:])  # rescaled images are cropped/padded back to their size so batches stack
                f = float(rng.uniform(*self.scale_range))
                size = [max(8, round(s * f)) for s in img.shape[-2:]]
                img = F.interpolate(img[None], size=size, mode="bilinear", align_corners=False)[0]
                lab = F.interpolate(lab[None, None].float(), size=size, mode="nearest-exact")[0, 0].long()
            if crop:
                img, lab = _random_crop(img, lab, crop, rng, self.ignore_index)
            if self.hflip and rng.random() < 0.5:
                img, lab = img.flip(-1), lab.flip(-1)
        return img, lab, i


def _random_crop(img: torch.Tensor, lab: torch.Tensor, crop, rng: np.random.Generator, ignore_index: int):
    ch, cw = crop
    h, w = lab.shape
    ph, pw = max(0, ch - h), max(0, cw - w)
    if ph or pw:
        img = F.pad(img, (0, pw, 0, ph), value=0.0)
        lab = F.pad(lab, (0, pw, 0, ph), value=ignore_index)
        h, w = lab.shape
    y = int(rng.integers(0, h - ch + 1))
    x = int(rng.integers(0, w - cw + 1))
    return img[:, y : y + ch, x : x + cw], lab[y : y + ch, x : x + cw]


def collate(batch):
    imgs, labs, idx = zip(*batch)
    return torch.stack(imgs), torch.stack(labs), torch.tensor(idx)


@dataclass
class RunData:
    """The prepared splits of one training run (``val``/``test`` None when the dataset has none)."""

    source: Source
    train: PreparedSplit
    val: Optional[PreparedSplit]
    test: Optional[PreparedSplit]
