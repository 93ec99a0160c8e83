"""Simplified CP-Mobile, the DCASE 2024 task 1 baseline used by Gao & Lee 2024 (sec. 2.2).

The network of Schmid et al. (DCASE 2023 workshop) in the simplified form the
challenge organisers published as the 2024 baseline (CPJKU
dcase2024_task1_baseline), rewritten here from its description:

- input stem: two 3x3 stride-2 conv-BN-ReLU layers, 1 -> base/4 -> base channels;
- three stages of 3, 2 and 1 inverted-bottleneck blocks, widths
  ``base * multiplier**stage`` rounded to multiples of 8 (32, 56, 104 for
  base 32 and multiplier 1.8); a block is 1x1 expansion (by ``expansion``
  = 2.1, rounded to a multiple of 8), BN, ReLU, depthwise 3x3 (the block's
  stride), BN, ReLU, 1x1 projection, BN, then ``+ shortcut`` when the widths
  agree (a 3x3 average pool when strided) and ReLU after the block;
- block strides (F, T): b3 (1, 2), b4 (2, 1), all others 1;
- classifier: 1x1 conv to the classes, BN, global average pooling.

For a 1 x 256 x 65 input (1 s at 32 kHz, hop 500, 256 mel bins) it has
61,148 parameters and 29,419,156 multiply-accumulates in the challenge's
NeSsi/torchinfo convention, the official figures. ``embed`` is the globally
pooled output of the last stage (104 channels). Fully convolutional.
"""
from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from asclab.errors import ConfigError
from asclab.models.layers import conv_bn
from asclab.models.registry import register_model


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor`` without going below 90 % of ``value`` (MobileNet rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class InvertedBottleneck(nn.Module):
    """Expansion 1x1 - depthwise 3x3 - projection 1x1, each with BN; ReLU after the (residual) sum."""

    def __init__(self, in_chans: int, out_chans: int, expansion: float, stride: tuple[int, int]) -> None:
        super().__init__()
        hidden = make_divisible(in_chans * expansion, 8)
        self.block = nn.Sequential(
            conv_bn(in_chans, hidden, 1, act=nn.ReLU()),
            conv_bn(hidden, hidden, 3, stride=stride, groups=hidden, act=nn.ReLU()),
            conv_bn(hidden, out_chans, 1),
        )
        self.use_shortcut = in_chans == out_chans
        strided = tuple(stride) != (1, 1)
        self.shortcut = nn.AvgPool2d(3, stride=stride, padding=1) if self.use_shortcut and strided else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        if self.use_shortcut:
            y = y + self.shortcut(x)
        return self.act(y)


def baseline_init(m: nn.Module) -> None:
    """The DCASE 2024 baseline's initialisation (CPJKU dcase2024_task1_baseline, models/baseline.py
    ``initialize_weights``): Kaiming-normal convolutions (fan_out), BatchNorm weight 1 and bias 0.
    ``init: torch`` keeps PyTorch's layer defaults (Kaiming-uniform, a = sqrt(5))."""
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out")
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


class CPMobile(nn.Module):
    """``forward(x[B, in_chans, F, T]) -> logits``; ``embed`` = pooled last-stage features."""

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 1,
        base_channels: int = 32,
        channels_multiplier: float = 1.8,
        expansion: float = 2.1,
        blocks_per_stage: tuple[int, ...] = (3, 2, 1),
        strides: dict[int, tuple[int, int]] | None = None,
        init: str = "torch",
    ) -> None:
        super().__init__()
        if init not in ("torch", "baseline"):
            raise ConfigError(f"cp_mobile init must be 'torch' or 'baseline', got {init!r}")
        strides = {3: (1, 2), 4: (2, 1)} if strides is None else {int(k): tuple(v) for k, v in strides.items()}
        base = make_divisible(base_channels, 8)
        widths = [make_divisible(base * channels_multiplier**s, 8) for s in range(len(blocks_per_stage))]
        self.stem = nn.Sequential(
            conv_bn(in_chans, base // 4, 3, stride=2, act=nn.ReLU()),
            conv_bn(base // 4, base, 3, stride=2, act=nn.ReLU()),
        )
        blocks: list[nn.Module] = []
        chans, index = base, 0
        for width, n in zip(widths, blocks_per_stage):
            for _ in range(n):
                index += 1
                blocks.append(InvertedBottleneck(chans, width, expansion, strides.get(index, (1, 1))))
                chans = width
        self.stages = nn.Sequential(*blocks)
        self.classifier = conv_bn(chans, num_classes, 1)
        self.embed_dim = chans
        if init == "baseline":
            self.apply(baseline_init)

    def features(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x))

    def embed(self, x: Tensor) -> Tensor:
        return self.features(x).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x)).mean(dim=(2, 3))


@register_model
def cp_mobile(num_classes: int = 10, in_chans: int = 1, **kwargs) -> CPMobile:
    """DCASE 2024 baseline (simplified CP-Mobile): 61,148 params, 29,419,156 MACs for 1x1x256x65."""
    return CPMobile(num_classes=num_classes, in_chans=in_chans, **kwargs)
