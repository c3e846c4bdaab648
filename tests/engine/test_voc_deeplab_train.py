"""End to end on a tiny synthetic VOC layout: prepare -> ADELE with random scale/crop/flip -> a
correction pass on training images of different sizes (multi-scale + flip, one image at a time)."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import adele.models
from adele.config import load_config
from adele.data.voc import prepare_voc
from adele.engine import Trainer

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "data"))
from test_voc_prepare import SIZES, TRAIN, make_voc  # noqa: E402


class TinyFCN(nn.Module):
    """A user model registered from Python: (B, C_in, H, W) -> (B, num_classes, H, W)."""

    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, num_classes, 1))

    def forward(self, x):
        return self.body(x)


def _train_voc(tmp_path, overrides):
    devkit, pseudo = make_voc(tmp_path)
    prepare_voc(devkit, tmp_path / "voc", pseudo, log=lambda m: None)
    cfg = load_config(REPO / "configs" / "voc.yaml", [f"data.path={tmp_path / 'voc'}", "data.crop=[48, 48]", "train.epochs=2",
                                                      "train.batch_size=3", "train.device=cpu", "train.seed=0"] + overrides)
    run = tmp_path / "run"
    tr = Trainer(cfg, run, log=lambda m: None)
    assert tr.data.train.shapes == [SIZES[i] for i in TRAIN]  # data.size null: native sizes kept
    tr.prepare_run_dir(resume=False, overwrite=False)
    res = tr.fit()
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["val"]["iou"]) == 21 and metrics["epochs"] == 2 and "val" in res
    # a correction round keeps every label's shape; the store holds one map per image at its own size
    info = tr.method.correction_round(2, tr.net, tr.device, tr.dist, list(range(1, 21)))
    assert info["round"] == 1
    assert [lab.shape for lab in tr.data.train.labels] == [SIZES[i] for i in TRAIN]
    for i in range(len(TRAIN)):
        pred, conf = tr.method.store.read(i)
        assert pred.shape == SIZES[TRAIN[i]] and conf.shape == pred.shape
        assert np.isin(pred, np.arange(21)).all()
    return tr


def test_voc_pipeline_with_a_registered_user_model(tmp_path, monkeypatch):
    monkeypatch.setitem(adele.models._REGISTRY, "tiny_fcn", lambda in_channels, num_classes, **kw: TinyFCN(in_channels, num_classes))
    torch.manual_seed(0)
    tr = _train_voc(tmp_path, ["model.name=tiny_fcn"])
    assert isinstance(tr.model, TinyFCN)


@pytest.mark.slow
def test_deeplab_adele_trains_on_voc_crops(tmp_path):
    tr = _train_voc(tmp_path, ["model.backbone=resnet18"])
    assert type(tr.model).__name__ == "DeepLab"
