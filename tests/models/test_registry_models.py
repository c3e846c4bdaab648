import pytest
import torch

from adele.config import load_config
from adele.errors import ConfigError
from adele.models import available_models, build_model, build_model_from_config

FAST_KW = {"unet": {"width": 4, "depth": 3}, "deeplab": {"backbone": "resnet18", "output_stride": 16},
           "monai_unet": {"width": 4, "depth": 3}, "monai_segresnet": {"width": 8, "depth": 3}}


def _needs(name):
    if name.startswith("monai_"):
        pytest.importorskip("monai", reason="optional extra: pip install adele[monai]")


@pytest.mark.parametrize("name", ["unet", "deeplab", "monai_unet", "monai_segresnet"])
@pytest.mark.parametrize("shape", [(2, 1, 37, 29), (1, 3, 24, 33)])
def test_every_registry_model_keeps_input_size(name, shape):
    _needs(name)
    torch.manual_seed(0)
    model = build_model(name, in_channels=shape[1], num_classes=5, **FAST_KW[name]).eval()
    with torch.no_grad():
        out = model(torch.randn(shape))
    assert out.shape == (shape[0], 5, *shape[2:]) and torch.isfinite(out).all()


def test_registry_lists_builtin_models_and_cli_help_shows_them(capsys):
    from adele.cli import main

    assert {"unet", "deeplab", "monai_unet", "monai_segresnet"} <= set(available_models())
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert all(n in help_text for n in available_models())


def test_deeplab_config_fields_reach_the_model():
    cfg = load_config(None, ["model.name=deeplab", "model.backbone=resnet34", "model.output_stride=16"])
    m = build_model_from_config(cfg.model, in_channels=3, num_classes=4)
    assert len(m.backbone.layer3) == 6 and m.backbone.output_stride == 16
    with pytest.raises(ConfigError, match="model.backbone: unknown backbone 'resnet7'"):
        build_model("deeplab", 3, 4, backbone="resnet7")
    with pytest.raises(ConfigError, match="model.output_stride"):
        load_config(None, ["model.output_stride=4"])


def test_monai_models_fail_with_install_hint_without_monai(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "monai", None)  # import monai -> ImportError
    monkeypatch.setitem(sys.modules, "monai.networks", None)
    for name in ("monai_unet", "monai_segresnet"):
        with pytest.raises(ConfigError, match=r"pip install 'adele\[monai\]'"):
            build_model(name, 1, 3)
