"""Mild domain adaptation with a device head (Gao & McDonnell 2020 sec. 2.4).

The report adds "an auxiliary binary classifier" telling the major device (A,
source domain) from the others (target domain) and writes "Total Loss = CE
Loss - 0.1 x Adaptation Loss". The authors' released code
(emilywg/DCASE2020-Task1: ``DCASE2020_ResNet.py`` with ``domain_aux=True``,
``DCASE2020_Task1a_training.ipynb``, ``create_extra_labels.ipynb``) fixes
what the sentence leaves open, and ``mode: auxiliary`` (the default) follows it:

- the head branches off the map the class convolution reads (after the fused
  1x1 convolution) and mirrors the class output: BN (no affine), 1x1
  convolution to 2 channels, BN (no affine), global average pooling, a 2-way
  softmax over 's' (device A) and 't' (every other device);
- the two losses are summed with Keras ``loss_weights=[1 - beta, beta]``,
  beta = 0.1: total = 0.9 x scene loss + 0.1 x device cross-entropy, an
  auxiliary task trained by plain back-propagation (no gradient reversal);
- the device target is not mixed: the mixup generator mixes the scene labels
  and returns the device label of the first clip of each pair, the one
  ``x_i`` keeps as its own here.

``mode: reversal`` keeps the other reading of the report's minus sign
(domain-adversarial training, Ganin & Lempitsky 2015): the same head is
trained to minimise its cross-entropy while the body receives that gradient
negated and scaled by ``weight`` through a gradient-reversal layer; total =
scene loss + device cross-entropy, whose gradient on the body is the report's
CE - 0.1 x adaptation loss. (Back-propagating CE - 0.1 BCE through
everything instead would make the head maximise its own error: unbounded
below, and it drives the body to encode the device more distinctly.)
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from asclab.errors import ConfigError
from asclab.models.layers import BatchNorm2dNoAffine

MODES = ("auxiliary", "reversal")


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
    """Major-device-vs-others classifier on the body's output: 2 logits, index 0 = major device.

    ``in_chans``: channels of the body's feature map Tensor[B, C, F, T]
    (``spatial=True``: BN - 1x1 conv - BN - average pooling, the released
    code's head) or width of an embedding Tensor[B, D] (``spatial=False``,
    for models whose body ends in a dense embedding: BN - linear - BN, the
    same layers without space; not in the paper, which has only the ResNet).
    ``mode``/``weight``: see the module docstring. ``needs``: the batch field its loss takes
    (each example's device index, unmixed), as a loss declares it (``asclab.losses.build``).
    """

    needs = ("device",)

    def __init__(self, in_chans: int, *, mode: str = "auxiliary", weight: float = 0.1,
                 spatial: bool = True) -> None:
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"device_head.mode must be one of {', '.join(MODES)}, got {mode!r}")
        w = float(weight)
        if not 0.0 <= w <= (1.0 if mode == "auxiliary" else float("inf")):
            raise ConfigError(f"device_head.weight must lie in [0, 1] for mode auxiliary "
                              f"(non-negative for reversal), got {weight!r}")
        self.mode, self.weight, self.spatial = mode, w, bool(spatial)
        self.reverse = GradientReversal(w) if mode == "reversal" else nn.Identity()
        if self.spatial:
            self.classifier = nn.Sequential(BatchNorm2dNoAffine(int(in_chans)),
                                            nn.Conv2d(int(in_chans), 2, 1, bias=False), BatchNorm2dNoAffine(2))
        else:
            self.classifier = nn.Sequential(nn.BatchNorm1d(int(in_chans), affine=False),
                                            nn.Linear(int(in_chans), 2, bias=False), nn.BatchNorm1d(2, affine=False))

    def forward(self, body: Tensor) -> Tensor:
        out = self.classifier(self.reverse(body))
        return out.mean(dim=(2, 3)) if self.spatial else out

    @staticmethod
    def targets(device_index: Tensor) -> Tensor:
        """Class 0 ('s', source) for the major device (device index 0), 1 ('t') for every other."""
        return (device_index != 0).long()

    def loss(self, logits: Tensor, device_index: Tensor) -> Tensor:
        """2-way cross-entropy against each example's own device (Keras' binary
        cross-entropy of a 2-way softmax with one-hot targets is the same number)."""
        return F.cross_entropy(logits.float(), self.targets(device_index).to(logits.device))

    def total(self, scene_loss: Tensor, device_loss: Tensor) -> Tensor:
        """auxiliary: (1 - w) scene + w device; reversal: scene + device (the reversal layer scales)."""
        if self.mode == "auxiliary":
            return (1.0 - self.weight) * scene_loss + self.weight * device_loss
        return scene_loss + device_loss

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, weight={self.weight}"
