"""Volume datasets (3D scans + label volumes) -> 2D slices in the generic format, and back.

``adele data prepare volumes SRC OUT`` reads either layout::

    generic                                   nnU-Net (v2 raw dataset)
    SRC/images/<subject>.nii.gz               SRC/dataset.json   {"channel_names": {"0": "CT"}, "labels": {"background": 0, ...},
    SRC/labels/<subject>.nii.gz                                   "file_ending": ".nii.gz"}
    SRC/labels_noisy/<subject>.nii.gz  opt.   SRC/imagesTr/<case>_0000.nii.gz (one file per channel: _0000, _0001, ...)
    SRC/dataset.json  optional                SRC/labelsTr/<case>.nii.gz
      {"classes": [...]} or nnU-Net "labels"  SRC/labelsTr_noisy/<case>.nii.gz   optional
                                              SRC/imagesTs/<case>_0000.nii.gz     optional (for `adele predict`)

A generic image is a 3D volume, or 4D with the channels last; ``<subject>_0000``
channel files work there too. When a noisy-label folder is present, its
labels are the training labels and the others the clean reference
(``train/labels_clean``, and the labels of val/test).

Volumes are NIfTI (``.nii.gz``, ``.nii``, read by nibabel) or, with SimpleITK
installed (``pip install 'adele[formats]'``), NRRD (``.nrrd``, ``.nhdr``) and
MetaImage (``.mha``, ``.mhd``), as nnU-Net reads them (``file_ending`` in
dataset.json). Every format gives the array (X, Y, Z) and RAS affine that
nibabel gives for the same image saved as NIfTI, and masks are written back in
their input's format (:func:`write_volume_like`).

Each volume goes through the same steps, here and in ``adele predict``
(:func:`image_slices`):

1. reorientation to the closest canonical frame (RAS), as ``nibabel.as_closest_canonical``;
2. intensity normalization per channel over the whole volume: ``ct`` clips to a
   window in HU and maps it to [0, 1]; ``mr`` clips to the 0.5/99.5 percentiles
   of the non-zero voxels and z-scores with their mean and std; ``none`` keeps
   the values;
3. slicing along ``axial`` (default), ``coronal`` or ``sagittal``: axial slices
   have anterior up and the patient's right on the left (radiological view),
   coronal and sagittal have superior up;
4. optional neighbour slices as extra channels (``context`` k: slices
   i-k..i+k of every channel, repeated at the volume's ends);
5. in-plane resampling to a size (H, W) or a spacing in mm (bilinear for
   images, nearest for labels); none by default;
6. storage: single-channel CT as 16-bit PNG (the window in [0, 1]), anything
   else as float32 NPY ``(H, W)`` or ``(H, W, C)``.

``OUT/volumes.json`` records the steps (``spec``) and, per subject, its split,
files, grid (shape, affine, orientation, spacing), in-plane sizes and the slice
ids with their index, so every later step can go back to the native grid:
:func:`slices_to_volume` undoes 3 and 1 for any per-slice array at the native
in-plane size. ``OUT/native/labels/`` keeps byte copies of the label volumes
(``labels_clean/`` for the reference) for ``adele export-labels``. Slices are
split by **subject**: no subject has slices in two splits.
"""
from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DatasetError
from ..safety import atomic_write_bytes, atomic_write_text, staged_output
from .colin27 import DATASETS as EMBEDDED
from .folder import SPLITS, write_dataset_json
from .io import check_readable, write_array

NIFTI_SUFFIXES = (".nii.gz", ".nii")
#: NRRD and MetaImage, read and written through SimpleITK (the ``formats`` extra)
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
#: headers whose voxels lie in a separate data file (written beside them)
DETACHED_SUFFIXES = (".nhdr", ".mhd")
VOLUME_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES
#: volume formats that adele does not read; named in the error so the user can convert them
OTHER_VOLUME_SUFFIXES = (".dcm",)
FORMATS_HINT = "pip install 'adele[formats]'"
#: world coordinates: ITK's LPS <-> nibabel's RAS (the same flip both ways)
_LPS = np.diag([-1.0, -1.0, 1.0])
AXES = ("axial", "coronal", "sagittal")
AXIS_LETTER = {"axial": "z", "coronal": "y", "sagittal": "x"}
#: canonical (X, Y, Z) -> (slice, H, W) before flipping H and W
_PERM = {"axial": (2, 1, 0), "coronal": (1, 2, 0), "sagittal": (0, 2, 1)}
MODALITIES = ("ct", "mr", "none")
DEFAULT_WINDOW = (-1000.0, 1000.0)
DEFAULT_PERCENTILES = (0.5, 99.5)
SPEC_FILE = "volumes.json"
_FORMATS_TEXT = "NIfTI (.nii.gz, .nii), NRRD (.nrrd, .nhdr) and MetaImage (.mha, .mhd)"
_CHANNEL_RE = re.compile(r"^(.+)_(\d{4})$")


