import pytest
import torch

from adele.config import load_config
from adele.engine import Trainer, load_run_data
from adele.engine.ema import WeightEMA
from adele.testing import small_colin27
from test_adele_e2e import _trainer
from test_train_e2e import FAST


def test_weight_ema_formula_with_warmup():
    net = torch.nn.Linear(2, 1)
    ema = WeightEMA(net, 0.99)
    w0 = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net)  # n = 1: d = min(0.99, 2 / 11)
    d = 2 / 11
    torch.testing.assert_close(ema.model.weight, d * w0 + (1 - d) * (w0 + 1))
    assert not ema.model.weight.requires_grad and not ema.model.training


def test_ema_weights_are_evaluated_saved_and_resumed_exactly(tmp_path):
    src = small_colin27(8, 2)
    cfg = load_config(None, FAST + ["train.epochs=3", "train.ema=0.9", "method=adele", "data.noise=final",
                                    "adele.consistency.enabled=false", "train.model_weights=last"])
    full = _trainer(cfg, tmp_path / "full", src)
    res = full.fit()
    saved = torch.load(tmp_path / "full" / "model.pt", weights_only=True)["model"]
    for k, v in full.ema.model.state_dict().items():
        assert torch.equal(saved[k], v), k
    assert any(not torch.equal(saved[k], v) for k, v in full.model.state_dict().items() if v.is_floating_point())
    # the test metrics are those of the averaged weights
    assert res["test"] == full.evaluate(full.data.test)
    no_ema = cfg.replace(**{"train.ema": 0.0})
    live = Trainer(no_ema, tmp_path / "live", data=load_run_data(no_ema, src), log=lambda m: None)
    live.model.load_state_dict(full.model.state_dict())
    assert live.evaluate(live.data.test) != res["test"]
    part = _trainer(cfg.replace(**{"train.epochs": 2}), tmp_path / "part", src)
    part.fit()
    resumed = _trainer(cfg, tmp_path / "part", src, resume=True)
    assert resumed.fit()["test"] == res["test"]
    for k, v in resumed.ema.model.state_dict().items():
        assert torch.equal(full.ema.model.state_dict()[k], v), k


@pytest.mark.parametrize("bad", ["train.ema=1.0", "train.ema=-0.1"])
def test_ema_range(bad):
    from adele.errors import ConfigError

    with pytest.raises(ConfigError, match="train.ema"):
        load_config(None, [bad])
