"""Label Studio tasks of an ``adele export-labels`` folder: the masks to review, worst first.

``write_labelstudio(OUT, ...)`` writes, in the source's own space (the labels of ``OUT/original/labels/``, so that a
corrected mask goes back into the dataset as it is):

    OUT/labelstudio/tasks.json    one task per training image (volumes: per training slice), most suspicious first
    OUT/labelstudio/config.xml    the labeling config of the project to import them into
    OUT/labelstudio/images/       the images as 8-bit PNGs at the source's size (volumes: each slice on the subject's in-plane grid)
    OUT/labelstudio/README.md     how to serve the folder to Label Studio (:func:`labelstudio_readme`)

Each task holds the image (``data.image``: ``/data/local-files/?d=labelstudio/images/<id>.png``, Label Studio's
local-storage URL relative to the document root OUT; the storage's path is OUT/labelstudio, since Label Studio refuses
a storage at the document root itself), the labels of ``data.label_file`` as one ``brushlabels`` prediction result
per class present, at the image's size, and the image's score from ``label_quality.csv`` as the prediction score
(lower = more suspicious), so that sorting the data manager's "Prediction score" column ascending lists the worst
masks first (tasks.json is in that order too). Background (class 0) is what no brush covers; pixels at
``ignore_index``, if any, are painted with an extra ``ignore`` label so that a round trip is exact.

Label Studio's brush RLE (the ``rle`` of a ``brushlabels`` result) encodes the flattened RGBA image
of the mask, ``H * W * 4`` bytes, the mask in every channel as 0/255, as a bit stream (most
significant bit first): a 32-bit value count, the word size minus one (5 bits), four run-length
field widths minus one (4 bits each; 3, 4, 8, 16), then blocks of a flag bit (1: one word repeated,
0: words given one by one), a 2-bit index into the widths, the block length minus one in that
many bits and the word(s); zero bits pad the last byte. :func:`encode_rle` writes the blocks
Label Studio's converter writes (byte for byte the same list); :func:`decode_rle` reads any.

Label Studio has no 3D labeling of NIfTI volumes: for volume datasets the tasks are the 2D slices the run trained
on, at the volume's own in-plane size (:func:`adele.data.volumes.label_slices` of ``original/labels/<subject>``,
the slice ``data.slice``), with ``subject`` in their data (a column of the data manager, to filter or sort by subject).
"""
from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np

from ..data.io import read_image, read_label, write_array
from ..data.volumes import (VolumeSpec, image_slices, label_slices, orientation, read_volume, resample_images, slices_to_volume,
                            volume_suffix, write_label_volume)
from ..errors import DatasetError, OutputError
from ..reporting.figures import class_colors

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


def _display(img: np.ndarray, unit: bool) -> np.ndarray:
    """An image as Label Studio shows it: (H, W) or (H, W, 3) in [0, 1], saved as 8-bit PNG.

    ``unit``: the values already lie in [0, 1] (PNG sources, CT windows) and are kept; else the 0.5/99.5
    percentiles are stretched to [0, 1]. Images with other channel counts show their first channel.
    """
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 3 and a.shape[-1] != 3:
        a = a[..., 0]
    if unit:
        return np.clip(a, 0, 1)
    lo, hi = np.percentile(a, [0.5, 99.5])
    return np.clip((a - lo) / max(float(hi - lo), 1e-6), 0, 1)


def _slices_2d(out: Path, source, cfg, ids: Sequence[str]):
    """Yield (id, image in [0, 1], exported labels, source labels) per training image at the source image's size."""
    s = source.splits["train"]
    clean = cfg.data.train_labels == "clean"
    for i, sid in enumerate(ids):
        img = np.asarray(s.image(i), dtype=np.float32)
        base = np.asarray(s.clean_label(i) if clean and s.has_clean else s.label(i), dtype=np.uint8)
        label = read_label(out / "original" / "labels" / f"{sid}.png")
        yield sid, _display(img, float(img.min()) >= 0 and float(img.max()) <= 1), label, base, f"original/labels/{sid}.png", {}