# ----------------------------------------------------------------------------- files


def volume_suffix(path: str | Path) -> str:
    name = str(path).lower()
    return next((s for s in VOLUME_SUFFIXES if name.endswith(s)), "")


def volume_stem(path: str | Path) -> str:
    name = Path(path).name
    s = volume_suffix(name)
    return name[: len(name) - len(s)] if s else name


@dataclass
class Volume:
    """A volume as stored: ``data`` (X, Y, Z) or (X, Y, Z, C), its RAS affine (4, 4) float64 and its header:
    the nibabel image (NIfTI) or an :class:`ItkHeader` (NRRD, MetaImage)."""

    path: Path
    data: np.ndarray
    affine: np.ndarray
    image: Any

    @property
    def shape3(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape[:3])  # type: ignore[return-value]


def read_volume(path: str | Path, kind: str = "image") -> Volume:
    """Read a NIfTI, NRRD or MetaImage volume; ``kind`` ``image`` (3D or 4D channels-last, finite; float32) or ``label``
    (3D integer ids 0..255; uint8). The array is (X, Y, Z[, C]) with its RAS affine, as nibabel gives a NIfTI."""
    p = Path(path)
    low = p.name.lower()
    if any(low.endswith(s) for s in OTHER_VOLUME_SUFFIXES):
        raise DatasetError(f"{p}: DICOM volumes are not read by adele; convert it to NIfTI (.nii.gz), NRRD or MHA, e.g. with SimpleITK: "
                           "sitk.WriteImage(sitk.ReadImage(path), 'x.nii.gz')")
    if not p.is_file():
        raise DatasetError(f"{p}: file not found")
    check_readable(p)
    data, affine, img = _read_itk(p) if volume_suffix(p) in ITK_SUFFIXES else _read_nifti(p)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[..., None]
    if data.size == 0:
        raise DatasetError(f"{p}: has shape {data.shape} with no voxels; replace the file")
    if kind == "label":
        if data.ndim != 3:
            raise DatasetError(f"{p}: label volume has shape {data.shape}; labels must be one 3D volume of class ids (X, Y, Z), not 4D")
        if np.issubdtype(data.dtype, np.floating):
            if not np.isfinite(data).all() or not np.array_equal(data, np.round(data)):
                raise DatasetError(f"{p}: label volume has non-integer values; labels must be integer class ids")
        elif not (np.issubdtype(data.dtype, np.integer) or data.dtype == np.bool_):
            raise DatasetError(f"{p}: label dtype {data.dtype} is not an integer type")
        if data.min() < 0 or data.max() > 255:
            raise DatasetError(f"{p}: label values span {data.min()}..{data.max()}; class ids must be 0..254 (255 = ignore)")
        data = data.astype(np.uint8)
    else:
        if data.ndim not in (3, 4):
            raise DatasetError(f"{p}: image has shape {data.shape}; expected a 3D volume (X, Y, Z) or 4D with channels last")
        if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
            raise DatasetError(f"{p}: image dtype {data.dtype} is not a real number type")
        data = data.astype(np.float32, copy=False)
        if not np.isfinite(data).all():
            n = int((~np.isfinite(data)).sum())
            raise DatasetError(f"{p}: image contains {n} NaN or inf voxel(s); fill or mask them before preparing")
    return Volume(p, data, affine, img)


def _read_nifti(p: Path) -> tuple[np.ndarray, np.ndarray, Any]:
    """(array as stored (X, Y, Z[, ...]), RAS affine (4, 4) float64, nibabel image) of a NIfTI file."""
    import nibabel as nib

    try:
        img = nib.load(str(p))
        return np.asarray(img.dataobj), np.asarray(img.affine, dtype=np.float64), img
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a file problem
        raise DatasetError(f"{p}: cannot be read as NIfTI ({type(exc).__name__}); replace the file") from None


@dataclass(frozen=True)
class ItkHeader:
    """What an NRRD/MetaImage file says besides its voxels, as SimpleITK gives it: x fastest, world in LPS (mm).

    ``direction`` is the row-major (D, D) matrix flattened; ``metadata`` the free-form key/value fields.
    """

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]
    dtype: np.dtype
    metadata: tuple[tuple[str, str], ...] = ()

    @property
    def affine(self) -> np.ndarray:
        return itk_affine(self.spacing, self.origin, self.direction)

    def get_data_dtype(self) -> np.dtype:
        """The stored voxel type, as nibabel's ``img.get_data_dtype()``."""
        return self.dtype


