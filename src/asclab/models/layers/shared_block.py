"""The Shared Residual Block of QTI 2020 sec. 2.1 (Table 1 "SRB", Fig. 1)."""
from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class SharedResidualBlock(nn.Module):
    """One residual block ``conv-BN-ReLU-conv-BN (+x) ReLU`` applied ``repeats`` times.

    The two convolutions are one set of weights reused on every repetition;
    each repetition has BatchNorms of its own, because the feature statistics
    change after every residual addition (QTI 2020 sec. 2.1). Input and output
    have ``channels`` channels and the same spatial size.
    """

    def __init__(self, channels: int, repeats: int = 3, kernel_size: int = 1) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.repeats = int(repeats)
        self.conv1 = nn.Conv2d(channels, channels, kernel_size, padding=pad, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size, padding=pad, bias=False)
        self.bn1 = nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(self.repeats))
        self.bn2 = nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(self.repeats))

    def forward(self, x: Tensor) -> Tensor:
        for bn1, bn2 in zip(self.bn1, self.bn2):
            y = F.relu(bn1(self.conv1(x)))
            x = F.relu(bn2(self.conv2(y)) + x)
        return x

    def extra_repr(self) -> str:
        return f"repeats={self.repeats}"
