"""Convolution + BatchNorm (+ activation), the unit most of the model zoo is built from."""
from __future__ import annotations

import torch.nn as nn


def conv_bn(
    in_chans: int,
    out_chans: int,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] = 1,
    *,
    padding: int | tuple[int, int] | None = None,
    groups: int = 1,
    act: nn.Module | None = None,
) -> nn.Sequential:
    """``Conv2d(bias=False) -> BatchNorm2d [-> act]``; ``padding=None`` keeps the size at stride 1."""
    if padding is None:
        ks = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        padding = (ks[0] // 2, ks[1] // 2)
    layers: list[nn.Module] = [
        nn.Conv2d(in_chans, out_chans, kernel_size, stride=stride, padding=padding, groups=groups, bias=False),
        nn.BatchNorm2d(out_chans),
    ]
    if act is not None:
        layers.append(act)
    return nn.Sequential(*layers)
