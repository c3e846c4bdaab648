"""The embedded dataset: Colin27 T1 MRI + AAL atlas, 2D axial slices, 10 classes.

Built by :mod:`adele.data.build_colin27` from Debian's ``mricron-data``
(BSD-3-clause; see ``COLIN27-LICENSE.txt`` beside this file). 108 slices of
217 x 181 pixels: 72 train, 18 val, 18 test, split by contiguous blocks of 6
slices with 2 slices dropped between blocks.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from .folder import ArraySplit, Source, write_dataset_json
from .io import write_array

NPZ_PATH = Path(__file__).with_name("colin27.npz")
NAME = "colin27"
SPLIT_NAMES = ("train", "val", "test")


@lru_cache(maxsize=1)
def _arrays() -> dict[str, np.ndarray]:
    with np.load(NPZ_PATH, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_colin27() -> Source:
    """Return the embedded dataset as an in-memory :class:`Source`.

    Images are uint8 ``(N, 217, 181)`` (served as float32 in [0, 1]); labels uint8.
    """
    a = _arrays()
    classes = tuple(json.loads(str(a["classes"])))
    splits = {}
    for code, split in enumerate(SPLIT_NAMES):
        idx = np.flatnonzero(a["split"] == code)
        ids = tuple(f"z{int(a['slice_z'][i]):03d}" for i in idx)
        splits[split] = ArraySplit(ids=ids, images=a["images"][idx], labels=a["labels"][idx])
    return Source(name=NAME, classes=classes, ignore_index=255, splits=splits)


def export_colin27(out: str | Path, overwrite: bool = False) -> Path:
    """Write the embedded dataset to ``out`` in the generic format (8-bit PNGs)."""
    from ..safety import staged_output

    out = Path(out)
    src = load_colin27()
    with staged_output(out, "data export", overwrite=overwrite, flag="output folder") as tmp:
        for split_name, split in src.splits.items():
            for i, sid in enumerate(split.ids):
                write_array(tmp / split_name / "images" / f"{sid}.png", split.images[i])
                write_array(tmp / split_name / "labels" / f"{sid}.png", split.labels[i])
        write_dataset_json(tmp, NAME, src.classes, 255)
        lic = Path(__file__).with_name("COLIN27-LICENSE.txt")
        (tmp / "LICENSE.txt").write_text(lic.read_text())
    return out