def _import_sitk(path: Path, doing: str):
    """The SimpleITK module, or a one-line DatasetError naming the install command."""
    try:
        import SimpleITK as sitk
    except ImportError:
        raise DatasetError(f"{path}: {doing} NRRD/MetaImage volumes needs SimpleITK, which is not installed; install it with "
                           f"{FORMATS_HINT}") from None
    return sitk


def itk_affine(spacing: Sequence[float], origin: Sequence[float], direction: Sequence[float]) -> np.ndarray:
    """SimpleITK geometry of a D-dimensional image (LPS) -> the (4, 4) float64 RAS affine of its first three axes,
    as nibabel gives for the same image saved as NIfTI; a 2D image gets a 1 mm third axis."""
    d, k = len(spacing), min(len(spacing), 3)
    rot, sp, org = np.eye(3), np.ones(3), np.zeros(3)
    rot[:k, :k] = np.reshape(np.asarray(direction, dtype=np.float64), (d, d))[:k, :k]
    sp[:k], org[:k] = spacing[:k], origin[:k]
    affine = np.eye(4)
    affine[:3, :3] = _LPS @ rot @ np.diag(sp)
    affine[:3, 3] = _LPS @ org
    return affine


def affine_to_itk(affine: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """Inverse of :func:`itk_affine` for 3D: (4, 4) RAS affine -> (spacing, origin, flattened direction) in LPS."""
    a = np.asarray(affine, dtype=np.float64)
    m = _LPS @ a[:3, :3]
    spacing = np.sqrt((m**2).sum(0))
    return tuple(spacing.tolist()), tuple((_LPS @ a[:3, 3]).tolist()), tuple((m / spacing).ravel().tolist())


def _read_itk(p: Path) -> tuple[np.ndarray, np.ndarray, ItkHeader]:
    """(array (X, Y, Z[, C]) in the stored type, RAS affine (4, 4) float64, header) of an NRRD/MetaImage file.

    SimpleITK's array is (Z, Y, X[, C]) (a 4D image (T, Z, Y, X)): its image axes are reversed, so the array
    and the affine mean what nibabel would give for the same image saved as NIfTI.
    """
    sitk = _import_sitk(p, "reading")
    try:
        img = sitk.ReadImage(str(p))
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a file problem
        fmt = "NRRD" if volume_suffix(p) in (".nrrd", ".nhdr") else "MetaImage"
        data_file = " and its data file" if volume_suffix(p) in DETACHED_SUFFIXES else ""
        raise DatasetError(f"{p}: cannot be read as {fmt} ({type(exc).__name__}); replace the file{data_file}") from None
    arr = sitk.GetArrayFromImage(img)
    dim = img.GetDimension()
    data = arr.transpose(tuple(range(dim - 1, -1, -1)) + tuple(range(dim, arr.ndim)))
    meta = tuple((k, img.GetMetaData(k)) for k in img.GetMetaDataKeys() if _portable_metadata(k, img.GetMetaData(k)))
    header = ItkHeader(tuple(img.GetSize()), tuple(img.GetSpacing()), tuple(img.GetOrigin()), tuple(img.GetDirection()), arr.dtype, meta)
    return data, header.affine, header


def _portable_metadata(key: str, value: str) -> bool:
    """Fields worth carrying to a written mask: not those the writers derive from the image (ITK_*, NRRD_*)."""
    return not key.startswith(("ITK_", "NRRD_")) and _writable_metadata(value)


def _writable_metadata(value: str) -> bool:
    """Not empty and not a value SimpleITK cannot print (a matrix): the writers skip those with a warning."""
    return bool(value) and not value.startswith("[UNKNOWN")


def same_grid(a: Volume, b: Volume) -> bool:
    return a.shape3 == b.shape3 and np.allclose(a.affine, b.affine, rtol=1e-4, atol=1e-3)


def check_same_grid(ref: Volume, other: Volume, what: str) -> None:
    name = f"{ref.path.parent.name}/{ref.path.name}"
    if ref.shape3 != other.shape3:
        raise DatasetError(f"{other.path}: {what} shape {other.shape3} differs from the image {name} {ref.shape3}; it must be on the image's voxel grid (resample it first)")
    if not np.allclose(ref.affine, other.affine, rtol=1e-4, atol=1e-3):
        raise DatasetError(f"{other.path}: {what} affine differs from the image {name} (voxel size, orientation or origin); it must be on the image's voxel grid")


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
    """nnU-Net ``labels`` {name: id} with ids 0..K-1 -> class names by id."""
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
    return tuple(by_id[i] for i in range(len(by_id)))


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
        classes = None
        if "classes" in meta:
            c = meta["classes"]
            if not isinstance(c, list) or len(c) < 2 or not all(isinstance(x, str) for x in c):
                raise DatasetError(f"{meta_path}: 'classes' must be a list of at least 2 class names, background first")
            classes = tuple(c)
        elif "labels" in meta:
            classes = classes_from_labels_dict(meta["labels"], meta_path)
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
                        str(meta.get("name", src.name)), test_dir if test_dir is not None and test_dir.is_dir() else None, notes)


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


