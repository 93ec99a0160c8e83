"""Receptive-field regularised CP-ResNet as used by Horvath et al. 2021 (sec. 5.2).

The backbone is Koutini et al.'s CP-ResNet (EUSIPCO 2019; DCASE 2019 report):
a 5x5 stride-2 convolution (padding 1) with BN and ReLU, then three stages of
four basic residual blocks ``conv(k1)-BN-ReLU-conv(k2)-BN (+ shortcut) ReLU``
with a 1x1 conv + BN shortcut where the width changes, max pooling after
blocks 1, 2 and 4 of stage 1, and a 1x1 convolution + BN to 10 channels (the
CP-ResNet classifier, here without its global pooling).

The receptive-field parameter rho fixes the kernel sizes of the blocks (the
rule of Koutini et al.'s ``get_model_based_on_rho``, reimplemented in
:func:`rho_kernel_sizes`); rho = 4 gives (k1, k2) = (3,1), (3,3), (3,3), (1,1)
in stage 1 and 1x1 kernels everywhere after.

Horvath et al.: "rho = 4 ... we reduced the residual block channel sizes to 16"
and "the same top layer is added as to the MobileNetV2 (Table 1 layers 7-13)".
Readings taken: base width 16, so stage widths 16, 32, 64 (CP-ResNet doubles
per stage); the CP-ResNet 1x1 classifier convolution to 10 channels is kept as
part of the backbone (the original code's ``stop_before_global_avg_pooling``
output) and the top layers sit on it: AvgPool 2x2, BN, Dropout 10 %, global
mean, Dense 64 (``embed``), BN, Dense num_classes (``head``). This gives
58,626 parameters; the report says 58,266 (the same digits, two swapped;
+0.6 %). Without the 10-channel convolution (top on the 64 channels) the
count would be 61,530 (+5.6 %). Fully convolutional up to the global mean, so
any clip length works.
"""
from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from asclab.models.layers import conv_bn
from asclab.models.mobilenetv2 import WithHorvathTop
from asclab.models.registry import register_model


def rho_kernel_sizes(rho: int) -> list[list[tuple[int, int]]]:
    """(k1, k2) per block for the three 4-block stages of CP-ResNet (Koutini et al. 2019).

    Kernels shrink from 3 to 1, starting with the deepest layers, as rho
    decreases; rho = 7 is the reference, rho < 7 removes 3x3 kernels from
    stages 1-2, rho > 7 adds them to stages 2-3.
    """
    e = rho - 7

    def shrink(t: int) -> int:  # 3x3 unless the receptive field must shrink by more than t
        return 1 if -e > t else 3

    def grow(t: int) -> int:  # 1x1 unless the receptive field may grow by more than t
        return 3 if e > t else 1

    k1 = [[3, shrink(6), shrink(4), shrink(2)], [shrink(0), grow(1), grow(3), grow(5)],
          [grow(7), grow(9), grow(11), grow(13)]]
    k2 = [[1, shrink(5), shrink(3), shrink(1)], [grow(0), grow(2), grow(4), grow(6)],
          [grow(8), grow(10), grow(12), grow(14)]]
    return [list(zip(a, b)) for a, b in zip(k1, k2)]


class BasicBlock(nn.Module):
    """CP-ResNet basic block: ``conv(k1)-BN-ReLU-conv(k2)-BN (+ shortcut) ReLU``."""

    def __init__(self, in_chans: int, out_chans: int, k1: int, k2: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, out_chans, k1, padding=k1 // 3, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chans)
        self.conv2 = nn.Conv2d(out_chans, out_chans, k2, padding=k2 // 3, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chans)
        self.shortcut = conv_bn(in_chans, out_chans, 1) if in_chans != out_chans else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class CPResNet(WithHorvathTop):
    """Horvath 2021 CP-ResNet; ``forward(x) == head(embed(x))``, ``embed`` = Dense-64 output."""

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 3,
        rho: int = 4,
        base_channels: int = 16,
        blocks_per_stage: int = 4,
        maxpool_after: tuple[int, ...] = (1, 2, 4),
        backbone_classes: int = 10,
        embed_dim: int = 64,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        widths = [base_channels, 2 * base_channels, 4 * base_channels]
        kernels = rho_kernel_sizes(rho)
        # CP-ResNet pads a k-kernel by k // 3: 1 for 3x3 and 5x5, 0 for 1x1
        layers: list[nn.Module] = [conv_bn(in_chans, widths[0], 5, stride=2, padding=1, act=nn.ReLU())]
        chans = widths[0]
        for stage, width in enumerate(widths):
            for b in range(blocks_per_stage):
                k1, k2 = kernels[stage][b]
                layers.append(BasicBlock(chans, width, k1, k2))
                chans = width
                if stage == 0 and b + 1 in maxpool_after:
                    layers.append(nn.MaxPool2d(2))
        layers.append(conv_bn(chans, backbone_classes, 1))
        self.features = nn.Sequential(*layers)
        self.attach_top(backbone_classes, embed_dim, num_classes, dropout)


@register_model
def cp_resnet(num_classes: int = 10, in_chans: int = 3, **kwargs) -> CPResNet:
    """Horvath et al. 2021 sec. 5.2: rho 4, widths 16/32/64 + Table 1 top; 58,626 params (reported 58,266)."""
    return CPResNet(num_classes=num_classes, in_chans=in_chans, **kwargs)
