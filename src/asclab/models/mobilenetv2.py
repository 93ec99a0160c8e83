"""Reduced MobileNetV2 of Horvath et al. 2021 (Table 1, sec. 5.1).

Table 1, read layer by layer (input ``3 x 128 x 431``: log-mel, harmonic,
percussive):

1-2.  3x3 convolution, stride 2 -> 32 channels, BN, Leaky ReLU
3-5.  inverted residual blocks (MobileNetV2, Sandler et al. 2018) whose output
      channels are 25, 32, 38: 1x1 expansion by t = 6, BN, Leaky ReLU,
      depthwise 3x3 (stride 2), BN, Leaky ReLU, linear 1x1 projection, BN; an
      identity shortcut only where input and output agree (never here, as the
      channel count changes in each block)
6.    1x1 convolution to 56 channels, BN, Leaky ReLU
7.    2x2 average pooling, then the mean over the remaining map (see below)
8-9.  BatchNorm, Dropout 10 %
10.   Dense 64                       <- ``embed``
11-12. BatchNorm, Dense num_classes  <- ``head`` (13, softmax, lives in the loss)

All activations are Leaky ReLU with slope 0.01 (sec. 5.1) instead of ReLU6.
Choices where the report is silent: the stem width (32, MobileNetV2's), the
expansion factor (6, MobileNetV2's), stride 2 in every inverted residual block
(as in MobileNetV2's 24/32/64-channel stages these blocks mirror), no
convolution biases (BN follows every convolution). Table 1 lists no flatten;
flattening the 2x2-pooled map would need ~190 K Dense weights, against the
47,939 parameters reported, so the pooled map is averaged globally before
Dense 64, which also makes the network accept any clip length. Parameter
count: 47,772 (reported 47,939, -0.35 %).
"""
from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from asclab.models.layers import conv_bn
from asclab.models.registry import register_model


def leaky_relu() -> nn.Module:
    return nn.LeakyReLU(0.01)


class InvertedResidual(nn.Module):
    """MobileNetV2 inverted residual block with a linear bottleneck and Leaky ReLU."""

    def __init__(self, in_chans: int, out_chans: int, expansion: int = 6, stride: int = 1) -> None:
        super().__init__()
        hidden = in_chans * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(conv_bn(in_chans, hidden, 1, act=leaky_relu()))
        layers += [
            conv_bn(hidden, hidden, 3, stride=stride, groups=hidden, act=leaky_relu()),
            conv_bn(hidden, out_chans, 1),
        ]
        self.block = nn.Sequential(*layers)
        self.use_shortcut = stride == 1 and in_chans == out_chans

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        return x + y if self.use_shortcut else y


class EmbeddingTop(nn.Module):
    """Horvath 2021 Table 1 layers 7-10: AvgPool 2x2, BN, Dropout, (global mean), Dense 64."""

    def __init__(self, in_chans: int, embed_dim: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(2, ceil_mode=True)
        self.bn = nn.BatchNorm2d(in_chans)
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(in_chans, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.dropout(self.bn(self.pool(x)))
        return self.dense(x.mean(dim=(2, 3)))


def classifier_head(embed_dim: int, num_classes: int) -> nn.Sequential:
    """Horvath 2021 sec. 6 "last 3 layers" minus the softmax: BN, Dense num_classes."""
    return nn.Sequential(nn.BatchNorm1d(embed_dim), nn.Linear(embed_dim, num_classes))


class WithHorvathTop(nn.Module):
    """A body (``self.features``) under Horvath et al.'s top layers (Table 1, layers 7-13):
    ``embed`` = pooled body -> BN -> dropout -> Dense 64, ``head`` = BN -> Dense classes."""

    def attach_top(self, body_channels: int, embed_dim: int, num_classes: int, dropout: float) -> None:
        self.top = EmbeddingTop(body_channels, embed_dim, dropout)
        self.head = classifier_head(embed_dim, num_classes)
        self.embed_dim = embed_dim

    def embed(self, x: Tensor) -> Tensor:
        return self.top(self.features(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embed(x))


class MobileNetV2Small(WithHorvathTop):
    """``forward(x) == head(embed(x))``; ``embed`` is the Dense-64 output (Table 1 layer 10)."""

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 3,
        stem_channels: int = 32,
        block_channels: tuple[int, ...] = (25, 32, 38),
        expansion: int = 6,
        block_strides: tuple[int, ...] = (2, 2, 2),
        last_channels: int = 56,
        embed_dim: int = 64,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn(in_chans, stem_channels, 3, stride=2, act=leaky_relu())]
        chans = stem_channels
        for out, stride in zip(block_channels, block_strides):
            layers.append(InvertedResidual(chans, out, expansion, stride))
            chans = out
        layers.append(conv_bn(chans, last_channels, 1, act=leaky_relu()))
        self.features = nn.Sequential(*layers)
        self.attach_top(last_channels, embed_dim, num_classes, dropout)


@register_model
def mobilenetv2_small(num_classes: int = 10, in_chans: int = 3, **kwargs) -> MobileNetV2Small:
    """Horvath et al. 2021 Table 1: 47,772 params (reported 47,939)."""
    return MobileNetV2Small(num_classes=num_classes, in_chans=in_chans, **kwargs)
