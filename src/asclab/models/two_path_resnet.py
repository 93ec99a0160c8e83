"""Two-path pre-activation ResNet with late frequency fusion.

McDonnell & Gao 2019 sec. 3.2-3.4 (DCASE 2019 task 1) and its 2020 re-use by
Gao & McDonnell 2020 sec. 2.2. Structure, per path (one for mel bins 0-63, one
for 64-127):

- a BatchNorm with learned scale/offset on the input (sec. 3.4: "the very first
  layer ... with learned offset and scale"; one per path, as in the authors'
  Keras code), then a 3x3 convolution to ``width`` channels, stride 2 in time;
- 4 stacks x 2 pre-activation residual blocks (BN-ReLU-conv3x3 twice), widths
  ``width * 2**stack``; the first block of stacks 2-4 has stride 2 in time and
  its shortcut is a 3x3 average pool (stride 2 in time, padding excluded from
  the mean) followed by zero-padding of the new channels (sec. 3.4, no 1x1
  shortcut convolutions). 1 + 16 = 17 convolutions per path, all 3x3, and no
  downsampling in frequency at all (sec. 3.3);
- the two outputs are concatenated along frequency (128 bins), then
  BN-ReLU-conv1x1 to ``head_channels``, BN-conv1x1 to the classes, BN, global
  average pooling (sec. 3.2). All BNs after the first have no learned affine
  (sec. 3.5).

Choices where the paper is silent, taken from the authors' public code:
``head_channels`` is 4x the last stack's width, 768 for width 24 (2019:
3,247,416 parameters for 6 input channels, "approximately 3.2 million"; a head
of 384 would give 3,169,848, also "about 3.2 M", but the code says 768); the
2020 code uses width 28 and a head of 2x the last stack's width, 448, which
gives 4,311,732 parameters for 3 input channels (reported: 4.31 M). No ReLU
precedes the class convolution (the authors' ``use_relu=False``). Padding is
symmetric (PyTorch), not Keras' "same", which shifts strided windows by one
frame; this changes no shape or parameter count.

The network is fully convolutional: it takes any number of frames (trained on
400-frame crops, evaluated on full 423/461-frame clips, sec. 3.3, 3.7).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from asclab.models.layers import BatchNorm2dNoAffine, FrequencySplit
from asclab.models.registry import register_model

TIME_STRIDE = (1, 2)  # tensors are [B, C, F, T]: stride 1 in frequency, 2 in time


def _conv3x3(in_chans: int, out_chans: int, stride: tuple[int, int] | int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_chans, out_chans, 3, stride=stride, padding=1, bias=False)


class PreActBlock(nn.Module):
    """``BN-ReLU-conv3x3-BN-ReLU-conv3x3`` plus shortcut (McDonnell & Gao 2019 sec. 3.4).

    When the block downsamples, the shortcut is a 3x3 average pool with the
    block's stride and the extra channels are zeros.
    """

    def __init__(self, in_chans: int, out_chans: int, downsample: bool) -> None:
        super().__init__()
        stride = TIME_STRIDE if downsample else 1
        self.bn1 = BatchNorm2dNoAffine(in_chans)
        self.conv1 = _conv3x3(in_chans, out_chans, stride)
        self.bn2 = BatchNorm2dNoAffine(out_chans)
        self.conv2 = _conv3x3(out_chans, out_chans)
        self.pool = nn.AvgPool2d(3, stride=TIME_STRIDE, padding=1, count_include_pad=False) if downsample else None
        self.extra_chans = out_chans - in_chans

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv1(F.relu(self.bn1(x)))
        y = self.conv2(F.relu(self.bn2(y)))
        shortcut = x if self.pool is None else self.pool(x)
        if self.extra_chans:  # zero channels; built from a slice so ONNX export keeps the channel count
            zeros = torch.zeros_like(shortcut[:, :1]).expand(-1, self.extra_chans, -1, -1)
            shortcut = torch.cat([shortcut, zeros], dim=1)
        return y + shortcut


class ResNetPath(nn.Module):
    """One frequency path: input BN (learned affine), strided 3x3 conv, residual stacks."""

    def __init__(self, in_chans: int, width: int, num_stacks: int = 4, blocks_per_stack: int = 2) -> None:
        super().__init__()
        self.input_bn = nn.BatchNorm2d(in_chans)
        self.stem = _conv3x3(in_chans, width, TIME_STRIDE)
        blocks: list[nn.Module] = []
        chans = width
        for stack in range(num_stacks):
            out = width * 2**stack
            for i in range(blocks_per_stack):
                blocks.append(PreActBlock(chans, out, downsample=stack > 0 and i == 0))
                chans = out
        self.blocks = nn.Sequential(*blocks)
        self.out_chans = chans

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(self.stem(self.input_bn(x)))


class TwoPathResNet(nn.Module):
    """McDonnell & Gao 2019 two-path ResNet; ``embed`` is the pooled ``head_channels`` features.

    ``forward(x[B, in_chans, F, T]) -> logits[B, num_classes]``;
    ``embed(x) -> [B, head_channels]``: globally averaged output of the first
    1x1 convolution, i.e. the input of the class convolution.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 6,
        width: int = 24,
        head_channels: int | None = None,
        split_at: int = 64,
        num_stacks: int = 4,
        blocks_per_stack: int = 2,
    ) -> None:
        super().__init__()
        paths = [ResNetPath(in_chans, width, num_stacks, blocks_per_stack) for _ in range(2)]
        fused = paths[0].out_chans
        head_channels = 4 * fused if head_channels is None else int(head_channels)
        self.paths = FrequencySplit(paths, split_at=(split_at,))
        self.fuse = nn.Sequential(
            BatchNorm2dNoAffine(fused), nn.ReLU(), nn.Conv2d(fused, head_channels, 1, bias=False)
        )
        self.classifier = nn.Sequential(
            BatchNorm2dNoAffine(head_channels),
            nn.Conv2d(head_channels, num_classes, 1, bias=False),
            BatchNorm2dNoAffine(num_classes),
        )
        self.embed_dim = head_channels

    def features(self, x: Tensor) -> Tensor:
        """The fused map before the class convolution, ``[B, head_channels, F, T']``."""
        return self.fuse(self.paths(x))

    def embed(self, x: Tensor) -> Tensor:
        return self.features(x).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x)).mean(dim=(2, 3))


@register_model
def two_path_resnet(num_classes: int = 10, in_chans: int = 6, **kwargs) -> TwoPathResNet:
    """McDonnell & Gao 2019 (width 24, head 768): 3,247,416 params for 6 channels (paper: ~3.2 M)."""
    kwargs.setdefault("width", 24)
    return TwoPathResNet(num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def two_path_resnet_2020(num_classes: int = 10, in_chans: int = 3, **kwargs) -> TwoPathResNet:
    """Gao & McDonnell 2020 sec. 2.2 (width 28, head 448): 4,311,732 params for 3 channels (paper: 4.31 M)."""
    kwargs.setdefault("width", 28)
    kwargs.setdefault("head_channels", 2 * kwargs["width"] * 2 ** (kwargs.get("num_stacks", 4) - 1))
    return TwoPathResNet(num_classes=num_classes, in_chans=in_chans, **kwargs)
