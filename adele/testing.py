"""Small datasets for tests and examples: a synthetic folder dataset and a subset of the embedded data."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import load_colin27
from .data.folder import ArraySplit, Source


def make_dataset(root: Path, n_train=4, n_val=2, n_test=2, size=(24, 20), classes=3, clean=False, fmt="png", seed=0):
    """Write a tiny dataset in the generic format; returns root."""
    from adele.data.folder import write_dataset_json
    from adele.data.io import write_array

    rng = np.random.default_rng(seed)
    root = Path(root)
    write_dataset_json(root, "tiny", ["background"] + [f"c{i}" for i in range(1, classes)], 255)
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        for i in range(n):
            lab = np.zeros(size, np.uint8)
            for c in range(1, classes):
                y, x = rng.integers(0, size[0] - 8), rng.integers(0, size[1] - 8)
                lab[y : y + 8, x : x + 8] = c
            img = (lab * 60 + rng.integers(0, 30, size)).astype(np.uint8)
            write_array(root / split / "images" / f"im{i:02d}.{fmt}", img)
            write_array(root / split / "labels" / f"im{i:02d}.{fmt}", lab)
            if clean and split == "train":
                write_array(root / split / "labels_clean" / f"im{i:02d}.{fmt}", lab)
    return root


def small_colin27(n_train=16, n_eval=6):
    full = load_colin27()
    splits = {}
    for name, n in (("train", n_train), ("val", n_eval), ("test", n_eval)):
        s = full.splits[name]
        step = max(1, len(s) // n)
        idx = np.arange(0, len(s), step)[:n]
        splits[name] = ArraySplit(tuple(s.ids[i] for i in idx), s.images[idx], s.labels[idx])
    return Source(full.name, full.classes, 255, splits)