# ----------------------------------------------------------------------------- writing


def _check_labels(lab: np.ndarray, classes: Sequence[str], ignore: int, path: Path, describe: Optional[str]) -> None:
    bad = (lab >= len(classes)) & (lab != ignore)
    if bad.any():
        vals = np.unique(lab[bad])[:5].tolist()
        what = describe or f"the dataset's classes are ids 0..{len(classes) - 1} ({', '.join(classes)})"
        raise DatasetError(f"{path}: has label values {vals}; {what}; fix the labels or the class list in dataset.json")


def write_volume_dataset(
    out: Path,
    plan: Mapping[str, Sequence[Case]],
    spec: VolumeSpec,
    classes: Sequence[str],
    name: str,
    ignore_index: int = 255,
    all_slices: bool = False,
    allow_empty: bool = False,
    overwrite: bool = False,
    summary: Optional[dict] = None,
    label_values: Optional[str] = None,
    log: Callable[[str], None] = print,
    extra_files: Optional[Mapping[str, str]] = None,
) -> dict:
    """Write ``plan`` ({split: cases}) as a generic dataset with ``volumes.json``; all or nothing. Returns the summary.
    ``extra_files``: {file name: text} written beside (e.g. ``splits_final.json``)."""
    spec.validate()
    letter = AXIS_LETTER[spec.axis]
    subjects: dict[str, dict] = {}
    counts: dict[str, int] = {}
    seen: dict[str, str] = {}
    for split, cases in plan.items():
        for c in cases:
            if c.subject in seen:
                raise DatasetError(f"subject {c.subject} is in both '{seen[c.subject]}' and '{split}'; put each subject in one split")
            seen[c.subject] = split
    inputs = sorted({p.parent for cases in plan.values() for c in cases for p in (*c.images, c.label, c.clean) if p is not None})
    with staged_output(out, f"data prepare {name if name == 'segthor' else 'volumes'}", inputs, overwrite, flag="output folder") as tmp:
        write_dataset_json(tmp, name, classes, ignore_index)
        for split in SPLITS:
            n = 0
            for case in plan.get(split, ()):
                chans = [read_volume(p, "image") for p in case.images]
                for v in chans[1:]:
                    check_same_grid(chans[0], v, "channel")
                lab = read_volume(case.label, "label")
                check_same_grid(chans[0], lab, "label")
                _check_labels(lab.data, classes, ignore_index, lab.path, label_values)
                clean = None
                if case.clean is not None:
                    clean = read_volume(case.clean, "label")
                    check_same_grid(chans[0], clean, "label")
                    _check_labels(clean.data, classes, ignore_index, clean.path, label_values)
                fg_any = (lab.data > 0) & (lab.data != ignore_index)
                if clean is not None:
                    fg_any |= (clean.data > 0) & (clean.data != ignore_index)
                if not fg_any.any() and not allow_empty:
                    raise DatasetError(f"{lab.path}: label volume has no foreground voxel (all background); fix or remove the subject, or pass --allow-empty")
                img = image_slices(chans, spec)
                lab_sl = label_slices(lab, img.ornt, spec.axis)
                # the training labels of val/test are the clean reference when there is one
                main = lab_sl if (clean is None or split == "train") else label_slices(clean, img.ornt, spec.axis)
                clean_sl = label_slices(clean, img.ornt, spec.axis) if (clean is not None and split == "train") else None
                fg = label_slices(Volume(lab.path, fg_any.astype(np.uint8), lab.affine, None), img.ornt, spec.axis)
                keep = np.arange(len(lab_sl)) if all_slices else np.flatnonzero(fg.reshape(len(fg), -1).max(1) > 0)
                if keep.size == 0:
                    log(f"warning: {case.subject} has no labelled slice; skipped")
                    continue
                size = img.slices.shape[1:3]
                main_r = resample_labels(main[keep], size)
                clean_r = resample_labels(clean_sl[keep], size) if clean_sl is not None else None
                ids: dict[str, int] = {}
                for j, k in enumerate(keep):
                    sid = f"{case.subject}_{letter}{int(k):03d}"
                    im = img.slices[k]
                    if spec.storage == "png16":
                        write_array(tmp / split / "images" / f"{sid}.png", quantize16(im[..., 0]))
                    else:
                        write_array(tmp / split / "images" / f"{sid}.npy", im[..., 0] if im.shape[-1] == 1 else im)
                    write_array(tmp / split / "labels" / f"{sid}.png", main_r[j])
                    if clean_r is not None:
                        write_array(tmp / split / "labels_clean" / f"{sid}.png", clean_r[j])
                    ids[sid] = int(k)
                ending = volume_suffix(case.label) or ".nii.gz"
                rec = {
                    "split": split, "images": [str(p) for p in case.images], "label": str(case.label),
                    "clean": None if case.clean is None else str(case.clean),
                    "shape": list(lab.shape3), "affine": np.round(lab.affine, 6).tolist(), "ornt": img.ornt.astype(int).tolist(),
                    "spacing": [round(s, 6) for s in img.spacing], "native_hw": list(img.native_hw), "size_hw": [int(size[0]), int(size[1])],
                    "num_slices": int(len(lab_sl)), "slices": ids,
                    "label_file": f"native/labels/{case.subject}{ending}",
                    "clean_file": None if case.clean is None else f"native/labels_clean/{case.subject}{ending}",
                }
                copy_volume_file(case.label, tmp / rec["label_file"])
                if case.clean is not None:
                    copy_volume_file(case.clean, tmp / rec["clean_file"])
                subjects[case.subject] = rec
                n += len(keep)
                log(f"{split}: {case.subject}: {len(keep)} slices")
            if n == 0 and split in ("train", "val"):
                raise DatasetError(f"{out}: no {split} slice with foreground; check the label volumes or pass --all-slices")
            if n:
                counts[split] = n
        (tmp / SPEC_FILE).write_text(json.dumps({"version": 1, "spec": spec.to_dict(), "classes": list(classes),
                                                  "ignore_index": ignore_index, "subjects": subjects}, indent=1) + "\n")
        summary = dict(summary or {})
        summary.setdefault("subjects", {k: [c.subject for c in v if c.subject in subjects] for k, v in plan.items()})
        summary["images"] = counts
        (tmp / "prepare.json").write_text(json.dumps(summary, indent=1) + "\n")
        for fname, text in (extra_files or {}).items():
            (tmp / fname).write_text(text)
    log(f"wrote {out}: " + ", ".join(f"{k} {v} slices" for k, v in counts.items()))
    return summary


