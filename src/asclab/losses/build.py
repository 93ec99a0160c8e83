"""Build a classification loss from a recipe's ``loss:`` block."""
from __future__ import annotations

import inspect
from typing import Any, Mapping, Sequence

import torch.nn as nn

from asclab.errors import ConfigError
from asclab.registry import Registry
from asclab.losses.focal import ClassBalancedFocalLoss, FocalLoss
from asclab.losses.kd import KDLoss


class CrossEntropy(nn.CrossEntropyLoss):
    """Cross-entropy for class indices Tensor[B] or soft targets Tensor[B, K] (mixup).

    torch's own loss, which already accepts probability targets; only the YAML
    keys are restricted to ``label_smoothing`` and ``reduction``.
    """

    def __init__(self, label_smoothing: float = 0.0, reduction: str = "mean") -> None:
        if reduction not in ("mean", "sum", "none"):
            raise ConfigError(f"reduction must be mean, sum or none, got {reduction!r}")
        super().__init__(label_smoothing=float(label_smoothing), reduction=reduction)


LOSSES: Registry[type[nn.Module]] = Registry("loss")
LOSSES.add("cross_entropy", CrossEntropy)
LOSSES.add("ce", CrossEntropy)
LOSSES.add("focal", FocalLoss)
LOSSES.add("cb_focal", ClassBalancedFocalLoss)
LOSSES.add("kd", KDLoss)


def build_loss(cfg: Mapping[str, Any] | None, class_counts: Sequence[int] | None = None) -> nn.Module:
    """``{name: focal, gamma: 2.0}`` -> loss module called as ``loss(logits, targets)``.

    None gives cross-entropy. ``cb_focal`` takes its ``class_counts`` from the
    recipe or, if absent there, from the ``class_counts`` argument (the
    training split's per-class counts).
    """
    cfg = dict(cfg or {"name": "cross_entropy"})
    cls = LOSSES.get(cfg["name"]) if cfg.get("name") in LOSSES else None
    needs_counts = cls is not None and "class_counts" in inspect.signature(cls).parameters
    if needs_counts and "class_counts" not in cfg and class_counts is None:
        raise ConfigError(f"loss {cfg['name']!r} needs class_counts (none given and none in the recipe)")
    return LOSSES.build(cfg, defaults={"class_counts": list(class_counts)} if class_counts is not None else None)
