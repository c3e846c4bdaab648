"""ResNet-18/34/50/101 backbones with dilated last stages, written here (no torchvision).

Parameter names follow torchvision's ``resnet*`` state dicts (``conv1.weight``,
``bn1.*``, ``layer1.0.conv1.weight``, ``layer1.0.downsample.0.weight``, ...), so
an ImageNet checkpoint you already have loads with :func:`load_resnet_state`
(no download). Bottleneck blocks put the stride on the 3x3 convolution
("ResNet v1.5"), like torchvision.

``forward`` returns the ``layer4`` feature map ``(B, out_channels, H/os, W/os)``
(rounded up), where ``os`` is the output stride: 32 without dilation, 16 with
``layer4`` dilated, 8 with ``layer3`` and ``layer4`` dilated (DeepLab).
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch
from torch import nn

from ..errors import ConfigError

#: name -> (block type, blocks per stage)
RESNET_SPECS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
}


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, dilation: int = 1, downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + idt)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, dilation: int = 1, downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + idt)


class ResNet(nn.Module):
    """ResNet trunk without the classifier; ``output_stride`` in {8, 16, 32}."""

    def __init__(self, depth: str = "resnet50", in_channels: int = 3, output_stride: int = 8):
        super().__init__()
        if depth not in RESNET_SPECS:
            raise ConfigError(f"model.backbone: unknown backbone '{depth}'; choose one of {', '.join(RESNET_SPECS)}")
        if output_stride not in (8, 16, 32):
            raise ConfigError(f"model.output_stride: must be 8, 16 or 32, got {output_stride}")
        kind, layers = RESNET_SPECS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.output_stride = output_stride
        self.inplanes, self.dilation = 64, 1
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        dilate3, dilate4 = output_stride == 8, output_stride <= 16
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, dilate=dilate3)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dilate=dilate4)
        self.out_channels = 512 * block.expansion
        self.low_level_channels = 64 * block.expansion
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1, dilate: bool = False) -> nn.Sequential:
        previous = self.dilation
        if dilate:  # replace the stride by dilation (torchvision's replace_stride_with_dilation)
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, previous, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, 1, self.dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


_PREFIXES = ("module.", "backbone.", "encoder.", "resnet.", "model.")


def load_resnet_state(resnet: ResNet, state: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    """Copy a torchvision-style ResNet state dict into ``resnet``.

    Keys may carry a ``module.`` / ``backbone.`` / ``encoder.`` prefix; ``fc.*``
    is dropped. A 3-channel ``conv1.weight`` is adapted to a 1-channel input by
    summing over the colour channels (and averaged-and-repeated for other
    channel counts). Returns ``(loaded, skipped)`` key lists; tensors of the
    wrong shape are skipped, never half-loaded.
    """
    own = resnet.state_dict()
    loaded, skipped = [], []
    with torch.no_grad():
        for key, value in state.items():
            k = key
            changed = True
            while changed:
                changed = False
                for p in _PREFIXES:
                    if k.startswith(p):
                        k, changed = k[len(p):], True
            if k.startswith("fc.") or k not in own or not isinstance(value, torch.Tensor):
                skipped.append(key)
                continue
            target = own[k]
            if k == "conv1.weight" and value.ndim == 4 and value.shape[1] != target.shape[1] and value.shape[0] == target.shape[0]:
                cin = target.shape[1]
                value = value.sum(1, keepdim=True) if cin == 1 else value.mean(1, keepdim=True).repeat(1, cin, 1, 1) * (value.shape[1] / cin)
            if tuple(value.shape) != tuple(target.shape):
                skipped.append(key)
                continue
            target.copy_(value.to(target.dtype))
            loaded.append(k)
    return loaded, skipped
