"""The 2D U-Net of the ADELE paper's SegTHOR experiments (Ronneberger et al. 2015).

Any input channel count and class count; inputs of any size are padded to a
multiple of ``2**depth`` and the logits cropped back, so ``(B, C_in, H, W) ->
(B, num_classes, H, W)`` for every H, W.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.BatchNorm2d(channels)


def _block(cin: int, cout: int, dropout: float = 0.0, norm: str = "batch") -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        _norm(norm, cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        _norm(norm, cout),
        nn.ReLU(inplace=True),
    ]
    if dropout > 0:
        layers.append(nn.Dropout2d(dropout))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """U-Net with ``depth`` poolings; level ``k`` has ``width * 2**k`` channels."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 16, depth: int = 4, dropout: float = 0.0, norm: str = "batch"):
        super().__init__()
        self.depth = depth
        chans = [width * 2**k for k in range(depth + 1)]
        self.down = nn.ModuleList([_block(in_channels, chans[0], norm=norm)] + [_block(chans[k - 1], chans[k], norm=norm) for k in range(1, depth + 1)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(chans[k], chans[k - 1], 2, stride=2) for k in range(depth, 0, -1)])
        self.dec = nn.ModuleList([_block(2 * chans[k - 1], chans[k - 1], dropout if k == depth else 0.0, norm) for k in range(depth, 0, -1)])
        self.head = nn.Conv2d(chans[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = 2**self.depth
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "constant")
        skips = []
        for k, block in enumerate(self.down):
            x = block(x if k == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, dec in zip(self.up, self.dec):
            x = dec(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(x)[..., :h, :w]
