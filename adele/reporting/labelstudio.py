"""Label Studio tasks of an ``adele export-labels`` folder: the masks to review, worst first.

``write_labelstudio(OUT, ...)`` writes

    OUT/labelstudio/tasks.json    one task per training image, most suspicious first
    OUT/labelstudio/config.xml    the labeling config of the project to import them into
    OUT/labelstudio/images/       8-bit PNG views of images Label Studio cannot show (NPY: volume slices, z-scored images)

Each task holds the image (``data.image``: ``/data/local-files/?d=<path relative to OUT>``,
Label Studio's local-storage URL), the exported corrected mask (``train/labels/``) as one
``brushlabels`` prediction result per class present, and the image's score from
``label_quality.csv`` as the prediction score (lower = more suspicious), so that sorting the data
manager's "Prediction score" column ascending lists the worst masks first (tasks.json is in that
order too). Background (class 0) is what no brush covers; pixels at ``ignore_index``, if any, are
painted with an extra ``ignore`` label so that a round trip is exact.

Label Studio's brush RLE (the ``rle`` of a ``brushlabels`` result) encodes the flattened RGBA image
of the mask, ``H * W * 4`` bytes, the mask in every channel as 0/255, as a bit stream (most
significant bit first): a 32-bit value count, the word size minus one (5 bits), four run-length
field widths minus one (4 bits each; 3, 4, 8, 16), then blocks of a flag bit (1: one word repeated,
0: words given one by one), a 2-bit index into the widths, the block length minus one in that
many bits and the word(s); zero bits pad the last byte. :func:`encode_rle` writes the blocks
Label Studio's converter writes (byte for byte the same list); :func:`decode_rle` reads any.

Label Studio has no 3D labeling of NIfTI volumes: for volume datasets the tasks are the 2D slices
the run trained on, with ``subject`` and ``slice`` in their data (a column of the data manager, to
filter or sort by subject).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Optional, Sequence
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np

from ..data.io import read_label, write_array
from ..errors import DatasetError
from .figures import class_colors

WORD_BITS = 8
RUN_FIELD_BITS = (3, 4, 8, 16)
MAX_BLOCK = 1 << RUN_FIELD_BITS[-1]
LOCAL_FILES = "/data/local-files/?d="
#: label_quality.csv columns and their types in the tasks' data (others are kept as text)
_COLUMN_TYPES = {"rank": int, "score": float, "disagree_frac": float, "suspect_pixels": int, "true_error_frac": float, "slice": int}


def _bits(values: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Concatenated big-endian bit fields: ``values[i]`` in ``widths[i]`` bits, as a 0/1 uint8 array."""
    starts = np.cumsum(widths) - widths
    field = np.repeat(np.arange(len(widths)), widths)
    shift = widths[field] - 1 - (np.arange(int(widths.sum())) - starts[field])
    return ((values[field] >> shift) & 1).astype(np.uint8)


