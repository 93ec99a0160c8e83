"""Build a classification loss from a recipe's ``loss:`` block.

A loss is called ``loss(logits, targets)``. One that needs more than that declares it: its
class attribute ``needs`` names the batch fields it takes (KD: ``("teacher",)``, the clip's
teacher logits), and the training module passes them through the loss's
``extra_targets(*fields)``, whose per-example soft targets (Tensor[B, K] each) are mixed with
the labels' weights and given as ``loss(logits, targets, *extra)``; a field missing from the
batch is the ConfigError ``loss.missing(field)`` words. See :func:`loss_needs`.
"""
from __future__ import annotations

import inspect
from typing import Any, Mapping, Sequence

import torch.nn as nn

from asclab.errors import ConfigError
from asclab.losses.ce import CrossEntropy
from asclab.losses.focal import ClassBalancedFocalLoss, FocalLoss
from asclab.losses.kd import KDLoss
from asclab.registry import Registry


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


def loss_needs(loss: nn.Module) -> tuple[str, ...]:
    """The batch fields ``loss`` declares beyond (logits, targets); () for most losses."""
    return tuple(getattr(loss, "needs", ()))
