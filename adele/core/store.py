"""Compact, memory-mapped store of per-pixel predictions (ADELE section 2).

The official code keeps a float softmax map per training image (4*C bytes
per pixel). The correction rule only needs the argmax class and its
probability, so this store keeps 2 bytes per pixel:

    pred.u8   argmax class, uint8
    conf.u8   q = round(255 * p_argmax), uint8
    index.json  image shapes and offsets (images may differ in size)

Images are laid out back to back in both files; image i occupies
[offsets[i], offsets[i] + H_i * W_i). Unwritten pixels read as class 0 with
confidence 0, which is never confident, so they are never corrected.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence, Union

import numpy as np

try:  # torch is optional here: write() also takes numpy arrays
    import torch
except ImportError:  # pragma: no cover
    torch = None

_INDEX, _PRED, _CONF = "index.json", "pred.u8", "conf.u8"
_VERSION = 1


def _argmax_max(probs) -> tuple[np.ndarray, np.ndarray]:
    """(C, H, W) numpy float or torch tensor -> argmax (H, W) uint8 (first maximum), max (H, W).

    CUDA tensors are reduced on the device (only 2 bytes/pixel move to the host);
    on CPU the loop below is about twice as fast as numpy's argmax over axis 0.
    """
    if probs.ndim != 3 or probs.shape[0] > 256:
        raise ValueError(f"probs must be (C, H, W) with C <= 256, got shape {tuple(probs.shape)}")
    if torch is not None and isinstance(probs, torch.Tensor):
        probs = probs.detach()
        if probs.device.type != "cpu":
            p_max, k = probs.max(dim=0)
            return k.to(torch.uint8).cpu().numpy(), p_max.float().cpu().numpy()
        probs = probs.float().numpy()
    probs = np.asarray(probs)
    p_max = probs.max(axis=0)
    k = np.zeros(p_max.shape, dtype=np.uint8)
    for c in range(probs.shape[0] - 1, -1, -1):  # descending, so the lowest index wins ties
        np.copyto(k, np.uint8(c), where=probs[c] == p_max)
    return k, p_max


class PredictionStore:
    """Per-pixel argmax class + quantized confidence for a fixed list of images."""

    bytes_per_pixel = 2.0

    def __init__(self, directory: Path, shapes: list[tuple[int, int]], offsets: np.ndarray,
                 pred: np.memmap, conf: np.memmap):
        """Use :meth:`create` or :meth:`open`."""
        self.directory = Path(directory)
        self.shapes = shapes
        self.offsets = offsets
        self._pred, self._conf = pred, conf

    # ---- construction ----
    @classmethod
    def create(cls, directory: Union[str, Path], shapes: Sequence[tuple[int, int]]) -> "PredictionStore":
        """Create (or overwrite) a store for images of the given (H, W) shapes."""
        shapes = [(int(h), int(w)) for h, w in shapes]
        if not shapes or any(h <= 0 or w <= 0 for h, w in shapes):
            raise ValueError(f"need at least one image with positive (H, W); got {shapes[:5]}")
        sizes = np.array([h * w for h, w in shapes], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        total = int(sizes.sum())
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        index = dict(version=_VERSION, total=total, shapes=[list(s) for s in shapes],
                     offsets=offsets.tolist(), files=dict(pred=_PRED, conf=_CONF))
        (directory / _INDEX).write_text(json.dumps(index))
        pred = np.memmap(directory / _PRED, dtype=np.uint8, mode="w+", shape=(total,))
        conf = np.memmap(directory / _CONF, dtype=np.uint8, mode="w+", shape=(total,))
        return cls(directory, shapes, offsets, pred, conf)

    @classmethod
    def open(cls, directory: Union[str, Path], mode: str = "r+") -> "PredictionStore":
        """Open an existing store; mode 'r' (read only) or 'r+' (read/write)."""
        directory = Path(directory)
        path = directory / _INDEX
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: create the store with PredictionStore.create")
        index = json.loads(path.read_text())
        if index.get("version") != _VERSION:
            raise ValueError(f"{path}: unsupported store version {index.get('version')}")
        total = int(index["total"])
        pred = np.memmap(directory / index["files"]["pred"], dtype=np.uint8, mode=mode, shape=(total,))
        conf = np.memmap(directory / index["files"]["conf"], dtype=np.uint8, mode=mode, shape=(total,))
        shapes = [(int(h), int(w)) for h, w in index["shapes"]]
        return cls(directory, shapes, np.asarray(index["offsets"], dtype=np.int64), pred, conf)

    # ---- quantization ----
    @staticmethod
    def quantize(p) -> np.ndarray:
        """float probabilities in [0, 1] (any shape) -> uint8 q = round(255 p)."""
        return np.rint(np.clip(np.asarray(p, dtype=np.float32) * 255.0, 0.0, 255.0)).astype(np.uint8)

    @staticmethod
    def dequantize(q) -> np.ndarray:
        """uint8 q (any shape) -> float32 p = q / 255 (error <= 0.5/255)."""
        return np.asarray(q, dtype=np.float32) / 255.0

    # ---- access ----
    def __len__(self) -> int:
        return len(self.shapes)

    @property
    def total_pixels(self) -> int:
        return int(self._pred.shape[0])

    def _span(self, i: int) -> tuple[int, int, int]:
        """(offset, H, W) of image i in pred.u8 / conf.u8."""
        if not 0 <= i < len(self.shapes):
            raise IndexError(f"image index {i} out of range for a store of {len(self.shapes)} images")
        h, w = self.shapes[i]
        return int(self.offsets[i]), h, w

    def _fds(self) -> tuple[int, int]:
        """Descriptors of pred.u8 and conf.u8, opened once per process. Images are read and written with
        ``os.pread`` / ``os.pwrite`` rather than through the mapping, so a pass over the whole store leaves no pages
        resident in the process (its memory stays independent of the number of images); Linux keeps the two views
        of the files coherent."""
        if getattr(self, "_pid", None) != os.getpid():
            flags = os.O_RDONLY if self._pred.mode == "r" else os.O_RDWR
            self._fd = (os.open(self._pred.filename, flags), os.open(self._conf.filename, flags))
            self._pid = os.getpid()
        return self._fd

    def write(self, i: int, probs) -> None:
        """Store argmax class and its quantized probability for image i.

        probs: (C, H, W) softmax probabilities, numpy float or torch tensor (any device), C <= 256.
        """
        k, p_max = _argmax_max(probs)
        lo, h, w = self._span(i)
        if k.shape != (h, w):
            raise ValueError(f"image {i} has shape {(h, w)} in the store, probs give {k.shape}")
        fp, fc = self._fds()
        os.pwrite(fp, np.ascontiguousarray(k, dtype=np.uint8).tobytes(), lo)
        os.pwrite(fc, self.quantize(p_max).tobytes(), lo)

    def write_batch(self, indices: Sequence[int], probs) -> None:
        """probs: (B, C, H, W) numpy or torch; all images of the batch share (H, W)."""
        if len(indices) != len(probs):
            raise ValueError(f"{len(indices)} indices for a batch of {len(probs)} prob maps")
        for i, p in zip(indices, probs):
            self.write(int(i), p)

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """-> (pred (H, W) uint8, conf_q (H, W) uint8), copies of the stored values."""
        lo, h, w = self._span(i)
        out = []
        for fd in self._fds():
            buf = bytearray(h * w)
            if os.preadv(fd, [buf], lo) != h * w:
                raise ValueError(f"{self.directory}: store files shorter than its index; delete the folder to rebuild it")
            out.append(np.frombuffer(buf, dtype=np.uint8).reshape(h, w))
        return out[0], out[1]

    def flush(self) -> None:
        """Write pending changes to disk (no-op for read-only stores)."""
        if self._pred.mode != "r":
            self._pred.flush()
            self._conf.flush()
            if getattr(self, "_pid", None) == os.getpid():
                for fd in self._fd:
                    os.fsync(fd)

    def __enter__(self) -> "PredictionStore":
        return self

    def __exit__(self, *exc) -> None:
        self.flush()
