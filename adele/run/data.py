"""The data a run trains on: its config's dataset, prepared, with ``data.noise`` synthesized on its labels.

Here :mod:`adele.data` (reading and preparing splits) and :mod:`adele.noise` (the noise recipes) meet: the data
package takes the noise as a function (:data:`adele.data.dataset.Synthesize`) built by :func:`label_noise`, and
neither package imports the other.
"""
from __future__ import annotations

from typing import Optional

from ..config import Config
from ..data import open_source
from ..data.dataset import RunData, Synthesize, check_prepared, noisy_labels, prepare_split
from ..data.folder import Source, check_source
from ..errors import DatasetError
from ..noise import load_recipe, noise_dataset


def label_noise(noise: str, seed: int, num_classes: int, ignore_index: int) -> Synthesize:
    """The noise recipe ``noise`` (``data.noise``) as ``synthesize(labels) -> (noisy, events)``: image i draws from
    its own stream of (``seed``, i); the recipe is read at each call (a bad one: :class:`DatasetError`)."""

    def synthesize(labels: list) -> tuple[list, list]:
        try:
            recipe = load_recipe(noise)
        except ValueError as exc:
            raise DatasetError(f"data.noise: {exc}") from None
        return noise_dataset(labels, recipe, seed, num_classes, ignore_index)

    return synthesize


def load_run_data(cfg: Config, source: Optional[Source] = None) -> RunData:
    """Open and validate the dataset, then prepare train/val/test in memory."""
    d = cfg.data
    source = source or open_source(d.path)
    check_source(source, d.size, d.normalize, d.crop, cfg.train.batch_size)
    synthesize = label_noise(d.noise, d.noise_seed, source.num_classes, source.ignore_index) if d.noise else None
    splits = {}
    for name in ("train", "val", "test"):
        if name in source.splits:
            noisy = name == "train" or (name == "val" and d.val_labels == "noisy")
            splits[name] = prepare_split(source, name, d.size, d.normalize, d.train_labels, synthesize if noisy else None)
        else:
            splits[name] = None
    if d.noise and splits["val"] is not None and d.val_labels == "clean":
        # validation scored on the labels as given; the same noise drawn on them as well, so that the checkpoint a user
        # would select on noisy validation masks is measured in the same run (the trainer scores both every epoch)
        splits["val"].noisy = noisy_labels(source, "val", d.size, synthesize)
    check_prepared(source, splits["train"], {"val": splits["val"], "test": splits["test"]})
    return RunData(source, splits["train"], splits["val"], splits["test"])
