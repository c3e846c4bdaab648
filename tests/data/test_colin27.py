import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from adele.cli import main
from adele.data import load_colin27, open_dataset
from adele.data.colin27 import NPZ_PATH, _arrays

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))  # the maintainer's build script, outside the package
from build_colin27 import CLASSES, write_npz  # noqa: E402


def test_embedded_dataset_shape_and_classes():
    src = load_colin27()
    assert src.classes == CLASSES and src.num_classes == 10
    assert {k: len(v) for k, v in src.splits.items()} == {"train": 72, "val": 18, "test": 18}
    tr = src.splits["train"]
    assert tr.images.shape[1:] == (217, 181) and tr.labels.dtype == np.uint8
    # every class appears in train, sizes differ by more than 10x (lobes vs deep structures)
    counts = np.bincount(tr.labels.ravel(), minlength=10)[1:]
    assert (counts > 0).all() and counts.max() / counts.min() > 10
    assert NPZ_PATH.stat().st_size < 5e6


def test_splits_are_separated_by_gaps():
    a = _arrays()
    z, split = a["slice_z"].astype(int), a["split"]
    for i in range(len(z) - 1):
        if split[i] != split[i + 1]:
            assert z[i + 1] - z[i] > 1, "neighbouring slices must not straddle two splits"


def test_npz_writer_is_deterministic(tmp_path):
    arrays = {"a": np.arange(10, dtype=np.uint8), "classes": np.array(json.dumps(["x"]))}
    b1 = write_npz(arrays, tmp_path / "1.npz")
    b2 = write_npz(arrays, tmp_path / "2.npz")
    assert b1 == b2


@pytest.mark.skipif(not Path("/usr/share/mricron/templates/aal.nii.gz").exists(), reason="mricron-data not installed")
def test_rebuild_is_byte_identical(tmp_path):
    from build_colin27 import build

    data = write_npz(build(), tmp_path / "c.npz")
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(NPZ_PATH.read_bytes()).hexdigest()


def test_export_writes_generic_format(tmp_path, capsys):
    out = tmp_path / "c27"
    assert main(["data", "export", "colin27", str(out)]) == 0
    src = open_dataset(out)
    assert src.num_classes == 10 and len(src.splits["val"]) == 18
    emb = load_colin27()
    assert np.array_equal(src.splits["train"].label(3), emb.splits["train"].labels[3])
    assert (out / "LICENSE.txt").exists()
    # refusing to overwrite
    assert main(["data", "export", "colin27", str(out)]) == 2
    assert "overwrite" in capsys.readouterr().err


def test_scale_augmentation_keeps_batches_stackable():
    """A scale range without a crop size crops/pads each image back to the training size."""
    import torch
    from torch.utils.data import DataLoader

    from adele.data.dataset import TrainDataset, collate, prepare_split
    from adele.testing import small_colin27

    split = prepare_split(small_colin27(n_train=4, n_eval=2), "train", (56, 48), "zscore", "noisy")
    ds = TrainDataset(split, seed=0, hflip=True, scale_range=(0.7, 1.4))
    img, lab, _ = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate)))
    assert img.shape == (4, 1, 56, 48) and lab.shape == (4, 56, 48)
    # shrunk images are padded with the ignore label, never with a class
    assert set(torch.unique(lab).tolist()) <= set(range(10)) | {255}
    ds.set_epoch(1)
    again = torch.stack([ds[i][1] for i in range(4)])
    ds.set_epoch(1)
    assert torch.equal(again, torch.stack([ds[i][1] for i in range(4)]))  # seeded per (epoch, index)


@pytest.mark.parametrize("normalize", ["imagenet", "unit"])
def test_8bit_images_kept_compact_and_decoded_bit_for_bit(normalize):
    """RGB photographs (VOC) are held as uint8 and normalized on access, with preprocess_image's exact values."""
    import torch

    from adele.data.dataset import preprocess_image, prepare_split
    from adele.data.folder import ArraySplit, Source

    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (3, 20, 24, 3), dtype=np.uint8)
    labs = rng.integers(0, 3, (3, 20, 24), dtype=np.uint8)
    src = Source("rgb", ["background", "a", "b"], 255, {"train": ArraySplit(("x", "y", "z"), imgs, labs)})
    split = prepare_split(src, "train", None, normalize)
    assert split.images.nbytes == imgs.nbytes  # 1 byte per value, not 4
    for i in range(3):
        ref = preprocess_image(imgs[i].astype(np.float32) / 255.0, None, normalize)
        assert torch.equal(split.images[i], ref)
    assert [t.shape for t in split.images[0:2]] == [ref.shape] * 2 and split.in_channels == 3
    # resized or z-scored images stay float32
    assert prepare_split(src, "train", (10, 12), normalize).images.nbytes == 3 * 3 * 10 * 12 * 4


