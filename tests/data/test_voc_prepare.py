import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adele.cli import main
from adele.config import load_config
from adele.data import open_dataset, read_image, read_label
from adele.data.voc import VOC_CLASSES, prepare_voc, voc_palette
from adele.errors import DatasetError

REPO = Path(__file__).resolve().parents[2]
SIZES = {"2007_000001": (40, 52), "2007_000002": (36, 44), "2007_000003": (48, 40), "2008_000001": (44, 44), "2008_000002": (38, 50)}
TRAIN, VAL = ["2007_000001", "2007_000002", "2007_000003"], ["2008_000001", "2008_000002"]


def _label(h, w, cls, rng):
    lab = np.zeros((h, w), np.uint8)
    y, x = rng.integers(4, h // 2), rng.integers(4, w // 2)
    lab[y : y + h // 3, x : x + w // 3] = cls
    lab[y - 1, x : x + w // 3] = 255  # VOC-style boundary band
    return lab


def _palette_png(lab, path):
    im = Image.fromarray(lab, mode="P")
    im.putpalette(voc_palette().ravel().tolist())
    im.save(path)


def make_voc(root: Path, seed=0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    voc = root / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation", "ImageSets/SegmentationAug"):
        (voc / d).mkdir(parents=True)
    pseudo = root / "pseudo"
    pseudo.mkdir()
    for k, (i, (h, w)) in enumerate(SIZES.items()):
        lab = _label(h, w, 1 + k * 3, rng)
        img = (rng.integers(0, 60, (h, w, 3)) + lab[..., None].clip(0, 20) * 8).astype(np.uint8)
        Image.fromarray(img).save(voc / "JPEGImages" / f"{i}.jpg", quality=95)
        if i != "2007_000002":  # one train id without a true label (like most of train_aug)
            _palette_png(lab, voc / "SegmentationClass" / f"{i}.png")
        if i in TRAIN:
            noisy = np.where(lab == 255, 0, lab).astype(np.uint8)
            noisy[:3] = 0
            if i == "2007_000001":
                Image.fromarray(noisy).save(pseudo / f"{i}.png")  # grayscale class ids
            elif i == "2007_000002":
                _palette_png(noisy, pseudo / f"{i}.png")  # palette PNG
            else:
                Image.fromarray(voc_palette()[noisy]).save(pseudo / f"{i}.png")  # VOC colours (RGB)
    (voc / "ImageSets/Segmentation/train.txt").write_text("\n".join(TRAIN[:2]) + "\n")
    (voc / "ImageSets/Segmentation/val.txt").write_text("\n".join(VAL) + "\n")
    (voc / "ImageSets/SegmentationAug/train_aug.txt").write_text("".join(f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png\n" for i in TRAIN))
    return root / "VOCdevkit", pseudo


def test_cli_prepare_voc_and_jpeg_reading(tmp_path):
    devkit, pseudo = make_voc(tmp_path)
    out = tmp_path / "voc"
    assert main(["data", "prepare", "voc", str(devkit), str(out), "--pseudo", str(pseudo), "--link"]) == 0
    src = open_dataset(out)
    assert src.classes == VOC_CLASSES and src.ignore_index == 255
    tr, va = src.splits["train"], src.splits["val"]
    assert list(tr.ids) == TRAIN and list(va.ids) == VAL and tr.has_clean
    assert all(os.path.islink(p) for p in tr.image_paths)
    for i, sid in enumerate(tr.ids):
        img = tr.image(i)
        assert img.shape == (*SIZES[sid], 3) and img.dtype == np.float32 and 0 <= img.min() <= img.max() <= 1
    # pseudo-labels in all three encodings decode to the same class ids
    assert set(np.unique(tr.label(0))) == {0, 1} and set(np.unique(tr.label(1))) == {0, 4} and set(np.unique(tr.label(2))) == {0, 7}
    assert set(np.unique(tr.clean_label(0))) == {0, 1, 255}
    assert (tr.clean_label(1) == 255).all()  # no true label: unknown everywhere, ignored by the analysis
    assert 255 in np.unique(va.label(0))
    meta = json.loads((out / "prepare.json").read_text())
    assert meta["train_clean_labels"] == {"available": 2, "unknown_all_ignore": 1, "from": ["SegmentationClass"]}
    with pytest.raises(DatasetError, match="JPEG labels are lossy"):
        read_label(tr.image_paths[0])
    assert read_image(tr.image_paths[0]).shape == (40, 52, 3)


def test_prepare_voc_errors(tmp_path):
    devkit, pseudo = make_voc(tmp_path)
    (pseudo / "2007_000003.png").unlink()
    with pytest.raises(DatasetError, match=r"2007_000003\.png: missing pseudo-label for train id 2007_000003"):
        prepare_voc(devkit, tmp_path / "o", pseudo, log=lambda m: None)
    # the 1,464-image list does not need the missing one
    prepare_voc(devkit, tmp_path / "o", pseudo, train_list="train", log=lambda m: None)
    assert len(open_dataset(tmp_path / "o").splits["train"]) == 2
    assert main(["data", "prepare", "voc", str(devkit), str(tmp_path / "o"), "--pseudo", str(pseudo), "--train-list", "train"]) == 2  # exists
    Image.fromarray(np.full((5, 5), 30, np.uint8)).save(pseudo / "2007_000003.png")
    with pytest.raises(DatasetError, match="has class 30"):
        prepare_voc(devkit, tmp_path / "o2", pseudo, log=lambda m: None)
    with pytest.raises(DatasetError, match="no JPEGImages"):
        prepare_voc(pseudo, tmp_path / "o3", pseudo, log=lambda m: None)
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


def test_voc_config_loads():
    cfg = load_config(REPO / "configs" / "voc.yaml")
    assert cfg.model.name == "deeplab" and cfg.data.size is None and cfg.data.normalize == "imagenet"
    assert cfg.train.batch_size == 10 and cfg.optim.lr == 0.001 and cfg.optim.schedule == "poly"
    c = cfg.adele.correction
    assert c.scales == (0.75, 1.0, 1.5) and c.hflip and c.tau_fg == 0.8
    # official softmax(mean raw logits / 3) on a network whose raw logits are 3x ours: temperature 1 here
    assert c.temperature == 1.0 and cfg.adele.correction_temperature() == 1.0
    assert c.average == "logits" and c.every == 1 and c.restart_from_original  # official VOC code
    det, con = cfg.adele.detection, cfg.adele.consistency
    assert (det.every_steps, det.horizon, det.trim_flat, det.flag_offset) == (100, 16, None, 1)
    assert (con.every_steps, con.normalize, con.mask, con.rho) == (1, "all", "image", 0.8)
