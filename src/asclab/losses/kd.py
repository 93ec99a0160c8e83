"""Knowledge distillation from teacher logits (Hinton et al. 2015), in the form the
CPJKU DCASE 2023 system uses (Schmid et al., DCASE 2023 technical report):

    loss = label_weight x base(student, labels)
           + (1 - label_weight) x T^2 x KL(softmax(teacher / T) || softmax(student / T)) / R

with the CPJKU defaults T = 2 and label_weight = 0.02. The technical report is silent on
the KL reduction R; the authors' released code (CPJKU cpjku_dcase23, run_training.py:
``nn.KLDivLoss(log_target=True, reduction="none")(...).mean()``) averages the pointwise terms
over the batch *and the K classes*, so R = K: ``reduction: mean``, the default. ``batchmean``
(R = 1: the KL summed over classes, averaged over the batch, asclab's reading before issue 22)
gives the distillation term K times the weight, so that at label_weight 0.02 the labels steer
0.5 % of the loss instead of about 5-7 % (K = 10-15): the student then learns almost only what
the teacher says on its training clips (results/kd/v4). ``base`` is ``ce`` or ``focal`` (a
name, or a loss block such as ``{name: focal, gamma: 2.0}``); ``gamma`` is the focal base's
gamma (so a KD recipe built on a focal recipe keeps its ``loss.gamma``; refused with a CE base).

The teacher enters as probabilities at temperature T (:meth:`KDLoss.teacher_targets`)
so that batch mixing can mix them with the labels' weights: a mixed example's
teacher target is lam p_i + (1 - lam) p_perm(i), just as its label is. The loss
declares what it needs (``needs``: the batch field ``teacher``, the clip's teacher
logits, ``asclab.data.teacher_targets``); the training module passes it through
:meth:`KDLoss.extra_targets` (``asclab.losses.build``).
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from asclab.errors import ConfigError
from asclab.losses.ce import CrossEntropy
from asclab.losses.focal import FocalLoss
from asclab.registry import Registry

BASES = ("ce", "cross_entropy", "focal")
REDUCTIONS = ("mean", "batchmean")  # mean: over batch and classes (CPJKU's code); batchmean: over the batch
# The label term's losses, as the recipe's loss registry names them (asclab.losses.build)
BASE_LOSSES: Registry[type[nn.Module]] = Registry("loss")
BASE_LOSSES.add("ce", CrossEntropy)
BASE_LOSSES.add("cross_entropy", CrossEntropy)
BASE_LOSSES.add("focal", FocalLoss)


class KDLoss(nn.Module):
    """``loss(logits, targets, teacher_probs)``; ``teacher_probs`` = softmax(teacher logits / T), Tensor[B, K]."""

    needs = ("teacher",)  # the batch field with each clip's teacher logits (asclab.data.teacher_targets)

    def __init__(self, temperature: float = 2.0, label_weight: float = 0.02,
                 base: str | Mapping[str, Any] = "ce", gamma: float | None = None,
                 reduction: str = "mean") -> None:
        super().__init__()
        if float(temperature) <= 0:
            raise ConfigError(f"loss kd: temperature must be positive, got {temperature!r}")
        if not 0.0 <= float(label_weight) <= 1.0:
            raise ConfigError(f"loss kd: label_weight must be in [0, 1], got {label_weight!r}")
        if reduction not in REDUCTIONS:
            raise ConfigError(f"loss kd: reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
        self.reduction = reduction
        base_cfg = {"name": base} if isinstance(base, str) else dict(base or {})
        if base_cfg.get("name") not in BASES:
            raise ConfigError(f"loss kd: base must be one of {', '.join(BASES)}, got {base!r}")
        if gamma is not None:
            if base_cfg["name"] != "focal":
                raise ConfigError(f"loss kd: gamma {gamma!r} needs base: focal (base is {base_cfg['name']!r})")
            base_cfg.setdefault("gamma", float(gamma))
        self.temperature, self.label_weight = float(temperature), float(label_weight)
        self.base = BASE_LOSSES.build(base_cfg)

    def teacher_targets(self, teacher_logits: Tensor) -> Tensor:
        """The teacher's soft targets at temperature T (what batch mixing mixes)."""
        return torch.softmax(teacher_logits.float() / self.temperature, dim=-1)

    def extra_targets(self, teacher: Tensor) -> list[Tensor]:
        """What ``needs`` asks for, as targets mixed with the labels: the teacher's soft targets."""
        return [self.teacher_targets(teacher)]

    @staticmethod
    def missing(field: str) -> str:
        return "loss kd needs teacher logits: set data.teacher_logits to a teacher file"

    def distillation(self, logits: Tensor, teacher_probs: Tensor) -> Tensor:
        """T^2 x KL(teacher_probs || softmax(logits / T)), averaged over the batch (and over the
        classes with ``reduction: mean``)."""
        log_q = F.log_softmax(logits.float() / self.temperature, dim=-1)
        kl = F.kl_div(log_q, teacher_probs.float(), reduction="batchmean")
        if self.reduction == "mean":
            kl = kl / logits.shape[-1]
        return kl * self.temperature ** 2

    def forward(self, logits: Tensor, targets: Tensor, teacher_probs: Tensor | None = None) -> Tensor:
        if teacher_probs is None:
            raise ConfigError("loss kd needs teacher logits: set data.teacher_logits to a teacher file "
                              "(asclab logits RUN ... --out teachers.h5)")
        label = self.base(logits, targets) if self.label_weight > 0 else logits.new_zeros(())
        if self.label_weight >= 1.0:
            return label
        return self.label_weight * label + (1.0 - self.label_weight) * self.distillation(logits, teacher_probs)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, label_weight={self.label_weight}, reduction={self.reduction}"
