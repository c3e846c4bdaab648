"""The data a run trains on: its config's dataset, prepared, with ``data.noise`` synthesized on its labels.

Here :mod:`adele.data` (reading and preparing splits) and :mod:`adele.noise` (the noise recipes) meet: the data
package takes the noise as a function (:data:`adele.data.dataset.Synthesize`) built by :func:`label_noise`, and
neither package imports the other.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..config import Config
from ..data import open_source
from ..data.dataset import RunData, Synthesize, check_prepared, noisy_labels, prepare_split
from ..data.folder import Source, check_source
from ..data.cache import cache_folder
from ..data.prepared import disk_split, estimate_bytes
from ..errors import DatasetError
from ..noise import load_recipe, noise_dataset
from ..noise.recipes import apply_recipe, check_recipe_classes


class LabelNoise:
    """The noise recipe ``noise`` (``data.noise``) as ``synthesize(labels) -> (noisy, events)``
    (:data:`~adele.data.dataset.Synthesize`): image i draws from its own stream of (``seed``, i); ``one(label, i)``
    draws image i alone (the same values), for splits prepared image by image on disk. The recipe is read at each
    call of ``synthesize`` and once for ``one`` (a bad one: :class:`DatasetError`)."""

    def __init__(self, noise: str, seed: int, num_classes: int, ignore_index: int):
        self.noise, self.seed, self.num_classes, self.ignore_index = noise, seed, num_classes, ignore_index
        self._checked = None

    def _recipe(self):
        try:
            return load_recipe(self.noise)
        except ValueError as exc:
            raise DatasetError(f"data.noise: {exc}") from None

    def __call__(self, labels: list) -> tuple[list, list]:
        return noise_dataset(labels, self._recipe(), self.seed, self.num_classes, self.ignore_index)

    def one(self, label: np.ndarray, i: int) -> tuple[np.ndarray, dict]:
        if self._checked is None:
            self._checked = check_recipe_classes(self._recipe(), self.num_classes, self.ignore_index)
        return apply_recipe(label, self._checked, np.random.default_rng([self.seed, i]), self.num_classes, self.ignore_index)

    def identity(self) -> dict:
        """What the prepared labels depend on (a cache key's part): the spec, a recipe file's content, the seed."""
        path = Path(self.noise)
        text = path.read_text() if self.noise.endswith((".yaml", ".yml")) and path.is_file() else None
        return {"noise": self.noise, "file": text, "seed": self.seed}


def label_noise(noise: str, seed: int, num_classes: int, ignore_index: int) -> Synthesize:
    """The noise recipe ``noise`` (``data.noise``) as ``synthesize(labels) -> (noisy, events)``: see :class:`LabelNoise`."""
    return LabelNoise(noise, seed, num_classes, ignore_index)


def prepared_bytes(cfg: Config, source: Source) -> int:
    """About how many bytes the prepared splits of ``source`` take with ``cfg``'s data settings (images as float32)."""
    d = cfg.data
    total = 0
    for name in ("train", "val", "test"):
        if name in source.splits:
            clean = source.splits[name].has_clean or (d.noise is not None and (name == "train" or (name == "val" and d.validation_labels() == "noisy")))
            extra = d.noise is not None and name == "val" and d.validation_labels() == "clean"
            total += estimate_bytes(source, name, d.size, d.normalize, 1 + int(clean) + int(extra))
    return total


def load_run_data(cfg: Config, source: Optional[Source] = None) -> RunData:
    """Open and validate the dataset, then prepare train/val/test: in memory when the prepared form fits
    ``data.memory_budget_mb``, else on disk under ``data.cache_dir`` (:mod:`adele.data.prepared`), same values."""
    d = cfg.data
    source = source or open_source(d.path)
    check_source(source, d.size, d.normalize, d.crop, cfg.train.batch_size)
    synthesize = label_noise(d.noise, d.noise_seed, source.num_classes, source.ignore_index) if d.noise else None
    on_disk = prepared_bytes(cfg, source) > d.memory_budget_mb * 2**20
    cache = cache_folder(d.cache_dir)
    splits = {}
    for name in ("train", "val", "test"):
        if name not in source.splits:
            splits[name] = None
            continue
        noisy = name == "train" or (name == "val" and d.validation_labels() == "noisy")
        # validation scored on the labels as given; the same noise drawn on them as well, so that the checkpoint a user
        # would select on noisy validation masks is measured in the same run (the trainer scores both every epoch)
        extra = synthesize if (d.noise and name == "val" and d.validation_labels() == "clean") else None
        if on_disk:
            splits[name] = disk_split(source, name, d.size, d.normalize, cache, d.train_labels, synthesize if noisy else None,
                                      extra, synthesize.identity() if synthesize is not None else None)
        else:
            splits[name] = prepare_split(source, name, d.size, d.normalize, d.train_labels, synthesize if noisy else None)
            if extra is not None:
                splits[name].noisy = noisy_labels(source, name, d.size, synthesize)
    check_prepared(source, splits["train"], {"val": splits["val"], "test": splits["test"]})
    return RunData(source, splits["train"], splits["val"], splits["test"])
