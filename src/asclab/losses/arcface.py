"""ArcFace head: additive angular margin logits (Deng et al. 2019; Horvath 2021 sec. 6)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from asclab.errors import ConfigError


class ArcFaceHead(nn.Module):
    """Additive angular margin head on an embedding Tensor[B, D].

    Embeddings and the K class weight vectors are L2-normalised, so
    cos(theta_k) = <e, w_k> / (|e| |w_k|). Training logits are
    s cos(theta_y + m) for the target class y and s cos(theta_k) for the others;
    they are then fed to cross-entropy (:meth:`loss`). Horvath 2021 sec. 6:
    s = 30, m = 0.5 (0.35 for CP-ResNet), trained after a focal-loss
    pre-training; the head is dropped after training.

    theta + m > pi handling (as in Deng et al.'s reference code): cos(theta + m)
    stops decreasing in theta once theta > pi - m, so there the target logit
    uses the linear substitute s (cos(theta) - m sin(m)) instead, which keeps
    the penalty monotone. ``easy_margin: true`` applies the margin only where
    cos(theta) > 0 (theta < pi / 2) and uses s cos(theta) elsewhere.

    ``forward(emb, labels)``: labels are class indices [B] or soft targets
    [B, K]; with soft targets the margin is applied to each class in
    proportion to its target weight (the same as above for one-hot targets).
    ``forward(emb)`` (inference) returns s cos(theta) for every class.
    """

    def __init__(self, embed_dim: int, num_classes: int, s: float = 30.0, m: float = 0.5,
                 easy_margin: bool = False) -> None:
        super().__init__()
        if not 0.0 <= float(m) < math.pi / 2:
            raise ConfigError(f"arcface margin m must lie in [0, pi/2), got {m!r}")
        if float(s) <= 0:
            raise ConfigError(f"arcface scale s must be positive, got {s!r}")
        self.embed_dim, self.num_classes = int(embed_dim), int(num_classes)
        self.s, self.m, self.easy_margin = float(s), float(m), bool(easy_margin)
        self.weight = nn.Parameter(torch.empty(self.num_classes, self.embed_dim))
        nn.init.xavier_uniform_(self.weight)

    def cosine(self, emb: Tensor) -> Tensor:
        """cos(theta): Tensor[B, K]."""
        return F.linear(F.normalize(emb, dim=-1), F.normalize(self.weight, dim=-1))

    def forward(self, emb: Tensor, labels: Tensor | None = None) -> Tensor:
        cos = self.cosine(emb)
        if labels is None or self.m == 0.0:
            return self.s * cos
        cos_c = cos.clamp(-1.0 + 1e-7, 1.0 - 1e-7)  # keep sqrt's gradient finite
        sin = torch.sqrt(1.0 - cos_c * cos_c)
        phi = cos_c * math.cos(self.m) - sin * math.sin(self.m)  # cos(theta + m)
        if self.easy_margin:
            phi = torch.where(cos > 0, phi, cos)
        else:
            phi = torch.where(cos > math.cos(math.pi - self.m), phi, cos - math.sin(math.pi - self.m) * self.m)
        if labels.is_floating_point() and labels.dim() == 2:
            y = labels.to(cos.dtype)
        else:
            y = F.one_hot(labels.long(), self.num_classes).to(cos.dtype)
        return self.s * (cos + y * (phi - cos))

    def loss(self, emb: Tensor, labels: Tensor) -> Tensor:
        """Cross-entropy of the margin logits (labels: indices or soft targets)."""
        return F.cross_entropy(self(emb, labels), labels)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_classes={self.num_classes}, s={self.s}, m={self.m}, easy_margin={self.easy_margin}"
