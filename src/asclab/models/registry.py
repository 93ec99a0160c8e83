"""The model registry (timm's pattern, ``asclab.registry``): ``@register_model`` on a factory,
then ``create_model(name, num_classes=..., in_chans=..., **kwargs)``."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from asclab.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a factory ``fn(num_classes=..., in_chans=..., **kwargs)`` under its name."""
    MODELS.add(fn.__name__, fn)
    return fn


def list_models() -> list[str]:
    return MODELS.names()


def create_model(name: str, num_classes: int = 10, in_chans: int | None = None, **kwargs) -> nn.Module:
    """Build a registered model; ``in_chans=None`` takes the factory's default (its paper's input)."""
    factory = MODELS.get(name)
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    return factory(num_classes=num_classes, **kwargs)
