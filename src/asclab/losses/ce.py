"""Cross-entropy for hard or soft (mixed) targets: torch's own loss behind the recipe's keys."""
from __future__ import annotations

import torch.nn as nn

from asclab.errors import ConfigError


class CrossEntropy(nn.CrossEntropyLoss):
    """Cross-entropy for class indices Tensor[B] or soft targets Tensor[B, K] (mixup).

    torch's own loss, which already accepts probability targets; only the YAML
    keys are restricted to ``label_smoothing`` and ``reduction``.
    """

    def __init__(self, label_smoothing: float = 0.0, reduction: str = "mean") -> None:
        if reduction not in ("mean", "sum", "none"):
            raise ConfigError(f"reduction must be mean, sum or none, got {reduction!r}")
        super().__init__(label_smoothing=float(label_smoothing), reduction=reduction)
