"""Volume files: NIfTI (nibabel), NRRD and MetaImage (SimpleITK, ``adele[formats]``) read as one array + RAS affine, and
masks written back in their input's format and grid (see :mod:`adele.data.volumes`)."""
from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import DatasetError
from ..safety import atomic_write_bytes
from .io import check_readable


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
_FORMATS_TEXT = "NIfTI (.nii.gz, .nii), NRRD (.nrrd, .nhdr) and MetaImage (.mha, .mhd)"



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


def check_same_grid(ref: Volume, other: Volume, what: str) -> None:
    name = f"{ref.path.parent.name}/{ref.path.name}"
    if ref.shape3 != other.shape3:
        raise DatasetError(f"{other.path}: {what} shape {other.shape3} differs from the image {name} {ref.shape3}; it must be on the image's voxel grid (resample it first)")
    if not np.allclose(ref.affine, other.affine, rtol=1e-4, atol=1e-3):
        raise DatasetError(f"{other.path}: {what} affine differs from the image {name} (voxel size, orientation or origin); it must be on the image's voxel grid")




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
