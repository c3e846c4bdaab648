import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from adele.cli import main
from adele.config import load_config
from adele.data import open_dataset, read_image, read_label
from adele.data.segthor import SEGTHOR_CLASSES, SEGTHOR_SPLIT, fallback_split, prepare_segthor
from adele.errors import DatasetError

REPO = Path(__file__).resolve().parents[2]
FG_SLICES = (1, 2, 3, 4)  # slices 0 and 5 have no foreground


def make_raw(root: Path, patients=("Patient_01", "Patient_02", "Patient_03"), shape=(32, 32, 6), seed=0) -> Path:
    """Tiny volumes in the challenge layout; an LPS-like affine so reorientation is exercised."""
    rng = np.random.default_rng(seed)
    affine = np.diag([-0.9, -0.9, 2.5, 1.0])
    for p in patients:
        ct = rng.normal(0, 50, shape).astype(np.int16) - 800
        gt = np.zeros(shape, np.uint8)
        for z in FG_SLICES:
            gt[4:10, 4:10, z] = 2  # heart
            gt[14:18, 14:18, z] = 4  # aorta
            gt[20:23, 5:8, z] = 1 + (z % 2) * 2  # esophagus / trachea
        ct[gt == 2] = 40
        (root / p).mkdir(parents=True)
        nib.save(nib.Nifti1Image(ct, affine), str(root / p / f"{p}.nii.gz"))
        nib.save(nib.Nifti1Image(gt, affine), str(root / p / "GT.nii.gz"))
    return root


def test_official_split_has_no_overlap_and_covers_40_patients():
    sets = [set(v) for v in SEGTHOR_SPLIT.values()]
    assert sum(map(len, sets)) == len(set.union(*sets)) == 40
    assert "Patient_27" in SEGTHOR_SPLIT["test"] and "Patient_27" not in SEGTHOR_SPLIT["val"]
    assert fallback_split(["Patient_03", "Patient_01", "Patient_02"]) == {"train": ("Patient_01",), "val": ("Patient_02",), "test": ("Patient_03",)}


def test_cli_prepare_writes_valid_foreground_slices(tmp_path):
    raw = make_raw(tmp_path / "raw")
    out = tmp_path / "segthor"
    assert main(["data", "prepare", "segthor", str(raw), str(out), "--size", "64", "--window", "-160", "240"]) == 0
    src = open_dataset(out)  # validates every file
    assert src.classes == SEGTHOR_CLASSES and src.ignore_index == 255
    assert {k: len(v) for k, v in src.splits.items()} == {"train": 4, "val": 4, "test": 4}
    for split in src.splits.values():
        assert all(i.rsplit("_z", 1)[1] in {f"{z:03d}" for z in FG_SLICES} for i in split.ids)
        img, lab = split.image(0), split.label(0)
        assert img.shape == lab.shape == (64, 64) and img.dtype == np.float32
        assert 0 <= img.min() and img.max() <= 1 and lab.max() > 0
        assert set(np.unique(lab)) <= set(range(5))
    meta = json.loads((out / "prepare.json").read_text())
    assert meta["split"] == "fallback" and meta["window_hu"] == [-160.0, 240.0]
    assert meta["patients"] == {"train": ["Patient_01"], "val": ["Patient_02"], "test": ["Patient_03"]}


def test_orientation_window_and_split_file(tmp_path):
    raw = make_raw(tmp_path / "raw", patients=("Patient_05", "Patient_21"))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["Patient_05"], "val": ["Patient_21"]}))
    out = tmp_path / "o"
    assert main(["data", "prepare", "segthor", str(raw), str(out), "--size", "32", "--all-slices", "--split-file", str(split)]) == 0
    src = open_dataset(out)
    assert len(src.splits["train"]) == 6 and "test" not in src.splits  # --all-slices keeps empty slices
    lab = read_label(out / "train" / "labels" / "Patient_05_z002.png")
    # voxel (x, y) in the file with affine diag(-1, -1, ...) is (X-1-x, Y-1-y) in RAS; rows run
    # anterior->posterior (flip of RAS y) and columns right->left (flip of RAS x): row = y, col = x
    expected = np.zeros((32, 32), np.uint8)
    expected[4:10, 4:10] = 2
    expected[14:18, 14:18] = 4
    expected[5:8, 20:23] = 1
    np.testing.assert_array_equal(lab, expected)
    img = read_image(out / "train" / "images" / "Patient_05_z002.png")
    assert abs(img[6, 6] - (40 + 1000) / 2000) < 1e-3  # heart at 40 HU in the default -1000..1000 window


def test_prepare_errors_are_one_line(tmp_path):
    raw = make_raw(tmp_path / "raw", patients=("Patient_01", "Patient_02"))
    (raw / "Patient_02" / "GT.nii.gz").unlink()
    with pytest.raises(DatasetError, match=r"Patient_02/GT\.nii\.gz: missing"):
        prepare_segthor(raw, tmp_path / "o", size=16, log=lambda m: None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no Patient_XX folders"):
        prepare_segthor(tmp_path / "empty", tmp_path / "o3", log=lambda m: None)
    (tmp_path / "bad.json").write_text(json.dumps({"train": ["Patient_01"], "val": ["Patient_01"]}))
    assert main(["data", "prepare", "segthor", str(raw), str(tmp_path / "o4"), "--split-file", str(tmp_path / "bad.json")]) == 2
    assert not (tmp_path / "o").exists() and not (tmp_path / "o4").exists()


def test_segthor_config_loads_paper_settings():
    cfg = load_config(REPO / "configs" / "segthor.yaml")
    assert (cfg.model.name, cfg.optim.lr, cfg.optim.momentum, cfg.train.batch_size, cfg.train.epochs) == ("unet", 0.01, 0.99, 5, 100)
    assert cfg.data.size == (256, 256) and cfg.adele.correction.every == 10 and cfg.adele.correction.scales == (1.0,)
    assert cfg.adele.correction.tau_fg == cfg.adele.correction.tau_bg == 0.7
    assert cfg.adele.consistency.scales == (1.0, 0.7, 1.5) and cfg.adele.consistency.rho == 0.8
    con, det = cfg.adele.consistency, cfg.adele.detection
    assert (con.every_steps, con.lam, con.mask, con.normalize) == (1, 1.0, "image", "all")  # every step, as the paper
    assert (det.r, det.trim_flat, det.every_steps, det.flag_offset, det.horizon) == (0.9, 0.1, None, 1, None)
    assert not cfg.data.hflip and cfg.data.crop is None and cfg.data.scale_range is None  # no augmentation
    assert not cfg.adele.correction.restart_from_original and cfg.data.noise == "final:target_area=1000,order=1-3-4-2"
