"""MONAI networks (optional extra: ``pip install adele[monai]``), wrapped for any input size.

MONAI's 2D UNet and SegResNet need H and W divisible by ``2**downsamplings``;
:class:`PadToMultiple` pads the input (reflect) and crops the logits back, so
the wrapped model maps ``(B, C_in, H, W) -> (B, num_classes, H, W)`` for all
H, W like the other registry models. ``monai`` is imported only when one of
these models is built.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

INSTALL_HINT = "pip install 'adele[monai]' (or pip install monai)"


def _monai_nets():
    try:
        from monai.networks import nets
    except ImportError:
        raise ConfigError(f"model.name: this model needs MONAI, which is not installed; {INSTALL_HINT}, or choose unet/deeplab") from None
    return nets


class PadToMultiple(nn.Module):
    """Run ``net`` on the input padded to a multiple of ``multiple``; crop the output back."""

    def __init__(self, net: nn.Module, multiple: int):
        super().__init__()
        self.net = net
        self.multiple = multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "constant")
        return self.net(x)[..., :h, :w]


def monai_unet(in_channels: int, num_classes: int, width: int = 16, depth: int = 4, dropout: float = 0.0, **_: Any) -> nn.Module:
    """MONAI ``UNet`` (residual units), channels ``width * 2**k`` for k = 0..depth."""
    nets = _monai_nets()
    net = nets.UNet(
        spatial_dims=2, in_channels=in_channels, out_channels=num_classes,
        channels=tuple(width * 2**k for k in range(depth + 1)), strides=(2,) * depth,
        num_res_units=2, dropout=dropout,
    )
    return PadToMultiple(net, 2**depth)


def monai_segresnet(in_channels: int, num_classes: int, width: int = 16, depth: int = 4, dropout: float = 0.0, **_: Any) -> nn.Module:
    """MONAI ``SegResNet`` with ``depth`` encoder stages (``depth - 1`` downsamplings); ``width`` must be a multiple of 8 (group norm)."""
    nets = _monai_nets()
    if depth < 2:
        raise ConfigError(f"model.depth: monai_segresnet needs depth >= 2, got {depth}")
    if width % 8:
        raise ConfigError(f"model.width: monai_segresnet uses group norm with 8 groups; width must be a multiple of 8, got {width}")
    blocks_down = tuple([1, 2, 2] + [4] * max(0, depth - 3))[:depth]
    net = nets.SegResNet(
        spatial_dims=2, init_filters=width, in_channels=in_channels, out_channels=num_classes,
        dropout_prob=dropout or None, blocks_down=blocks_down, blocks_up=(1,) * (depth - 1),
    )
    return PadToMultiple(net, 2 ** (depth - 1))
