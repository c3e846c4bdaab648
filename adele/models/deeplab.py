"""DeepLab (v3-style ASPP head on a dilated ResNet), for the PASCAL VOC setting.

``(B, in_channels, H, W) -> (B, num_classes, H, W)`` for any H, W: the
backbone runs at output stride 8 (or 16/32) and the logits are upsampled
bilinearly to the input size. The paper used DeepLab-v1 on a ResNet-38; this
is the widely used ResNet-50/101 + ASPP variant (Chen et al. 2017), which the
weakly supervised segmentation literature reports alongside it.

Pretrained weights never download: pass a local file, either a whole model
(``model.pretrained``, any state dict saved from this class) or an ImageNet
ResNet in torchvision's key layout (:func:`load_backbone_weights`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .resnet import ResNet, load_resnet_state


def _conv_bn(cin: int, cout: int, k: int, dilation: int = 1) -> nn.Sequential:
    pad = 0 if k == 1 else dilation
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=pad, dilation=dilation, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three dilated 3x3 and an image-pooling branch."""

    def __init__(self, cin: int, cout: int = 256, rates: Sequence[int] = (12, 24, 36), dropout: float = 0.1):
        super().__init__()
        self.branches = nn.ModuleList([_conv_bn(cin, cout, 1)] + [_conv_bn(cin, cout, 3, r) for r in rates])
        # no BatchNorm after global pooling: it would fail on a batch of one 1x1 map
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1), nn.ReLU(inplace=True))
        self.project = nn.Sequential(_conv_bn(cout * (len(rates) + 2), cout, 1), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        outs.append(self.pool(x).expand(-1, -1, *x.shape[-2:]))
        return self.project(torch.cat(outs, 1))


class DeepLab(nn.Module):
    """Dilated ResNet + ASPP; ``backbone`` in resnet18/34/50/101, ``output_stride`` in 8/16/32."""

    def __init__(self, in_channels: int = 3, num_classes: int = 21, backbone: str = "resnet50", output_stride: int = 8,
                 head_channels: int = 256, dropout: float = 0.1):
        super().__init__()
        self.backbone = ResNet(backbone, in_channels=in_channels, output_stride=output_stride)
        rates = tuple(r * 16 // output_stride for r in (6, 12, 18))
        self.aspp = ASPP(self.backbone.out_channels, head_channels, rates, dropout)
        self.head = nn.Sequential(_conv_bn(head_channels, head_channels, 3), nn.Conv2d(head_channels, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        logits = self.head(self.aspp(self.backbone(x)))
        return F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)

    def load_pretrained(self, state: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        """Load a whole-model state dict, or a backbone-only (torchvision ResNet) one.

        Returns ``(missing, unexpected)`` like ``load_state_dict(strict=False)``;
        tensors whose shape differs (e.g. another class count) are skipped.
        """
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), Mapping):
                state = state[key]
        if any(k.startswith(("aspp.", "head.", "module.aspp.")) for k in state):
            own = self.state_dict()
            clean = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
            keep = {k: v for k, v in clean.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
            missing, unexpected = self.load_state_dict(keep, strict=False)
            return list(missing), [k for k in clean if k not in keep] + list(unexpected)
        loaded, skipped = load_resnet_state(self.backbone, state)
        if not loaded:
            raise ConfigError(f"model.pretrained: no key matches this DeepLab or its ResNet backbone (first keys: {', '.join(list(state)[:3])}); give a DeepLab state dict or a torchvision-style ResNet one")
        missing = [k for k in self.state_dict() if not (k.startswith("backbone.") and k[len("backbone."):] in loaded)]
        return missing, skipped


def load_backbone_weights(model: nn.Module, path: str | Path) -> tuple[list[str], list[str]]:
    """Load an ImageNet ResNet checkpoint (torchvision key names) from a local file into ``model``'s backbone.

    ``model`` is a :class:`DeepLab` (or a bare :class:`~adele.models.resnet.ResNet`).
    The file holds a state dict (or ``{"state_dict": ...}`` / ``{"model": ...}``),
    e.g. ``torch.save(torchvision.models.resnet50(weights=...).state_dict(), "r50.pt")``
    run once on a machine that has torchvision. Returns ``(loaded, skipped)`` keys.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: backbone weights not found; give the path of a saved ResNet state dict")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a user-facing file problem
        raise ConfigError(f"{p}: cannot be read as a state dict ({type(exc).__name__}); save it with torch.save(model.state_dict(), path)") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    target = model.backbone if isinstance(model, DeepLab) else model
    if not isinstance(target, ResNet):
        raise ConfigError(f"load_backbone_weights: expected a DeepLab or ResNet model, got {type(model).__name__}")
    loaded, skipped = load_resnet_state(target, state)
    if not loaded:
        raise ConfigError(f"{p}: no key matches a ResNet backbone (first keys: {', '.join(list(state)[:3])}); expected torchvision names like conv1.weight, layer1.0.conv1.weight")
    return loaded, skipped
