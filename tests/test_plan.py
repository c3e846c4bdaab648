"""The planner: a dataset fingerprint and the recipe derived from it (issue: a default that trains on any dataset)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from adele.cli import main
from adele.config import load_config
from adele.data import open_source
from adele.data.folder import ArraySplit, Source
from adele.engine.distributed import DistInfo, EpochSampler, steps_per_epoch
from adele.plan import BUDGETS, fingerprint, plan, planned_config

REPO = Path(__file__).resolve().parents[1]


def synthetic(n, shape=(200, 160), seed=0, small=30):
    """n slices with a large square (class 1) and a small one (class 2, ``small`` px) on background."""
    rng = np.random.default_rng(seed)
    imgs = rng.random((n,) + shape).astype(np.float32)
    labs = np.zeros((n,) + shape, np.uint8)
    labs[:, 20:120, 20:120] = 1
    side = int(round(small ** 0.5))
    labs[:, 150:150 + side, 130:130 + side] = 2
    ids = tuple(f"s{i:04d}" for i in range(n))
    return Source("synthetic", ("background", "big", "small"), 255, {"train": ArraySplit(ids, imgs, labs)})


def test_fingerprint_of_a_known_dataset():
    fp = fingerprint(synthetic(10, small=25))
    assert fp.num_images == 10 and fp.median_shape == (200, 160) and fp.channels == 1
    assert fp.object_area == {"big": 10000.0, "small": 25.0}
    assert sum(fp.class_share.values()) == pytest.approx(1.0)
    assert fp.class_share["big"] == pytest.approx(10000 / 32000)
    assert 0.4 < fp.intensity["mean"] < 0.6


def test_size_fits_the_budget_and_keeps_the_smallest_object_visible():
    cpu = BUDGETS["cpu"]
    big_only = plan(fingerprint(synthetic(10, small=10000)), "cpu")
    h, w = big_only["data.size"]
    assert h * w <= cpu["pixels"] * 1.1 and h % 8 == 0 and w % 8 == 0 and h > w  # aspect kept
    tiny = plan(fingerprint(synthetic(10, small=25)), "cpu")  # a 25-px object at 4096 px would cover < 3 px
    th, tw = tiny["data.size"]
    assert th * tw > h * w and th * tw <= cpu["max_pixels"] * 1.1
    assert 25 * th * tw / (200 * 160) >= min(cpu["min_object_px"], 25 * cpu["max_pixels"] / (200 * 160)) * 0.9


def test_small_data_gets_enough_steps_and_large_data_scales_steps_not_epochs():
    small = plan(fingerprint(synthetic(39)), "cpu")
    large = plan(fingerprint(synthetic(2000, shape=(64, 64))), "cpu")
    assert small["train.steps_per_epoch"] == BUDGETS["cpu"]["min_steps"]  # 39 slices: 20 steps per pass -> 50
    assert large["train.steps_per_epoch"] == BUDGETS["cpu"]["max_steps"]  # 1000 per pass -> capped at 250
    assert small["train.epochs"] == large["train.epochs"]
    gpu = plan(fingerprint(synthetic(2000, shape=(64, 64))), "cuda")
    assert gpu["train.batch_size"] > 2 and gpu["train.steps_per_epoch"] == 250
    assert plan(fingerprint(synthetic(3, shape=(64, 64))), "cuda")["train.batch_size"] == 3  # never more than the images
    with pytest.raises(ValueError, match="device"):
        plan(fingerprint(synthetic(2)), "tpu")


def test_an_epoch_of_many_passes_records_an_iou_point_every_pass():
    """Ten images at batch 2 and 50 steps: an epoch is ten passes, so memorization can come before a curve of one
    point per epoch has points to fit; the plan gives one point per pass. An epoch of under four passes keeps one."""
    tiny = plan(fingerprint(synthetic(10)), "cpu")
    assert tiny["train.steps_per_epoch"] == 50 and tiny["adele.detection.every_steps"] == 5
    assert "adele.detection.every_steps" not in plan(fingerprint(synthetic(34)), "cpu")  # 17 steps a pass: ~3 passes
    assert load_config(None, plan=tiny).adele.detection.every_steps == 5


def test_precedence_defaults_plan_file_overrides(tmp_path):
    cfg, rec = planned_config(None, {"data.path": "colin27"}, device="cpu")
    assert cfg.data.size == tuple(rec["plan"]["data.size"]) and cfg.optim.schedule == "poly"
    assert rec["fingerprint"]["num_images"] == 72
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  epochs: 7\noptim:\n  lr: 0.01\n")
    cfg, _ = planned_config(f, {"optim.lr": 0.003}, device="cpu")
    assert cfg.train.epochs == 7 and cfg.optim.lr == 0.003 and cfg.train.loss == "ce_dice"


def test_presets_are_a_plan_plus_overrides():
    """No number is defined twice: a colin27 preset only sets what differs from the plan of its data."""
    settings = plan(fingerprint(open_source("colin27")), "cpu")
    for name in ("colin27", "colin27-ce-dice"):
        raw = yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text())
        for key, value in settings.items():
            section, field = key.split(".", 1)
            if field in (raw.get(section) or {}):
                given = raw[section][field]
                assert (list(given) if isinstance(given, (list, tuple)) else given) != value, f"{name}: {key} restates the plan"
    # the paper presets pin the paper's epochs (one pass) and loss over the plan
    for name in ("segthor", "voc"):
        cfg = load_config(name)
        assert cfg.train.steps_per_epoch is None and cfg.train.loss == "ce" and cfg.train.ema == 0.0


def test_epoch_of_fixed_steps_visits_every_image_once_before_any_twice():
    one = EpochSampler(10, seed=3, epoch=2, info=DistInfo(), steps=7, batch_size=2)
    idx = list(one)
    assert len(idx) == 14 and sorted(idx[:10]) == list(range(10))
    assert idx == list(EpochSampler(10, seed=3, epoch=2, info=DistInfo(), steps=7, batch_size=2))  # a pure function
    assert idx != list(EpochSampler(10, seed=3, epoch=3, info=DistInfo(), steps=7, batch_size=2))
    ranks = [list(EpochSampler(10, 3, 2, DistInfo(rank=r, world_size=2, local_rank=r), steps=7, batch_size=1)) for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == sorted(idx)  # the same images across world sizes
    assert steps_per_epoch(10, 2, 1, fixed=7) == 7 and steps_per_epoch(10, 3, 2) == 2
    # without a number: the one-pass sampler, unchanged
    g = torch.Generator().manual_seed(3 * 100003 + 2)
    assert list(EpochSampler(10, 3, 2, DistInfo())) == torch.randperm(10, generator=g).tolist()


def test_plan_command_prints_the_table_and_writes_a_config(tmp_path, capsys):
    out = tmp_path / "plan.yaml"
    assert main(["plan", "colin27", "--device", "cpu", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "typical object" in text and "train.steps_per_epoch" in text and "72" in text
    cfg = load_config(out)
    assert cfg.train.steps_per_epoch == 50 and cfg.data.size == (72, 56)
    assert main(["plan", "colin27", "--out", str(out)]) == 2  # exists: refused without --overwrite
    assert main(["plan", "colin27", "--device", "cpu", "--out", str(out), "--overwrite"]) == 0  # its own file: replaced
    mine = tmp_path / "mine.yaml"
    mine.write_text("train:\n  epochs: 3\n")
    assert main(["plan", "colin27", "--out", str(mine), "--overwrite"]) == 2  # a file it did not write: never replaced
    assert mine.read_text() == "train:\n  epochs: 3\n" and "not written by `adele plan`" in capsys.readouterr().err


def test_train_without_config_plans_and_records_the_plan(small_colin27_dir, tmp_path):
    run = tmp_path / "r"
    rc = main(["train", "--data", str(small_colin27_dir), "--out", str(run), "--device", "cpu", "--epochs", "1",
               "--set", "train.steps_per_epoch=3", "data.size=[32,32]", "quality.track=false"])
    assert rc == 0
    rec = json.loads((run / "plan.json").read_text())
    assert rec["fingerprint"]["num_images"] == 8 and rec["plan"]["optim.schedule"] == "poly"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["optim"]["name"] == "adam" and saved["train"]["steps_per_epoch"] == 3 and saved["train"]["loss"] == "ce_dice"
    assert len((run / "history.csv").read_text().splitlines()) == 2
    run2 = tmp_path / "r2"
    assert main(["train", "--data", str(small_colin27_dir), "--out", str(run2), "--device", "cpu", "--epochs", "1", "--no-plan",
                 "--set", "data.size=[32,32]", "quality.track=false"]) == 0
    assert not (run2 / "plan.json").exists() and yaml.safe_load((run2 / "config.yaml").read_text())["optim"]["name"] == "sgd"


def test_images_of_one_shape_within_the_budget_keep_it(tmp_path, capsys):
    """Prepared volume slices (one grid) are not resized by the plan; a data.size that resizes them is said."""
    from adele.cli.train import prepared_grid_note
    from adele.data.volumes import prepare_volumes
    from adele.testing import make_volume_dataset

    fp = fingerprint(synthetic(5, shape=(40, 30)))
    assert plan(fp, "cpu")["data.size"] == [40, 30]
    src = make_volume_dataset(tmp_path / "vol", layout="nnunet", n_subjects=4)
    out = tmp_path / "prep"
    prepare_volumes(src, out, log=lambda m: None)
    cfg, rec = planned_config(None, {"data.path": str(out)}, device="cpu")
    grid = rec["fingerprint"]["median_shape"]
    assert list(cfg.data.size) == list(grid) and prepared_grid_note(cfg) == ""
    note = prepared_grid_note(cfg.replace(**{"data.size": [48, 48]}))
    assert "data.size=null" in note and f"{grid[0]}x{grid[1]}" in note
