"""Read and write 2D images and label maps: PNG (8/16-bit), JPEG (images only), NPY, NIfTI (.nii/.nii.gz).

NPY images may also be ``(H, W, C)`` with several channels (volume modalities,
neighbour slices; see :mod:`adele.data.volumes`).

Images come back as ``float32 (H, W)`` or ``(H, W, 3)`` scaled to [0, 1] for
integer PNGs and JPEGs (8-bit / 255, 16-bit / 65535) and as stored for
NPY/NIfTI. Labels come back as ``uint8 (H, W)``; a JPEG label is refused
(lossy compression changes class ids at edges). Every failure is a one-line
:class:`~adele.errors.DatasetError` naming the file. JPEG is read, never written.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..safety import temp_file_beside

SUFFIXES = (".png", ".npy", ".nii.gz", ".nii", ".jpg", ".jpeg")
#: most channels of a multi-channel (H, W, C) NPY image (volume modalities x neighbour slices)
MAX_CHANNELS = 32
#: suffixes allowed for images only (lossy: never for labels, never written)
IMAGE_ONLY_SUFFIXES = (".jpg", ".jpeg")


def suffix_of(path: str | Path) -> str:
    name = str(path).lower()
    for s in SUFFIXES:
        if name.endswith(s):
            return s
    return ""


def stem_of(path: str | Path) -> str:
    name = Path(path).name
    s = suffix_of(name)
    return name[: len(name) - len(s)] if s else name


def check_readable(path: str | Path) -> None:
    """A file the process may not read gets its own message, not a decoder's ("cannot be decoded")."""
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise DatasetError(f"{path}: permission denied; make the file readable for this user (e.g. chmod a+r) and run again") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a folder, not a file; move it out of the dataset or replace it with the file") from None