def _slices_volumes(out: Path, index: dict, dataset_root: Path, cfg, classes: Sequence[str], ignore: int, fallback: list):
    """Yield (id, image in [0, 1], exported labels, source labels, label file, extra task data) per training slice at the
    volume's in-plane size; the extra data: the slicing ``axis`` and ``ignore_value``, the label files' value of ``ignore``.

    The image is the subject's first channel sliced like in training (reoriented, normalized) but not resampled and
    without neighbour slices; when the source image files are gone, the training slice resampled to the native grid
    (its id is added to ``fallback``). nnU-Net's ignore value in the label files (the number of classes) is read as ``ignore``.
    """
    spec = VolumeSpec.from_dict(index["spec"])
    native = replace(spec, size=None, spacing=None, context=0)
    clean = cfg.data.train_labels == "clean"
    for subject, rec in index["subjects"].items():
        if rec["split"] != "train":
            continue
        ornt = np.asarray(rec["ornt"])
        rel = rec["clean_file"] if clean and rec.get("clean_file") else rec["label_file"]
        base_vol = read_volume(Path(dataset_root) / rel, "label")
        name = f"original/labels/{subject}{volume_suffix(base_vol.path)}"
        exported = label_slices(read_volume(out / name, "label"), ornt, spec.axis)
        base = label_slices(base_vol, ornt, spec.axis)
        ignore_value = len(classes) if spec.layout == "nnunet" else ignore
        if ignore_value != ignore:
            exported = np.where(exported == len(classes), ignore, exported)
            base = np.where(base == len(classes), ignore, base)
        paths = [Path(p) for p in rec["images"]]
        images = image_slices([read_volume(p, "image") for p in paths], native, quantized=False).slices[..., 0] if all(p.is_file() for p in paths) else None
        unit = spec.modality[0] == "ct"
        if images is not None and not unit:  # one stretch per subject, so that slices compare
            lo, hi = np.percentile(images, [0.5, 99.5])
            images = (images - lo) / max(float(hi - lo), 1e-6)
        for sid, k in rec["slices"].items():
            if images is not None:
                img = np.clip(images[k], 0, 1)
            else:
                fallback.append(sid)
                img = _training_slice(out, sid, spec.context)
                img = resample_images(img[None, :, :, None], exported.shape[1:3])[0, :, :, 0]
                img = _display(img, unit)
            yield sid, img, exported[k].astype(np.uint8), base[k].astype(np.uint8), name, {"axis": spec.axis, "ignore_value": ignore_value}


def _training_slice(out: Path, sid: str, center: int) -> np.ndarray:
    """The exported training image of a slice, (h, w): the slice itself of the first channel."""
    png = out / "train" / "images" / f"{sid}.png"
    if png.is_file():
        return read_image(png)
    img = np.load(out / "train" / "images" / f"{sid}.npy", allow_pickle=False).astype(np.float32)
    return img if img.ndim == 2 else img[..., min(center, img.shape[-1] - 1)]


def _task_data(row: dict, image: str) -> dict:
    data = {"image": image, "image_id": row["id"]}
    for k, v in row.items():
        if k != "id":
            data[k] = _COLUMN_TYPES.get(k, str)(v)
    return data


