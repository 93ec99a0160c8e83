"""Mild domain adaptation with a device head (Gao & McDonnell 2020 sec. 2.4).

The paper adds "an auxiliary binary classifier" telling the major device (A)
from the others and writes Total Loss = CE Loss - 0.1 x Adaptation Loss.

Reading taken here (domain-adversarial training, Ganin & Lempitsky 2015): the
device head is trained to *minimise* its binary cross-entropy, while the shared
body receives the *negated* gradient of that BCE scaled by 0.1 through a
gradient-reversal layer, so the body is pushed towards device-invariant
features. Implemented as ``logit = head(GradientReversal(0.1)(emb))``; the
loss to optimise and report is ``CE + BCE(logit, is_major_device)``. For the
body this gives exactly the gradient of the paper's CE - 0.1 BCE.

Alternative literal reading, not taken: back-propagating CE - 0.1 BCE through
everything would make the head *maximise* its own error. Head and body would
then cooperate to make the head confidently wrong: the total loss is unbounded
below, it is dominated by -0.1 BCE as training goes on, and the body is driven
to encode the device more distinctly, not less.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from asclab.errors import ConfigError


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.scale * grad, None


def grad_reverse(x: Tensor, scale: float = 1.0) -> Tensor:
    """Identity forward; multiplies the incoming gradient by ``-scale`` backward."""
    return _ReverseGrad.apply(x, float(scale))


class GradientReversal(nn.Module):
    """Gradient-reversal layer (Ganin & Lempitsky 2015) as a module."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = float(scale)

    def forward(self, x: Tensor) -> Tensor:
        return grad_reverse(x, self.scale)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class DeviceHead(nn.Module):
    """Auxiliary major-device-vs-others classifier on the embedding Tensor[B, D].

    ``forward(emb)`` returns one logit per example (Tensor[B]), computed by a
    linear layer behind a gradient reversal of strength ``weight`` (0.1 in the
    paper); ``loss(logit, is_major_device)`` is the binary cross-entropy the head
    minimises. See the module docstring for why this realises the paper's
    "CE - 0.1 x adaptation loss".
    """

    def __init__(self, embed_dim: int, weight: float = 0.1) -> None:
        super().__init__()
        if float(weight) < 0:
            raise ConfigError(f"device head weight must be non-negative, got {weight!r}")
        self.reverse = GradientReversal(weight)
        self.classifier = nn.Linear(int(embed_dim), 1)

    @property
    def weight(self) -> float:
        return self.reverse.scale

    def forward(self, emb: Tensor) -> Tensor:
        return self.classifier(self.reverse(emb.flatten(1))).squeeze(-1)

    @staticmethod
    def loss(logit: Tensor, is_major_device: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(logit, is_major_device.to(logit.dtype))
