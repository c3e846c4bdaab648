import pytest
import torch

from adele.errors import ConfigError
from adele.models import DeepLab, ResNet, load_backbone_weights

# key layout and sizes of torchvision's resnet18 (fc included): 122 state-dict entries, 11,689,512 parameters
TV_RESNET18_KEYS = 122
TV_RESNET18_PARAMS = 11_689_512


def _torchvision_like_state(seed=0, depth="resnet18"):
    """A state dict in torchvision's layout: our ResNet's keys plus fc.*, random values."""
    torch.manual_seed(seed)
    src = ResNet(depth)
    state = {k: (torch.randn_like(v) if v.is_floating_point() else v.clone()) for k, v in src.state_dict().items()}
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, src.out_channels), torch.randn(1000)
    return state


def test_resnet_keys_follow_torchvision_layout():
    state = _torchvision_like_state()
    assert len(state) == TV_RESNET18_KEYS
    assert sum(v.numel() for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))) == TV_RESNET18_PARAMS
    for key in ("conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight", "layer4.1.bn2.bias"):
        assert key in state
    assert "layer1.0.conv3.weight" in ResNet("resnet50").state_dict()  # bottleneck naming


def test_load_backbone_weights_from_file(tmp_path):
    state = _torchvision_like_state()
    path = tmp_path / "r18.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, path)
    model = DeepLab(in_channels=1, num_classes=3, backbone="resnet18")
    loaded, skipped = load_backbone_weights(model, path)
    assert len(loaded) == TV_RESNET18_KEYS - 2 and sorted(skipped) == ["module.fc.bias", "module.fc.weight"]
    torch.testing.assert_close(model.backbone.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])
    # 1-channel input: the RGB filters are summed
    torch.testing.assert_close(model.backbone.conv1.weight, state["conv1.weight"].sum(1, keepdim=True))
    with pytest.raises(ConfigError, match="not found"):
        load_backbone_weights(model, tmp_path / "missing.pt")
    torch.save({"x.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match="no key matches a ResNet backbone"):
        load_backbone_weights(model, tmp_path / "bad.pt")


def test_trainer_pretrained_path_accepts_backbone_or_whole_model():
    state = _torchvision_like_state(1)
    model = DeepLab(3, 4, backbone="resnet18")
    missing, unexpected = model.load_pretrained(state)
    assert set(unexpected) == {"fc.weight", "fc.bias"} and all(k.startswith(("aspp.", "head.")) for k in missing)
    other = DeepLab(3, 6, backbone="resnet18")  # another class count: the last layer is skipped, the rest loads
    missing, unexpected = other.load_pretrained(model.state_dict())
    assert missing == ["head.1.weight", "head.1.bias"]
    torch.testing.assert_close(other.aspp.project[0][0].weight, model.aspp.project[0][0].weight)