def infer_classes(cases: Sequence[Case]) -> tuple[str, ...]:
    """Class names from the label values when no dataset.json lists them: background, class_1, ..., class_K."""
    top = 0
    for c in cases:
        for p in (c.label, c.clean):
            if p is not None:
                d = read_volume(p, "label").data
                top = max(top, int(d[d != 255].max(initial=0)))
    return ("background",) + tuple(f"class_{i}" for i in range(1, max(top, 1) + 1))


def guess_modality(case: Case) -> str:
    """``ct`` when the first volume has values below -500 (Hounsfield units), else ``mr``."""
    v = read_volume(case.images[0], "image").data
    return "ct" if float(np.percentile(v, 1)) < -500 else "mr"


def _modality_of_channel(name: str) -> str:
    n = name.strip().lower()
    if n == "ct":
        return "ct"
    if n in ("nonorm", "none", "rescale_to_0_1", "rgb_to_0_1"):
        return "none"
    return "mr"


def prepare_volumes(
    src: str | Path,
    out: str | Path,
    axis: str = "axial",
    size: Optional[Sequence[int]] = None,
    spacing: Optional[Sequence[float]] = None,
    modality: str = "auto",
    window: Sequence[float] = DEFAULT_WINDOW,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    context: int = 0,
    all_slices: bool = False,
    allow_empty: bool = False,
    split: Optional[Mapping[str, Sequence[str]]] = None,
    noisy_labels: Optional[str | Path] = None,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    fold: Optional[int] = None,
    folds: Optional[Sequence[Mapping[str, Sequence[str]]]] = None,
    n_folds: int = NNUNET_FOLDS,
) -> dict:
    """``adele data prepare volumes SRC OUT``: any generic or nnU-Net volume folder -> the generic 2D format (module doc).

    ``fold``: cross-validation as nnU-Net: train/val are fold ``fold`` of ``folds`` (nnU-Net's splits_final.json; by
    default SRC/splits_final.json if there is one, else :func:`generate_folds` with ``n_folds``), written to
    OUT/splits_final.json; the test split is the labelled test cases (nnU-Net imagesTs + labelsTs), if any."""
    if spacing is not None and len(spacing) == 1:
        spacing = (spacing[0], spacing[0])
    if modality not in ("auto",) + MODALITIES:
        raise DatasetError(f"--modality {modality}: use auto, {', '.join(MODALITIES)}")
    # the options first, before any file is read
    VolumeSpec(axis=axis, size=None if size is None else tuple(size), spacing=None if spacing is None else tuple(spacing),  # type: ignore[arg-type]
               window=tuple(window), percentiles=tuple(percentiles), context=int(context)).validate()  # type: ignore[arg-type]
    lay = find_volumes(src, noisy_labels)
    for note in lay.notes:
        log(f"note: {note}")
    names = lay.channel_names
    if modality == "auto":
        if names:
            mods = tuple(_modality_of_channel(n) for n in names)
        else:
            mods = (guess_modality(lay.cases[0]),)
            log(f"intensities: {mods[0].upper()} ({'window ' + str(list(window)) + ' HU' if mods[0] == 'ct' else 'percentile clip + z-score'}), "
                f"guessed from {lay.cases[0].images[0].name}; pass --modality to choose")
    else:
        if modality not in MODALITIES:
            raise DatasetError(f"--modality {modality}: use auto, {', '.join(MODALITIES)}")
        mods = None  # type: ignore[assignment]
    if names is None:
        v0 = read_volume(lay.cases[0].images[0], "image").data
        n = len(lay.cases[0].images) * (1 if v0.ndim == 3 else v0.shape[3])
        names = ("image",) if n == 1 else tuple(f"channel_{i}" for i in range(n))
    if mods is None:
        mods = (modality,) * len(names)
    elif len(mods) != len(names):
        mods = (mods[0],) * len(names)
    storage = "png16" if (len(mods) == 1 and mods[0] == "ct" and context == 0) else "npy"
    spec = VolumeSpec(axis=axis, size=None if size is None else (int(size[0]), int(size[1])),
                      spacing=None if spacing is None else (float(spacing[0]), float(spacing[1])), modality=tuple(mods),
                      window=(float(window[0]), float(window[1])), percentiles=(float(percentiles[0]), float(percentiles[1])),
                      context=int(context), channel_names=tuple(names), storage=storage, layout=lay.layout, file_ending=lay.file_ending).validate()
    classes = lay.classes or infer_classes(lay.cases)
    if lay.classes is None:
        log(f"classes: {', '.join(classes)} (from the label values; list names in {Path(src) / 'dataset.json'} as {{\"classes\": [...]}})")
    by_name = {c.subject: c for c in lay.cases}
    extra_files: dict[str, str] = {}
    if fold is not None:
        if split is not None:
            raise DatasetError("--fold reads the folds of splits_final.json (nnU-Net's list of {train, val}); a {train, val, test} split "
                               "file is for a single split without --fold")
        plan_names, split_used, folds = _fold_plan(Path(src), lay, by_name, fold, folds, n_folds, log)
        extra_files[SPLITS_FINAL] = json.dumps(list(folds), indent=1) + "\n"
    elif split is not None:
        unknown = sorted({s for v in split.values() for s in v} - set(by_name))
        if unknown:
            raise DatasetError(f"split file: subject(s) {', '.join(unknown[:5])} not in {src}; fix the names")
        plan_names = {k: tuple(v) for k, v in split.items()}
        left = sorted(set(by_name) - {s for v in plan_names.values() for s in v})
        if left:
            log(f"warning: {len(left)} subject(s) not in the split file, skipped: {', '.join(left)}")
        split_used = "given"
    else:
        plan_names = fallback_split(list(by_name))
        split_used = "sorted-fallback"
        held = len(plan_names["val"]) + len(plan_names["test"])
        if len(by_name) < 10:
            log(f"note: {len(by_name)} subjects: the default split holds out {held} of them ({100 * held // len(by_name)}%) for val and "
                "test; cross-validate with --fold 0..4 (nnU-Net's 5 folds) and ensemble the folds in `adele predict`")
    plan = {k: [by_name[s] for s in v] for k, v in plan_names.items()}
    size_text = (f"{spec.size[0]}x{spec.size[1]} px" if spec.size else f"{spec.spacing[0]:g}x{spec.spacing[1]:g} mm" if spec.spacing else "native grid")
    log(f"{lay.layout} layout, {len(lay.cases)} subjects, channels {', '.join(names)}: {spec.axis} slices, "
        + ", ".join(f"{m.upper()} {'window ' + str(list(spec.window)) + ' HU' if m == 'ct' else 'percentile clip + z-score' if m == 'mr' else 'as stored'}"
                    for m in dict.fromkeys(spec.modality))
        + f", in-plane {size_text}" + (f", {spec.context} neighbour slice(s) per side" if spec.context else "")
        + ("; noisy labels for training, the others as clean reference" if any(c.clean is not None for c in lay.cases) else ""))
    summary = {
        "dataset": lay.name, "source": str(src), "layout": lay.layout, "split": split_used,
        "subjects": {k: list(v) for k, v in plan_names.items()}, "spec": spec.to_dict(),
        "slices": "all" if all_slices else "foreground", "noisy_labels": any(c.clean is not None for c in lay.cases),
        "test_images": None if lay.test_images is None else str(lay.test_images),
        **({"fold": int(fold), "folds": len(folds or ())} if fold is not None else {}),
    }
    return write_volume_dataset(Path(out), plan, spec, classes, lay.name, all_slices=all_slices, allow_empty=allow_empty,
                                overwrite=overwrite, summary=summary, log=log, extra_files=extra_files)