def test_brodmann_label_set_shares_images_and_split():
    from adele.data import open_source

    aal, ba = open_source("colin27"), open_source("colin27-brodmann")
    assert ba.name == "colin27-brodmann" and len(ba.classes) == 10 and ba.classes[0] == "background"
    for split in ("train", "val", "test"):
        a, b = aal.splits[split], ba.splits[split]
        assert a.ids == b.ids and np.array_equal(a.images, b.images)
        assert not np.array_equal(a.labels, b.labels)
    labels = ba.splits["train"].labels
    counts = np.bincount(labels.ravel(), minlength=10)[1:]
    share = counts / counts.sum()
    assert (counts > 0).all() and share.min() < 0.05 and share.max() > 0.15  # classes of varied size


def test_separate_structures_on_background():
    """colin27-structures: the paper's regime, 5 structures that never come within 2 pixels of each other."""
    from scipy import ndimage

    from adele.data import open_source

    src, aal = open_source("colin27-structures"), open_source("colin27")
    assert src.classes == ("background", "caudate", "thalamus", "hippocampus", "calcarine", "vermis")
    assert {k: len(v) for k, v in src.splits.items()} == {"train": 34, "val": 6, "test": 12}
    for split in ("train", "val", "test"):
        s, a = src.splits[split], aal.splits[split]
        assert set(s.ids) <= set(a.ids)  # a subset of the same slices and split, same images
        rows = [a.ids.index(i) for i in s.ids]
        assert np.array_equal(s.images, a.images[rows])
        for lab in s.labels:
            assert lab.any()
            for c in range(1, 6):
                near = ndimage.binary_dilation(lab == c, np.ones((3, 3), bool), iterations=2)
                assert not np.isin(lab[near], [k for k in range(1, 6) if k != c]).any()
    counts = np.bincount(src.splits["train"].labels.ravel(), minlength=6)
    assert (counts[1:] > 0).all() and counts[0] / counts.sum() > 0.9  # small structures on a large background


def test_separate_keeps_a_margin_between_touching_classes():
    from build_colin27 import separate

    lab = np.zeros((10, 12), np.uint8)
    lab[2:8, 1:6] = 1
    lab[2:8, 6:11] = 2  # touching
    out = separate(lab, margin=2)
    assert np.all(out[:, 4:8] == 0) and np.all(out[2:8, 1:4] == 1) and np.all(out[2:8, 8:11] == 2)
    assert np.array_equal(separate(np.where(lab == 1, 1, 0).astype(np.uint8)), np.where(lab == 1, 1, 0))


@pytest.mark.parametrize("name", ["colin27-brodmann", "colin27-structures"])
def test_every_embedded_set_is_exportable(tmp_path, name):
    from adele.data import open_source

    out = tmp_path / name
    assert main(["data", "export", name, str(out)]) == 0
    src, emb = open_dataset(out), open_source(name)
    assert src.classes == emb.classes and {k: len(v) for k, v in src.splits.items()} == {k: len(v) for k, v in emb.splits.items()}
    assert np.array_equal(src.splits["test"].label(0), emb.splits["test"].labels[0])
    assert json.loads((out / "dataset.json").read_text())["name"] == name
    assert main(["data", "export", name, str(tmp_path / "v"), "--volumes"]) == 2


def test_structures_rebuild_is_byte_identical(tmp_path):
    from build_colin27 import SOURCE_DIR, STRUCTURES_OUT_PATH, build, build_structures

    if not (SOURCE_DIR / "aal.nii.gz").exists():
        pytest.skip("mricron-data is not installed (apt-get install mricron-data)")
    data = write_npz(build_structures(build()), tmp_path / "s.npz")
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(STRUCTURES_OUT_PATH.read_bytes()).hexdigest()


def test_val_labels_noisy_applies_the_noise_to_val_only_and_keeps_test_clean():
    from adele.config import load_config
    from adele.run.data import load_run_data
    from adele.errors import ConfigError
    from adele.testing import small_colin27

    src = small_colin27(8, 4)
    base = {"data.size": [56, 48], "data.noise": "final:target_area=1000", "data.noise_seed": 3}
    clean = load_run_data(load_config(overrides={**base, "data.val_labels": "clean"}), src)
    noisy = load_run_data(load_config(overrides={**base, "data.val_labels": "noisy"}), src)
    default = load_run_data(load_config(overrides=base), src)  # null: noisy under data.noise, as a user's val masks are
    assert all(np.array_equal(a, b) for a, b in zip(default.val.original, noisy.val.original))
    assert all(np.array_equal(a, b) for a, b in zip(clean.val.original, clean.val.clean or clean.val.original))
    changed = sum(int((a != b).sum()) for a, b in zip(noisy.val.original, clean.val.original))
    assert changed > 0  # validation now scores against noisy labels
    assert all(np.array_equal(a, b) for a, b in zip(noisy.val.clean, clean.val.original))  # the clean ones kept beside
    assert all(np.array_equal(a, b) for a, b in zip(noisy.test.original, clean.test.original))  # test untouched
    assert all(np.array_equal(a, b) for a, b in zip(noisy.train.labels, clean.train.labels))  # same training draw
    with pytest.raises(ConfigError, match="data.val_labels"):
        load_config(overrides={"data.val_labels": "noisy"})
    assert load_config().data.validation_labels() == "clean"  # without data.noise: the labels as given
