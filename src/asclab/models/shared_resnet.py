"""Shared-ResNet with SubSpectral Normalisation (QTI, Chang et al. 2020, Table 1).

Layer by layer (c = base channels, tensors ``[B, C, F, T]``):

======  ==========================================  ========
Conv    5x5, stride 2, BN, ReLU                     c
RB 1    3x3, BN, ReLU, 1x1, SSN(S=2)                c
        2x2 max pooling
RB 2    3x3, BN, ReLU, 3x3, SSN(S=2)                c
        2x2 max pooling
RB 3/4  3x3, BN, ReLU, 3x3, SSN(S=2)                c
        2x2 max pooling
RB 5    1x1, BN, ReLU, 1x1, SSN(S=2)                2c
SRB 1   N=3 x shared (1x1, BN, 1x1, BN)             2c
RB 6    1x1, BN, ReLU, 1x1, SSN(S=2)                4c
SRB 2   N=3 x shared (1x1, BN, 1x1, BN)             4c
Conv    1x1, BN                                     #classes
Pool    global average pooling                      #classes
======  ==========================================  ========

Each residual block ends ``+ shortcut, ReLU`` as in the CP-ResNet the report
builds on (Koutini et al. 2019, ref. [18]). Choices where the report is silent,
made so that the parameter count matches: c = 64 (the CP-ResNet "ch64" it is
compared with), BN-free convolutions, a 1x1 conv + BN shortcut where the
channel count changes (RB 5, RB 6), and one SSN affine per channel shared by
both sub-bands (sec. 2.2). This gives 603,668 parameters for 10 classes
(Table 3, DCASE 2019: 604 K) and 601,862 for the 3 classes of task 1b
(Table 4: 601 K). The stem pads by 2 (keeps ``ceil(F/2)``); the report does
not say. Input: 2 channels (stereo) x 256 mel bins (sec. 6.1). Fully
convolutional, any number of frames.
"""
from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from asclab.models.layers import SharedResidualBlock, SubSpectralNorm, conv_bn
from asclab.models.registry import register_model


class SSNResidualBlock(nn.Module):
    """``conv(k1)-BN-ReLU-conv(k2)-SSN (+ shortcut) ReLU`` (QTI 2020 Table 1, "RB")."""

    def __init__(self, in_chans: int, out_chans: int, k1: int, k2: int, ssn_groups: int = 2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, out_chans, k1, padding=k1 // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chans)
        self.conv2 = nn.Conv2d(out_chans, out_chans, k2, padding=k2 // 2, bias=False)
        self.norm2 = SubSpectralNorm(out_chans, groups=ssn_groups)
        self.shortcut = conv_bn(in_chans, out_chans, 1) if in_chans != out_chans else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class SharedResNetSSN(nn.Module):
    """QTI 2020 Shared-ResNet (N=3) with SSN (S=2).

    ``forward(x[B, in_chans, F, T]) -> logits[B, num_classes]``;
    ``embed(x) -> [B, 4c]``: globally averaged features entering the 1x1 class conv.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 2,
        base_channels: int = 64,
        shared_repeats: int = 3,
        ssn_groups: int = 2,
    ) -> None:
        super().__init__()
        c, s = base_channels, ssn_groups
        self.stem = conv_bn(in_chans, c, 5, stride=2, padding=2, act=nn.ReLU())
        self.body = nn.Sequential(
            SSNResidualBlock(c, c, 3, 1, s),
            nn.MaxPool2d(2),
            SSNResidualBlock(c, c, 3, 3, s),
            nn.MaxPool2d(2),
            SSNResidualBlock(c, c, 3, 3, s),
            SSNResidualBlock(c, c, 3, 3, s),
            nn.MaxPool2d(2),
            SSNResidualBlock(c, 2 * c, 1, 1, s),
            SharedResidualBlock(2 * c, repeats=shared_repeats),
            SSNResidualBlock(2 * c, 4 * c, 1, 1, s),
            SharedResidualBlock(4 * c, repeats=shared_repeats),
        )
        self.classifier = conv_bn(4 * c, num_classes, 1)
        self.embed_dim = 4 * c

    def features(self, x: Tensor) -> Tensor:
        return self.body(self.stem(x))

    def embed(self, x: Tensor) -> Tensor:
        return self.features(x).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x)).mean(dim=(2, 3))


@register_model
def shared_resnet_ssn(num_classes: int = 10, in_chans: int = 2, **kwargs) -> SharedResNetSSN:
    """QTI 2020: 603,668 params for 10 classes (Table 3: 604 K), 601,862 for 3 (Table 4: 601 K)."""
    return SharedResNetSSN(num_classes=num_classes, in_chans=in_chans, **kwargs)