def find_test_cases(src: Path, lay: VolumeLayout) -> list[Case]:
    """The labelled test cases of an nnU-Net folder: imagesTs cases that have a label in labelsTs (none for other layouts)."""
    img_dir, lab_dir = src / "imagesTs", src / "labelsTs"
    if lay.layout != "nnunet" or not img_dir.is_dir() or not lab_dir.is_dir():
        return []
    n = len(lay.channel_names) if lay.channel_names else None
    images = _group_channels(_volume_files(img_dir), img_dir, n, lay.file_ending)
    labels = _volume_files(lab_dir)
    return [Case(c, images[c], labels[c]) for c in sorted(images) if c in labels]


def _fold_plan(src: Path, lay: VolumeLayout, by_name: dict, fold: int, folds, n_folds: int, log: Callable[[str], None]):
    """({split: subjects} of fold ``fold``, how the split was made, the folds); adds the labelled test cases to ``by_name``."""
    if folds is None and (src / SPLITS_FINAL).is_file():
        folds, origin = read_folds(src / SPLITS_FINAL), f"{src / SPLITS_FINAL}"
    elif folds is None:
        folds, origin = generate_folds(list(by_name), n_folds), f"generated: {n_folds} folds, nnU-Net's seed {NNUNET_SPLIT_SEED}"
    else:
        origin = "given"
    if not 0 <= fold < len(folds):
        raise DatasetError(f"--fold {fold}: the split has folds 0..{len(folds) - 1}")
    names = {"train": tuple(folds[fold]["train"]), "val": tuple(folds[fold]["val"])}
    unknown = sorted(set(names["train"] + names["val"]) - set(by_name))
    if unknown:
        raise DatasetError(f"fold {fold}: subject(s) {', '.join(unknown[:5])} not in {src}; fix splits_final.json")
    test = find_test_cases(src, lay)
    clash = sorted({c.subject for c in test} & set(by_name))
    if clash:
        raise DatasetError(f"{src / 'imagesTs'}: case {clash[0]} is also a training case; rename it")
    by_name.update({c.subject: c for c in test})
    if test:
        names["test"] = tuple(c.subject for c in test)
    log(f"fold {fold} of {len(folds)} ({origin}): {len(names['train'])} train, {len(names['val'])} val subjects"
        + (f"; test: the {len(test)} labelled case(s) of imagesTs" if test else "; no labelled test cases (imagesTs + labelsTs)"))
    return names, f"fold {fold}", folds