def _read_raw(path: Path) -> np.ndarray:
    s = suffix_of(path)
    check_readable(path)
    try:
        if s == ".png":
            from PIL import Image

            with Image.open(path) as im:
                im.load()
                if im.mode == "P":
                    # palette PNGs (PASCAL VOC style): the indices are the class ids
                    return np.asarray(im)
                if im.mode in ("RGBA", "LA"):
                    im = im.convert("RGB" if im.mode == "RGBA" else "L")
                arr = np.asarray(im)
                if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                    arr = arr.astype(np.uint16) if arr.max(initial=0) <= 65535 else arr
                return arr
        if s in IMAGE_ONLY_SUFFIXES:
            from PIL import Image

            with Image.open(path) as im:
                im.load()
                if im.mode not in ("L", "RGB"):
                    im = im.convert("RGB")
                return np.asarray(im)
        if s == ".npy":
            return np.load(path, allow_pickle=False)
        if s in (".nii", ".nii.gz"):
            import nibabel as nib

            arr = np.asarray(nib.load(str(path)).dataobj)
            return np.squeeze(arr)
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a user-facing file problem
        raise DatasetError(f"{path}: cannot be decoded ({type(exc).__name__}); replace the file with a valid {s or 'image'}") from None
    raise DatasetError(f"{path}: unsupported file type; use one of {', '.join(SUFFIXES)}")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image: ``float32 (H, W)`` or ``(H, W, 3)``; integer PNG scaled to [0, 1]."""
    path = Path(path)
    arr = _read_raw(path)
    if arr.ndim == 3 and arr.shape[-1] not in (1, 3) and arr.shape[0] in (1, 3):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    multi = arr.ndim == 3 and suffix_of(path) == ".npy" and 2 <= arr.shape[-1] <= MAX_CHANNELS
    if arr.ndim == 3 and arr.shape[-1] != 3 and not multi and suffix_of(path) in (".nii", ".nii.gz"):
        raise DatasetError(f"{path}: is a 3D volume {arr.shape}; the generic format holds 2D slices: convert a folder of volumes with "
                           "`adele data prepare volumes SRC OUT` (images/ and labels/, or nnU-Net imagesTr/ and labelsTr/)")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != 3 and not multi):
        raise DatasetError(f"{path}: image has shape {arr.shape}; expected (H, W) grayscale, (H, W, 3) RGB or an (H, W, C) NPY with C <= {MAX_CHANNELS}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DatasetError(f"{path}: image is empty ({arr.shape[0]} x {arr.shape[1]} pixels); replace or remove it")
    if arr.dtype == np.uint8 and suffix_of(path) in (".png",) + IMAGE_ONLY_SUFFIXES:
        out = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16 and suffix_of(path) == ".png":
        out = arr.astype(np.float32) / 65535.0
    elif np.issubdtype(arr.dtype, np.number) and not np.issubdtype(arr.dtype, np.complexfloating):
        out = arr.astype(np.float32)
    else:
        raise DatasetError(f"{path}: image dtype {arr.dtype} is not numeric")
    if not np.isfinite(out).all():
        raise DatasetError(f"{path}: image contains NaN or inf values; clean or drop this image")
    return out


def read_label(path: str | Path) -> np.ndarray:
    """Read a label map: ``uint8 (H, W)`` of class ids (255 = ignore by default)."""
    path = Path(path)
    if suffix_of(path) in IMAGE_ONLY_SUFFIXES:
        raise DatasetError(f"{path}: JPEG labels are lossy (class ids change at edges); save labels as PNG, NPY or NIfTI")
    arr = _read_raw(path)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        raise DatasetError(f"{path}: label is an RGB(A) image; labels must be single-channel class ids (convert colours to ids first)")
    if arr.ndim == 3 and suffix_of(path) in (".nii", ".nii.gz"):
        raise DatasetError(f"{path}: is a 3D label volume {arr.shape}; the generic format holds 2D slices: convert a folder of volumes with "
                           "`adele data prepare volumes SRC OUT`")
    if arr.ndim != 2:
        raise DatasetError(f"{path}: label has shape {arr.shape}; expected (H, W) class ids")
    if arr.size == 0:
        raise DatasetError(f"{path}: label is empty ({arr.shape[0]} x {arr.shape[1]} pixels); replace or remove it")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or not np.all(arr == np.round(arr)):
            raise DatasetError(f"{path}: label has non-integer values; labels must be integer class ids")
    elif not np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_:
        raise DatasetError(f"{path}: label dtype {arr.dtype} is not an integer type")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise DatasetError(f"{path}: label values span {arr.min()}..{arr.max()}; class ids must be 0..254 (255 = ignore)")
    return arr.astype(np.uint8)


def write_array(path: str | Path, arr: np.ndarray, like: str | Path | None = None) -> None:
    """Write ``arr`` to ``path`` atomically in the format given by its suffix.

    PNG: uint8 (labels, 8-bit images) or uint16; float images in [0,1] are saved
    as 8-bit. NPY: as is. NIfTI: with the affine/header of ``like`` when given.
    """
    path = Path(path)
    s = suffix_of(path)
    tmp = temp_file_beside(path)
    try:
        if s == ".png":
            from PIL import Image

            a = np.asarray(arr)
            if np.issubdtype(a.dtype, np.floating):
                a = np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)
            Image.fromarray(a).save(tmp, format="PNG")
        elif s == ".npy":
            with open(tmp, "wb") as fh:
                np.save(fh, np.asarray(arr), allow_pickle=False)
        elif s in (".nii", ".nii.gz"):
            import nibabel as nib

            if like is not None:
                ref = nib.load(str(like))
                img = nib.Nifti1Image(np.asarray(arr), ref.affine, ref.header)
                img.set_data_dtype(np.asarray(arr).dtype)
            else:
                img = nib.Nifti1Image(np.asarray(arr), np.eye(4))
            tmp_nii = tmp.with_name(tmp.name + s)
            nib.save(img, str(tmp_nii))
            os.replace(tmp_nii, tmp)
        else:
            kinds = [x for x in SUFFIXES if x not in IMAGE_ONLY_SUFFIXES]
            raise DatasetError(f"{path}: unsupported output type; use one of {', '.join(kinds)}")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
