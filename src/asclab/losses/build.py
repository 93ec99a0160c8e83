"""Build a classification loss from a recipe's ``loss:`` block."""
from __future__ import annotations

import inspect
from typing import Any, Mapping, Sequence

import torch.nn as nn

from asclab.errors import ConfigError
from asclab.losses.focal import ClassBalancedFocalLoss, FocalLoss


class CrossEntropy(nn.CrossEntropyLoss):
    """Cross-entropy for class indices Tensor[B] or soft targets Tensor[B, K] (mixup).

    torch's own loss, which already accepts probability targets; only the YAML
    keys are restricted to ``label_smoothing`` and ``reduction``.
    """

    def __init__(self, label_smoothing: float = 0.0, reduction: str = "mean") -> None:
        if reduction not in ("mean", "sum", "none"):
            raise ConfigError(f"reduction must be mean, sum or none, got {reduction!r}")
        super().__init__(label_smoothing=float(label_smoothing), reduction=reduction)


LOSSES: dict[str, type[nn.Module]] = {
    "cross_entropy": CrossEntropy,
    "ce": CrossEntropy,
    "focal": FocalLoss,
    "cb_focal": ClassBalancedFocalLoss,
}


def build_loss(cfg: Mapping[str, Any] | None, class_counts: Sequence[int] | None = None) -> nn.Module:
    """``{name: focal, gamma: 2.0}`` -> loss module called as ``loss(logits, targets)``.

    None gives cross-entropy. ``cb_focal`` takes its ``class_counts`` from the
    recipe or, if absent there, from the ``class_counts`` argument (the
    training split's per-class counts).
    """
    kwargs = dict(cfg or {"name": "cross_entropy"})
    name = kwargs.pop("name", None)
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; known: {', '.join(sorted(LOSSES))}")
    cls = LOSSES[name]
    known = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise ConfigError(f"loss {name!r}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if "class_counts" in known and "class_counts" not in kwargs:
        if class_counts is None:
            raise ConfigError(f"loss {name!r} needs class_counts (none given and none in the recipe)")
        kwargs["class_counts"] = list(class_counts)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"loss {name!r}: {e}") from None