# ----------------------------------------------------------------------------- reading back


def read_volume_index(root: str | Path) -> Optional[dict]:
    """``DIR/volumes.json`` of a prepared dataset, or None for a 2D dataset."""
    p = Path(root) / SPEC_FILE
    if not p.is_file():
        return None
    data = _read_json(p)
    if "spec" not in data or "subjects" not in data:
        raise DatasetError(f"{p}: not a volume index written by `adele data prepare volumes`; re-prepare the dataset")
    return data


def copy_volume_index(src_root: Path, dst_root: Path, noised_splits: Sequence[str]) -> None:
    """For a copy of a prepared volume dataset whose ``noised_splits`` got new (synthetic) labels: keep ``volumes.json``
    and ``native/``, and note that those splits' labels exist only as slices."""
    idx = read_volume_index(src_root)
    if idx is None:
        return
    idx["noised_splits"] = sorted(set(idx.get("noised_splits", [])) | set(noised_splits))
    (Path(dst_root) / SPEC_FILE).write_text(json.dumps(idx, indent=1) + "\n")
    if (Path(src_root) / "native").is_dir():
        shutil.copytree(Path(src_root) / "native", Path(dst_root) / "native")


def copy_volume_spec(source, run_dir: Path) -> None:
    """Save the volume steps of ``source`` (if it is a prepared volume dataset) as ``RUN/volumes.json`` for ``adele predict``."""
    root = getattr(source, "root", None)
    idx = read_volume_index(root) if root is not None else None
    if idx is None:
        return
    atomic_write_text(json.dumps({"version": 1, "spec": idx["spec"], "classes": idx["classes"], "dataset": str(root)}, indent=1) + "\n",
                      Path(run_dir) / SPEC_FILE)


