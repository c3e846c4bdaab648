"""Model registry: a name -> ``nn.Module`` factory.

Every factory is called as ``factory(in_channels=..., num_classes=..., **model_config)``
(all ``model.*`` config fields except ``name`` and ``pretrained``; a factory
ignores the ones it does not use) and must return a module mapping
``(B, in_channels, H, W)`` to logits ``(B, num_classes, H, W)`` for any H, W.
Register your own::

    from adele.models import register_model
    register_model("mynet", lambda in_channels, num_classes, **kw: MyNet(in_channels, num_classes))

Built in: ``unet`` (the paper's SegTHOR U-Net), ``deeplab`` (dilated
ResNet-18/34/50/101 + ASPP, the VOC setting), and ``monai_unet`` /
``monai_segresnet`` (need ``pip install adele[monai]``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from torch import nn

from ..errors import ConfigError
from .deeplab import DeepLab, load_backbone_weights
from .monai_nets import monai_segresnet, monai_unet
from .resnet import RESNET_SPECS, ResNet
from .unet import UNet

ModelFactory = Callable[..., nn.Module]
_REGISTRY: dict[str, ModelFactory] = {}


def register_model(name: str, factory: ModelFactory, overwrite: bool = False) -> None:
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"model '{name}' is already registered; pass overwrite=True to replace it")
    _REGISTRY[name] = factory


def available_models() -> list[str]:
    return sorted(_REGISTRY)


def build_model(name: str, in_channels: int, num_classes: int, **kwargs: Any) -> nn.Module:
    if name not in _REGISTRY:
        raise ConfigError(f"model.name: unknown model '{name}'; available: {', '.join(available_models())}")
    return _REGISTRY[name](in_channels=in_channels, num_classes=num_classes, **kwargs)


def build_model_from_config(model_cfg: Any, in_channels: int, num_classes: int) -> nn.Module:
    """Build from a ``ModelConfig`` (or its dict form, e.g. from a saved ``config.yaml``)."""
    fields = dataclasses.asdict(model_cfg) if dataclasses.is_dataclass(model_cfg) else dict(model_cfg)
    name = fields.pop("name")
    fields.pop("pretrained", None)
    return build_model(name, in_channels=in_channels, num_classes=num_classes, **fields)


def _unet(in_channels: int, num_classes: int, width: int = 16, depth: int = 4, dropout: float = 0.0, norm: str = "batch", **_: Any) -> nn.Module:
    return UNet(in_channels, num_classes, width=width, depth=depth, dropout=dropout, norm=norm)


def _deeplab(in_channels: int, num_classes: int, backbone: str = "resnet50", output_stride: int = 8, dropout: float = 0.0, **_: Any) -> nn.Module:
    return DeepLab(in_channels, num_classes, backbone=backbone, output_stride=output_stride, dropout=dropout)


register_model("unet", _unet)
register_model("deeplab", _deeplab)
register_model("monai_unet", monai_unet)
register_model("monai_segresnet", monai_segresnet)

__all__ = [
    "DeepLab",
    "RESNET_SPECS",
    "ResNet",
    "UNet",
    "available_models",
    "build_model",
    "build_model_from_config",
    "load_backbone_weights",
    "register_model",
]
