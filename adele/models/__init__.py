"""Model registry: a name -> ``nn.Module`` factory.

Every factory is called as ``factory(in_channels=..., num_classes=..., **model_config)``
and must return a module mapping ``(B, in_channels, H, W)`` to logits
``(B, num_classes, H, W)``. Register your own::

    from adele.models import register_model
    register_model("mynet", lambda in_channels, num_classes, **kw: MyNet(in_channels, num_classes))
"""
from __future__ import annotations

from typing import Any, Callable

from torch import nn

from ..errors import ConfigError
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


def _unet(in_channels: int, num_classes: int, width: int = 16, depth: int = 4, dropout: float = 0.0, **_: Any) -> nn.Module:
    return UNet(in_channels, num_classes, width=width, depth=depth, dropout=dropout)


register_model("unet", _unet)

__all__ = ["UNet", "available_models", "build_model", "register_model"]
