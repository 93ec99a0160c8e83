"""A timm-style model registry: ``@register_model`` on a factory, then
``create_model(name, num_classes=..., in_chans=..., **kwargs)``."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from asclab.errors import ConfigError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a factory ``fn(num_classes=..., in_chans=..., **kwargs)`` under its name."""
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int = 10, in_chans: int | None = None, **kwargs) -> nn.Module:
    """Build a registered model; ``in_chans=None`` takes the factory's default (its paper's input)."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    return _REGISTRY[name](num_classes=num_classes, **kwargs)