def array_to_rle(values) -> list[int]:
    """Label Studio's RLE of a flat array of bytes (0..255): the list of ints of a ``brushlabels`` result's ``rle``."""
    a = np.asarray(values).ravel()
    integers = np.issubdtype(a.dtype, np.integer) or a.dtype == bool
    if a.size and (not integers or a.min() < 0 or a.max() > 255):
        raise DatasetError("Label Studio RLE: the values must be integers in 0..255 (a flattened RGBA uint8 image)")
    if a.size >= 1 << 32:
        raise DatasetError(f"Label Studio RLE: {a.size} values do not fit its 32-bit count; export smaller images")
    a = a.astype(np.int64)
    n = a.size
    head_vals = [n, WORD_BITS - 1] + [w - 1 for w in RUN_FIELD_BITS]
    head_widths = [32, 5] + [4] * len(RUN_FIELD_BITS)
    if n:
        starts = np.concatenate([[0], np.flatnonzero(a[1:] != a[:-1]) + 1])
        runs = np.diff(np.append(starts, n))
        # runs longer than the widest field are cut into blocks of MAX_BLOCK, the rest last
        pieces = -(-runs // MAX_BLOCK)
        length = np.full(int(pieces.sum()), MAX_BLOCK, dtype=np.int64)
        length[np.cumsum(pieces) - 1] = runs - MAX_BLOCK * (pieces - 1)
        word = np.repeat(a[starts], pieces)
        idx = (length > 8).astype(np.int64) + (length > 16) + (length > 256)
        body_vals = np.stack([(length > 1).astype(np.int64), idx, length - 1, word], 1).ravel()
        body_widths = np.stack([np.ones_like(idx), np.full_like(idx, 2), np.asarray(RUN_FIELD_BITS)[idx],
                                np.full_like(idx, WORD_BITS)], 1).ravel()
    else:
        body_vals = body_widths = np.zeros(0, dtype=np.int64)
    vals = np.concatenate([np.asarray(head_vals, dtype=np.int64), body_vals])
    widths = np.concatenate([np.asarray(head_widths, dtype=np.int64), body_widths])
    bits = _bits(vals, widths)
    # 1 to 8 zero bits close the stream (a whole zero byte when it ends on a byte boundary, as Label Studio's converter writes)
    bits = np.concatenate([bits, np.zeros(8 - bits.size % 8, dtype=np.uint8)])
    return np.packbits(bits).tolist()


class _BitReader:
    def __init__(self, data: bytes):
        self.data, self.pos, self.size = data, 0, 8 * len(data)

    def read(self, k: int) -> int:
        end = self.pos + k
        if end > self.size:
            raise DatasetError(f"Label Studio RLE: truncated ({len(self.data)} bytes end inside a block); re-export the annotation")
        first, last = self.pos // 8, (end - 1) // 8
        chunk = int.from_bytes(self.data[first:last + 1], "big")
        self.pos = end
        return (chunk >> (8 * (last + 1) - end)) & ((1 << k) - 1)


def rle_to_array(rle: Sequence[int]) -> np.ndarray:
    """The flat array a Label Studio RLE encodes (uint8 for word sizes up to 8 bits)."""
    try:
        data = bytes(int(v) for v in rle)
    except (TypeError, ValueError) as e:
        raise DatasetError(f"Label Studio RLE: expected a list of integers in 0..255 ({e})") from None
    r = _BitReader(data)
    n, word = r.read(32), r.read(5) + 1
    widths = [r.read(4) + 1 for _ in range(4)]
    out = np.zeros(n, dtype=np.uint8 if word <= 8 else np.uint16 if word <= 16 else np.uint32)
    i = 0
    while i < n:
        repeat = r.read(1)
        j = i + 1 + r.read(widths[r.read(2)])
        if j > n:
            raise DatasetError(f"Label Studio RLE: a block runs past the {n} values the header announces")
        if repeat:
            out[i:j] = r.read(word)
        else:
            out[i:j] = [r.read(word) for _ in range(j - i)]
        i = j
    return out


def encode_rle(mask) -> list[int]:
    """RLE of a 2D mask (nonzero = inside) as Label Studio's brush stores it: RGBA, 255 in all four channels inside."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise DatasetError(f"Label Studio RLE: expected a 2D mask, got shape {m.shape}")
    return array_to_rle(np.repeat(np.where(m != 0, 255, 0).astype(np.uint8).ravel(), 4))


def decode_rle(rle: Sequence[int], height: int, width: int) -> np.ndarray:
    """The (height, width) bool mask of a brush RLE: its alpha channel above 0 (as Label Studio's converter reads it)."""
    flat = rle_to_array(rle)
    if flat.size != height * width * 4:
        raise DatasetError(f"Label Studio RLE: {flat.size} values, expected {height} x {width} x 4 = {height * width * 4}; "
                           "original_height/original_width do not match the mask")
    return flat.reshape(height, width, 4)[:, :, 3] > 0


def _names(classes: Sequence[str], ignore_index: int) -> dict[int, str]:
    """Brush label name per label value: the classes but background (unpainted), and an ``ignore`` label."""
    names = {c: str(name) for c, name in enumerate(classes) if c != 0}
    names[ignore_index] = "ignore" if "ignore" not in names.values() else f"ignore ({ignore_index})"
    return names


def label_results(label: np.ndarray, classes: Sequence[str], ignore_index: int = 255) -> list[dict]:
    """One ``brushlabels`` result per label value present but background (class 0), ignore_index as ``ignore``."""
    label = np.asarray(label)
    h, w = label.shape
    names = _names(classes, ignore_index)
    out = []
    for c in np.unique(label):
        c = int(c)
        if c == 0:
            continue
        if c not in names:
            raise DatasetError(f"label value {c} is neither a class (0..{len(classes) - 1}) nor ignore_index {ignore_index}")
        out.append({"id": f"c{c}", "from_name": "label", "to_name": "image", "type": "brushlabels",
                    "original_width": w, "original_height": h, "image_rotation": 0,
                    "value": {"format": "rle", "rle": encode_rle(label == c), "brushlabels": [names[c]]}})
    return out


def labels_from_results(results: Sequence[dict], classes: Sequence[str], height: int, width: int, ignore_index: int = 255) -> np.ndarray:
    """The (height, width) uint8 label map of ``brushlabels`` results: unpainted = 0 (background), later results on top."""
    value = {name: c for c, name in _names(classes, ignore_index).items()}
    out = np.zeros((height, width), dtype=np.uint8)
    for r in results:
        if r.get("type") != "brushlabels":
            continue
        v = r["value"]
        if (r["original_height"], r["original_width"]) != (height, width):
            raise DatasetError(f"Label Studio result {r.get('id')}: {r['original_height']} x {r['original_width']}, expected {height} x {width}")
        unknown = [n for n in v["brushlabels"] if n not in value]
        if unknown or len(v["brushlabels"]) != 1:
            raise DatasetError(f"Label Studio result {r.get('id')}: labels {v['brushlabels']}, expected one of {sorted(value)}")
        out[decode_rle(v["rle"], height, width)] = value[v["brushlabels"][0]]
    return out


def labeling_config(classes: Sequence[str], ignore_index: Optional[int] = None) -> str:
    """The project's labeling config: the image and one brush label per class but background (+ ``ignore`` when given)."""
    names = _names(classes, 255 if ignore_index is None else ignore_index)
    colors = class_colors(len(classes))
    lines = ['<View>', '  <Header value="$image_id"/>', '  <Image name="image" value="$image" zoom="true"/>',
             '  <BrushLabels name="label" toName="image">']
    for c in range(1, len(classes)):
        rgb = "".join(f"{round(float(x) * 255):02x}" for x in colors[c][:3])
        lines.append(f'    <Label value={quoteattr(names[c])} background="#{rgb}"/>')
    if ignore_index is not None:
        lines.append(f'    <Label value={quoteattr(names[ignore_index])} background="#808080"/>')
    return "\n".join(lines + ['  </BrushLabels>', '</View>']) + "\n"


def _view(out: Path, sid: str, center: Optional[int]) -> str:
    """Path (relative to ``out``) of an image Label Studio can show: train/images/<id>.png, else an 8-bit view of the NPY.

    ``center``: the channel shown (volume slices); None: RGB images as such, else the first channel.
    """
    png = out / "train" / "images" / f"{sid}.png"
    if png.is_file():
        return png.relative_to(out).as_posix()
    img = np.load(out / "train" / "images" / f"{sid}.npy", allow_pickle=False).astype(np.float32)
    if img.ndim == 3 and (center is not None or img.shape[-1] != 3):
        img = img[..., min(center or 0, img.shape[-1] - 1)]
    lo, hi = np.percentile(img, [0.5, 99.5])
    view = np.clip((img - lo) / max(float(hi - lo), 1e-6), 0, 1)
    path = out / "labelstudio" / "images" / f"{sid}.png"
    write_array(path, view)
    return path.relative_to(out).as_posix()


def _task_data(row: dict, image: str) -> dict:
    data = {"image": image, "image_id": row["id"]}
    for k, v in row.items():
        if k != "id":
            data[k] = _COLUMN_TYPES.get(k, str)(v)
    return data


def build_tasks(out: str | Path, model_version: str, prefix: str = LOCAL_FILES, center: Optional[int] = None) -> tuple[list[dict], list[str], bool]:
    """(tasks in label_quality.csv's order, classes, whether any label has ignore pixels) of an export folder ``out``.

    ``prefix`` + the image's path relative to ``out`` (URL-quoted) is each task's image; ``center``: the channel
    of NPY images shown (volumes: the slice's own, the middle of the first channel's neighbours); None for 2D images.
    """
    out = Path(out)
    meta = json.loads((out / "dataset.json").read_text())
    classes, ignore = meta["classes"], int(meta["ignore_index"])
    tasks, has_ignore = [], False
    with (out / "label_quality.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        sid = row["id"]
        label = read_label(out / "train" / "labels" / f"{sid}.png")
        given = read_label(out / "train" / "labels_original" / f"{sid}.png")
        has_ignore = has_ignore or bool((label == ignore).any())
        data = _task_data(row, prefix + quote(_view(out, sid, center), safe="/"))
        data["changed_pixels"] = int((label != given).sum())
        tasks.append({"data": data, "predictions": [{"model_version": model_version, "score": data["score"],
                                                     "result": label_results(label, classes, ignore)}]})
    return tasks, classes, has_ignore


def write_labelstudio(out: str | Path, model_version: str, volume_index: Optional[dict] = None) -> str:
    """Write ``out/labelstudio/{tasks.json,config.xml}`` (module doc) for the export folder ``out``; returns its README lines."""
    out = Path(out)
    center = None if volume_index is None else int(volume_index.get("spec", {}).get("context", 0))
    tasks, classes, has_ignore = build_tasks(out, model_version, center=center)
    root = out / "labelstudio"
    root.mkdir(parents=True, exist_ok=True)
    ignore = int(json.loads((out / "dataset.json").read_text())["ignore_index"]) if has_ignore else None
    (root / "config.xml").write_text(labeling_config(classes, ignore))
    (root / "tasks.json").write_text("[\n" + ",\n".join(json.dumps(t, separators=(",", ":")) for t in tasks) + "\n]\n")
    slices = (" Label Studio has no 3D labeling of volumes: each task is one 2D training slice (at the training resolution), "
              "its `subject` and `slice` in the task data.") if volume_index is not None else ""
    return (f"- `labelstudio/tasks.json`, `labelstudio/config.xml`: the corrected masks (`train/labels/`) as Label Studio "
            f"pre-annotations (brush masks, background unpainted), one task per training image, most suspicious first, each "
            f"with its `label_quality.csv` score as the prediction score (sort \"Prediction score\" ascending: worst first). "
            f"Images are `/data/local-files/?d=<path relative to this folder>`: start Label Studio with "
            f"LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<this folder>, create a "
            f"project with config.xml, add a Local files source storage of this folder (no sync), then import tasks.json."
            f"{slices}\n")