def build_tasks(out: str | Path, model_version: str, source, cfg, volume_index: Optional[dict] = None,
                prefix: str = LOCAL_FILES) -> tuple[list[dict], list[str], bool, list[str]]:
    """(tasks in label_quality.csv's order, classes, whether any label has ignore pixels, ids shown at the training resolution).

    Each task shows the training image at the source's size (``OUT/labelstudio/images/<id>.png``, 8-bit; volumes: one
    slice on the subject's in-plane grid) with the labels of ``OUT/original/labels/`` (the file in ``data.label_file``;
    volumes: its slice ``data.slice``) as brush masks of the same size. ``prefix`` + the PNG's path relative to ``out``
    (URL-quoted) is the task's image. ``source``/``cfg``: the run's dataset and config; ``volume_index``: its volumes.json.
    """
    out = Path(out)
    meta = json.loads((out / "dataset.json").read_text())
    classes, ignore = meta["classes"], int(meta["ignore_index"])
    with (out / "label_quality.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    fallback: list[str] = []
    if volume_index is None:
        views = _slices_2d(out, source, cfg, source.splits["train"].ids)
    else:
        views = _slices_volumes(out, volume_index, source.root, cfg, classes, ignore, fallback)
    by_id, has_ignore = {}, False
    for sid, img, label, base, label_file, extra in views:
        if img.shape[:2] != label.shape:
            raise DatasetError(f"{sid}: image {img.shape[:2]} and labels {label.shape} differ in size; re-export with the dataset the run was trained on")
        path = out / "labelstudio" / "images" / f"{sid}.png"
        write_array(path, img)
        has_ignore = has_ignore or bool((label == ignore).any())
        by_id[sid] = (path.relative_to(out).as_posix(), label_results(label, classes, ignore), int((label != base).sum()), label_file, extra)
    tasks = []
    for row in rows:
        image, results, changed, label_file, extra = by_id[row["id"]]
        data = _task_data(row, prefix + quote(image, safe="/"))
        data["changed_pixels"], data["label_file"] = changed, label_file
        data.update(extra)
        tasks.append({"data": data, "predictions": [{"model_version": model_version, "score": data["score"], "result": results}]})
    return tasks, classes, has_ignore, fallback


def write_labelstudio(out: str | Path, model_version: str, source, cfg, volume_index: Optional[dict] = None) -> str:
    """Write ``out/labelstudio/`` (module doc) for the export folder ``out``; returns the lines of OUT/README.md about it."""
    out = Path(out)
    tasks, classes, has_ignore, fallback = build_tasks(out, model_version, source, cfg, volume_index)
    root = out / "labelstudio"
    root.mkdir(parents=True, exist_ok=True)
    ignore = int(json.loads((out / "dataset.json").read_text())["ignore_index"]) if has_ignore else None
    (root / "config.xml").write_text(labeling_config(classes, ignore))
    (root / "tasks.json").write_text("[\n" + ",\n".join(json.dumps(t, separators=(",", ":")) for t in tasks) + "\n]\n")
    (root / "README.md").write_text(labelstudio_readme(volume_index is not None, ignore is not None, len(fallback)))
    return ("- `labelstudio/`: the labels of `original/labels/` as Label Studio pre-annotations at the source's size, one task per "
            "training image (volumes: per training slice), most suspicious first; how to review them: `labelstudio/README.md`.\n")


def labelstudio_readme(volumes: bool, has_ignore: bool, fallback: int = 0) -> str:
    """``OUT/labelstudio/README.md``: what the folder holds and the steps that serve it to Label Studio."""
    unit = "slice" if volumes else "image"
    where = ("slice `slice` (the `slice` column of the data manager; `subject` names the volume) of the NIfTI "
             "`original/labels/<subject>.nii.gz`, as `adele.data.volumes.label_slices` orders the slices (the subject "
             "reoriented to RAS, sliced along the dataset's axis)") if volumes else "the PNG `original/labels/<id>.png`"
    late = (f"\n{fallback} slices show the training image resampled to the volume's grid: their source image files were not found.\n"
            if fallback else "")
    ignore = ("\n- `ignore`: the pixels at the dataset's ignore index (excluded from training and scoring); "
              "nnU-Net volumes: the label files' ignore value." if has_ignore else "")
    return f"""# Reviewing the masks in Label Studio

- `tasks.json`: one task per training {unit}, most suspicious first. Each task shows the {unit} at the source's
  size (`images/<id>.png`, an 8-bit rendering{" of the volume's first channel on its own in-plane grid" if volumes else ""})
  with the exported labels as brush masks of the same size: `data.label_file` names the label file, {where}.
  The prediction score is the `label_quality.csv` score: sort "Prediction score" ascending to see the worst first.
  `changed_pixels`: pixels where the exported labels differ from the dataset's.
- `config.xml`: the project's labeling config: one brush label per class but background (background is what no
  brush covers).{ignore}
{late}
## Steps

The images are served by Label Studio's local-files storage, whose path must lie under the document root and may
not be the document root itself: the document root is the export folder (the parent of this folder), the storage
path is this folder. Without the storage the images answer 404.

1. Install Label Studio (`pip install label-studio`, in its own environment) and start it with the export folder
   as the document root:

       export LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true
       export LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=/path/to/OUT
       export LATEST_VERSION_CHECK=false                  # without network access
       export LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true   # for scripts using the API, on the first start
       label-studio start

2. Create a project; in its Settings > Labeling Interface > Code, paste `config.xml`.
3. Settings > Cloud Storage > Add Source Storage > Local files: absolute local path `/path/to/OUT/labelstudio`
   (this folder), "Treat every bucket object as a source file" off. Add it; do not sync it (the tasks come from
   tasks.json).
4. Import `tasks.json` (the project's Import button). Each task opens with its masks as a prediction.
5. Correct the masks (the brush and the eraser) and submit.
6. Export the annotations (Export > JSON). Each annotation's `result` holds one brush per label at the image's
   size (`original_height` x `original_width`). `adele.labels.labelstudio.write_annotations(OUT, tasks)` (`tasks`:
   the exported JSON) writes each annotated task's labels in place of the {unit} that `data.label_file` names
   (`labels_from_results(result, classes, height, width)` decodes one result; `classes`, `ignore_index`: `../dataset.json`).

The API (`/api/...`, for scripts) takes `Authorization: Token <token>` with the legacy token of Account & Settings:
legacy tokens are enabled by LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true (or `label-studio start
--enable-legacy-api-token`) when the first start creates the organization, later in the Organization page's
Settings > Access Token Settings.
"""


def write_annotations(out: str | Path, tasks: Sequence[dict], dest: Optional[str | Path] = None) -> list[Path]:
    """Write the annotations of Label Studio's JSON export ``tasks`` into the label files their tasks name; returns them.

    Each task's last annotation that was not cancelled (tasks without one are left out) becomes the label map of its
    ``data.label_file`` (under ``dest``, default ``out``: the export's ``original/labels/``), decoded at its size:
    the PNG of a 2D image, or the slice ``data.slice`` of the subject's label volume (the other slices, the grid and
    the header are kept; ``ignore`` written as ``data.ignore_value``). ``out``: the export folder (its dataset.json).
    """
    out = Path(out)
    dest = out if dest is None else Path(dest)
    meta = json.loads((out / "dataset.json").read_text())
    classes, ignore = meta["classes"], int(meta["ignore_index"])
    volumes: dict[str, tuple] = {}
    written = []
    for task in tasks:
        done = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
        if not done:
            continue
        data = task["data"]
        path = dest / data["label_file"]
        if not path.resolve().is_relative_to(dest.resolve()):  # a task's file name never leads out of the label folder
            raise OutputError(f"task {task.get('id', '?')}: label_file {data['label_file']!r} lies outside {dest}; "
                              "write only the tasks of this export (their label files are under its folder)")
        if "slice" not in data or "axis" not in data:
            h, w = read_label(path).shape
            write_array(path, labels_from_results(done[-1]["result"], classes, h, w, ignore))
            written.append(path)
            continue
        if path not in volumes:
            vol = read_volume(path, "label")
            ornt = orientation(vol.affine)
            volumes[path] = (vol, ornt, data["axis"], label_slices(vol, ornt, data["axis"]).copy())
        sl = volumes[path][3]
        lab = labels_from_results(done[-1]["result"], classes, sl.shape[1], sl.shape[2], ignore)
        value = int(data.get("ignore_value", ignore))
        sl[int(data["slice"])] = np.where(lab == ignore, value, lab) if value != ignore else lab
    for path, (vol, ornt, axis, sl) in volumes.items():
        dtype = vol.image.get_data_dtype()
        write_label_volume(path, slices_to_volume(sl, ornt, axis), vol, dtype=dtype if np.issubdtype(dtype, np.integer) else np.uint8)
        written.append(path)
    return written
