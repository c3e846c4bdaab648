import os

import numpy as np
import pytest

os.environ.setdefault("ADELE_NO_PROGRESS", "1")


def make_dataset(root, n_train=4, n_val=2, n_test=2, size=(24, 20), classes=3, clean=False, fmt="png", seed=0):
    """Write a tiny dataset in the generic format; returns root."""
    from adele.data.folder import write_dataset_json
    from adele.data.io import write_array

    rng = np.random.default_rng(seed)
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


@pytest.fixture
def tiny_dataset(tmp_path):
    return make_dataset(tmp_path / "ds")


TINY_TRAIN = ["data.size=[56, 48]", "model.width=8", "model.depth=3", "optim.name=adam", "optim.lr=0.003",
              "train.batch_size=4", "data.noise=final", "train.device=cpu"]


@pytest.fixture(scope="session")
def small_colin27_dir(tmp_path_factory):
    """A few Colin27 slices as a dataset folder (8 train, 3 val, 3 test; PNG)."""
    from adele.data import load_colin27
    from adele.data.folder import write_dataset_json
    from adele.data.io import write_array

    root = tmp_path_factory.mktemp("c27small")
    src = load_colin27()
    for split, n in (("train", 8), ("val", 3), ("test", 3)):
        s = src.splits[split]
        for i in np.linspace(0, len(s) - 1, n).round().astype(int):
            write_array(root / split / "images" / f"{s.ids[i]}.png", s.images[i])
            write_array(root / split / "labels" / f"{s.ids[i]}.png", s.labels[i])
    write_dataset_json(root, "c27small", src.classes, 255)
    return root


@pytest.fixture(scope="session")
def tiny_run(small_colin27_dir, tmp_path_factory):
    """Factory ``tiny_run(*overrides) -> run folder``: trains once per distinct overrides per session (seeded, CPU)."""
    from adele.config import load_config
    from adele.engine import Trainer

    cache = {}

    def make(*overrides):
        key = tuple(overrides)
        if key not in cache:
            cfg = load_config(None, TINY_TRAIN + [f"data.path={small_colin27_dir}", "train.epochs=2", *overrides])
            run = tmp_path_factory.mktemp("run")
            tr = Trainer(cfg, run, log=lambda m: None)
            tr.prepare_run_dir(resume=False, overwrite=True)
            tr.fit()
            cache[key] = run
        return cache[key]

    return make
