"""The steps from a volume to 2D slices and back: reorientation to canonical, intensity, slicing axis, neighbour
slices, in-plane resampling (:class:`VolumeSpec`; see :mod:`adele.data.volumes`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DatasetError
from .volume_files import Volume


AXES = ("axial", "coronal", "sagittal")
AXIS_LETTER = {"axial": "z", "coronal": "y", "sagittal": "x"}
#: canonical (X, Y, Z) -> (slice, H, W) before flipping H and W
_PERM = {"axial": (2, 1, 0), "coronal": (1, 2, 0), "sagittal": (0, 2, 1)}
MODALITIES = ("ct", "mr", "none")
DEFAULT_WINDOW = (-1000.0, 1000.0)
DEFAULT_PERCENTILES = (0.5, 99.5)


# ----------------------------------------------------------------------------- geometry


def orientation(affine: np.ndarray) -> np.ndarray:
    """nibabel's ``io_orientation``: (3, 2) array mapping stored axes to RAS axes and flips."""
    from nibabel.orientations import io_orientation

    return io_orientation(affine)


def to_canonical(arr: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    from nibabel.orientations import apply_orientation

    return np.asarray(apply_orientation(arr, ornt))


def from_canonical(arr: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_canonical` (trailing axes beyond 3 are kept)."""
    from nibabel.orientations import apply_orientation, axcodes2ornt, ornt_transform

    return np.ascontiguousarray(apply_orientation(arr, ornt_transform(axcodes2ornt(("R", "A", "S")), ornt)))


def canonical_spacing(affine: np.ndarray, ornt: np.ndarray) -> tuple[float, float, float]:
    """Voxel size (mm) along the canonical X, Y, Z axes."""
    zooms = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(0))
    out = [0.0, 0.0, 0.0]
    for i, (ax, _) in enumerate(ornt):
        out[int(ax)] = float(zooms[i])
    return tuple(out)  # type: ignore[return-value]


def to_slices(can: np.ndarray, axis: str) -> np.ndarray:
    """Canonical (X, Y, Z[, ...]) -> (S, H, W[, ...]) in display orientation (see module doc)."""
    perm = _PERM[axis] + tuple(range(3, can.ndim))
    return np.ascontiguousarray(can.transpose(perm)[:, ::-1, ::-1])


def from_slices(sl: np.ndarray, axis: str) -> np.ndarray:
    """Inverse of :func:`to_slices`."""
    perm = _PERM[axis] + tuple(range(3, sl.ndim))
    return np.ascontiguousarray(sl[:, ::-1, ::-1].transpose(np.argsort(perm)))


def slices_to_volume(sl: np.ndarray, ornt: np.ndarray, axis: str) -> np.ndarray:
    """(S, H0, W0[, ...]) slices at the native in-plane size -> the volume's stored orientation (X, Y, Z[, ...])."""
    return from_canonical(from_slices(sl, axis), np.asarray(ornt))


# ----------------------------------------------------------------------------- the steps


@dataclass(frozen=True)
class VolumeSpec:
    """How volumes become training slices; saved in ``volumes.json`` and in every run trained on it."""

    axis: str = "axial"
    #: in-plane size (H, W) after resampling; exclusive with ``spacing``; neither = native grid
    size: Optional[tuple[int, int]] = None
    #: in-plane spacing (mm along H, W) after resampling
    spacing: Optional[tuple[float, float]] = None
    #: one intensity normalization per channel: ct, mr or none
    modality: tuple[str, ...] = ("mr",)
    window: tuple[float, float] = DEFAULT_WINDOW
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES
    #: neighbour slices on each side added as channels
    context: int = 0
    channel_names: tuple[str, ...] = ("image",)
    #: png16 (single-channel CT, no context) or npy
    storage: str = "npy"
    #: ``generic`` or ``nnunet`` (channel files <case>_0000...)
    layout: str = "generic"
    file_ending: str = ".nii.gz"

    @property
    def channels(self) -> int:
        return len(self.modality)

    @property
    def in_channels(self) -> int:
        return self.channels * (2 * self.context + 1)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "VolumeSpec":
        known = {f: d[f] for f in cls.__dataclass_fields__ if f in d}
        for k in ("size", "spacing", "modality", "window", "percentiles", "channel_names"):
            if known.get(k) is not None:
                known[k] = tuple(known[k])
        return cls(**known)

    def validate(self) -> "VolumeSpec":
        if self.axis not in AXES:
            raise DatasetError(f"--axis {self.axis}: use one of {', '.join(AXES)}")
        if self.size is not None and self.spacing is not None:
            raise DatasetError("--size and --spacing exclude each other; give one (or neither to keep the native grid)")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 8):
            raise DatasetError(f"--size must be two integers H W, each >= 8, got {list(self.size)}")
        if self.spacing is not None and (len(self.spacing) != 2 or min(self.spacing) <= 0):
            raise DatasetError(f"--spacing must be one or two positive numbers (mm), got {list(self.spacing)}")
        bad = [m for m in self.modality if m not in MODALITIES]
        if bad:
            raise DatasetError(f"--modality {bad[0]}: use one of {', '.join(MODALITIES)}")
        if len(self.window) != 2 or not float(self.window[0]) < float(self.window[1]):
            raise DatasetError(f"--window must be two numbers LOW HIGH with LOW < HIGH (HU), got {list(self.window)}")
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise DatasetError(f"--percentiles must be LOW HIGH with 0 <= LOW < HIGH <= 100, got {list(self.percentiles)}")
        if not 0 <= self.context <= 8:
            raise DatasetError(f"--context must be 0..8 neighbour slices per side, got {self.context}")
        return self


def normalize_intensity(vol: np.ndarray, modality: str, spec: VolumeSpec) -> np.ndarray:
    """One channel (X, Y, Z) float32 -> normalized float32 (see module doc, step 2)."""
    if modality == "ct":
        lo, hi = float(spec.window[0]), float(spec.window[1])
        return (np.clip(vol, lo, hi) - lo) / (hi - lo)
    if modality == "mr":
        nz = vol[vol != 0]
        ref = nz if nz.size else vol.reshape(-1)
        plo, phi = np.percentile(ref, spec.percentiles)
        clipped = np.clip(ref, plo, phi)
        mean, std = float(clipped.mean()), float(clipped.std())
        return ((np.clip(vol, plo, phi) - mean) / max(std, 1e-6)).astype(np.float32)
    return vol.astype(np.float32, copy=False)


def inplane_size(spec: VolumeSpec, native_hw: Sequence[int], spacing_hw: Sequence[float]) -> tuple[int, int]:
    """Size (H, W) of the prepared slices of a volume whose slices are ``native_hw`` at ``spacing_hw`` mm."""
    if spec.size is not None:
        return int(spec.size[0]), int(spec.size[1])
    if spec.spacing is not None:
        return tuple(max(8, int(round(n * s / t))) for n, s, t in zip(native_hw, spacing_hw, spec.spacing))  # type: ignore[return-value]
    return int(native_hw[0]), int(native_hw[1])


def resample_images(x: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """(S, H, W, C) float32 -> (S, h, w, C), bilinear (align_corners=False)."""
    if tuple(x.shape[1:3]) == tuple(size):
        return x
    t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    t = F.interpolate(t, size=tuple(int(s) for s in size), mode="bilinear", align_corners=False)
    return np.ascontiguousarray(t.numpy().transpose(0, 2, 3, 1))


def resample_labels(lab: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """(S, H, W) uint8 -> (S, h, w), nearest."""
    if tuple(lab.shape[1:3]) == tuple(size):
        return np.ascontiguousarray(lab, dtype=np.uint8)
    t = torch.from_numpy(np.ascontiguousarray(lab))[:, None].float()
    return F.interpolate(t, size=tuple(int(s) for s in size), mode="nearest-exact")[:, 0].to(torch.uint8).numpy()


def add_context(x: np.ndarray, k: int) -> np.ndarray:
    """(S, H, W, C) -> (S, H, W, C * (2k + 1)): per channel, slices i-k..i+k (edges repeated)."""
    if k == 0:
        return x
    s = x.shape[0]
    idx = np.clip(np.arange(s)[:, None] + np.arange(-k, k + 1)[None], 0, s - 1)  # (S, 2k+1)
    out = x[idx]  # (S, 2k+1, H, W, C)
    return np.ascontiguousarray(out.transpose(0, 2, 3, 4, 1).reshape(s, x.shape[1], x.shape[2], -1))


def quantize16(x: np.ndarray) -> np.ndarray:
    """[0, 1] float -> uint16, as a 16-bit PNG stores it."""
    return np.round(np.clip(x, 0.0, 1.0) * 65535).astype(np.uint16)


@dataclass
class SlicedImage:
    """A volume's image slices as training saw them, and the geometry to go back."""

    slices: np.ndarray  # (S, h, w, C) float32, values as read back from storage
    native_hw: tuple[int, int]
    ornt: np.ndarray
    spacing: tuple[float, float, float]


def image_slices(channels: Sequence[Volume], spec: VolumeSpec, quantized: bool = True) -> SlicedImage:
    """Steps 1-6 of the module doc on one subject's image (one Volume per channel file; 4D files give several)."""
    arrays: list[np.ndarray] = []
    for v in channels:
        arrays.extend([v.data] if v.data.ndim == 3 else [v.data[..., c] for c in range(v.data.shape[3])])
    if len(arrays) != spec.channels:
        raise DatasetError(f"{channels[0].path}: has {len(arrays)} channel(s), the dataset has {spec.channels} ({', '.join(spec.channel_names)}); "
                           "give the same channels as in training")
    ref = channels[0]
    ornt = orientation(ref.affine)
    spacing = canonical_spacing(ref.affine, ornt)
    per_ch = [to_slices(to_canonical(normalize_intensity(a, m, spec), ornt), spec.axis) for a, m in zip(arrays, spec.modality)]
    x = np.stack(per_ch, axis=-1).astype(np.float32, copy=False)  # (S, H0, W0, C)
    native_hw = (int(x.shape[1]), int(x.shape[2]))
    sp = _inplane_spacing(spacing, spec.axis)
    x = resample_images(x, inplane_size(spec, native_hw, sp))
    x = add_context(x, spec.context)
    if spec.storage == "png16" and quantized:
        x = quantize16(x).astype(np.float32) / 65535.0
    return SlicedImage(x, native_hw, ornt, spacing)


def _inplane_spacing(spacing: Sequence[float], axis: str) -> tuple[float, float]:
    perm = _PERM[axis]
    return float(spacing[perm[1]]), float(spacing[perm[2]])


def label_slices(lab: Volume, ornt: np.ndarray, axis: str) -> np.ndarray:
    """Label volume -> (S, H0, W0) uint8 slices at the native in-plane size."""
    return to_slices(to_canonical(lab.data, ornt), axis)