def run_volume_spec(run_dir: str | Path, data_path: Optional[str] = None) -> Optional[VolumeSpec]:
    """The volume steps a run was trained with: ``RUN/volumes.json``, else the dataset's; None for 2D runs."""
    p = Path(run_dir) / SPEC_FILE
    if p.is_file():
        return VolumeSpec.from_dict(_read_json(p)["spec"])
    if data_path and data_path not in EMBEDDED and Path(data_path).is_dir():
        idx = read_volume_index(data_path)
        if idx is not None:
            return VolumeSpec.from_dict(idx["spec"])
    return None


def write_label_volume(path: Path, arr: np.ndarray, like: Volume, dtype=None) -> None:
    """Write ``arr`` (stored orientation) atomically with the affine and header of ``like`` (no intensity scaling)."""
    write_volume_like(path, arr, like.image, dtype)


def write_volume_like(path: Path, arr: np.ndarray, img, dtype=None) -> None:
    """Write ``arr`` (X, Y, Z) atomically in the format of ``path``'s suffix (NIfTI, NRRD or MetaImage), on the grid and with
    the header of ``img`` (a :class:`Volume`'s ``image``: a nibabel image or an :class:`ItkHeader`); uint8 unless ``dtype``."""
    if volume_suffix(path) in ITK_SUFFIXES:
        write_itk_like(path, arr, img, dtype)
    else:
        if isinstance(img, ItkHeader):  # NIfTI written like an NRRD/MetaImage volume: its grid, a plain header
            import nibabel as nib

            img = nib.Nifti1Image(np.zeros((1, 1, 1), np.uint8), img.affine)
        write_nifti_like(path, arr, img, dtype)


def write_itk_like(path: Path, arr: np.ndarray, img, dtype=None) -> None:
    """Write ``arr`` (X, Y, Z) atomically as NRRD or MetaImage (by ``path``'s suffix, compressed) through SimpleITK.

    ``img``: an :class:`ItkHeader` of the same size gives its spacing, origin, direction and metadata unchanged (what
    ``CopyInformation`` copies, and more); otherwise the grid comes from ``img.affine`` (any volume header). uint8 unless ``dtype``.
    """
    sitk = _import_sitk(path, "writing")
    a = np.asarray(arr).astype(np.dtype(dtype) if dtype is not None else np.uint8)
    out = sitk.GetImageFromArray(np.ascontiguousarray(a.transpose(tuple(range(a.ndim))[::-1])))
    if isinstance(img, ItkHeader) and tuple(img.size) == a.shape:
        spacing, origin, direction = img.spacing, img.origin, img.direction
    else:
        spacing, origin, direction = affine_to_itk(np.asarray(img.affine))
    out.SetSpacing(spacing)
    out.SetOrigin(origin)
    out.SetDirection(direction)
    for key, value in img.metadata if isinstance(img, ItkHeader) else ():
        out.SetMetaData(key, value)
    _write_itk_atomic(sitk, out, Path(path))


def _write_itk_atomic(sitk, image, path: Path) -> None:
    """``sitk.WriteImage`` (compressed) into a hidden folder beside ``path``, then renamed into place: a detached
    header's data file (named after it) first, the header last."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}", suffix=".tmp"))
    try:
        sitk.WriteImage(image, str(tmp / path.name), True)
        for f in sorted(tmp.iterdir(), key=lambda f: f.name == path.name):
            os.replace(f, path.parent / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def copy_volume_file(src: Path, dst: Path) -> None:
    """Copy a volume file byte for byte; a detached header (.nhdr, .mhd) is rewritten with its data file beside it."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if volume_suffix(src) not in DETACHED_SUFFIXES:
        shutil.copyfile(src, dst)
        return
    sitk = _import_sitk(src, "reading")
    img = sitk.ReadImage(str(src))
    for key in img.GetMetaDataKeys():
        if not _writable_metadata(img.GetMetaData(key)):
            img.EraseMetaData(key)
    _write_itk_atomic(sitk, img, dst)


def write_nifti_like(path: Path, arr: np.ndarray, img, dtype=None) -> None:
    """Write ``arr`` atomically with the affine and header of the NIfTI image ``img`` (uint8 unless ``dtype``; no intensity scaling)."""
    dt = np.dtype(dtype) if dtype is not None else np.dtype(np.uint8)
    new = type(img)(np.asarray(arr).astype(dt), img.affine, img.header.copy())
    new.set_data_dtype(dt)
    new.header.set_slope_inter(1.0, 0.0)
    data = new.to_bytes()
    if path.name.lower().endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    atomic_write_bytes(data, path)
