"""Run separate sub-networks on frequency bands and fuse them by concatenation.

McDonnell & Gao 2019 sec. 3.2: mel bins 0-63 and 64-127 go through two
parallel residual paths whose outputs are concatenated along the frequency
axis ("late fusion").
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from torch import Tensor

from asclab.errors import ConfigError


class FrequencySplit(nn.Module):
    """Split ``[B, C, F, T]`` at the mel bins ``split_at``; path ``i`` gets band ``i``.

    ``split_at=(64,)`` with two paths gives bands ``[0, 64)`` and ``[64, F)``.
    The paths' outputs must agree in every axis but frequency; they are
    concatenated along frequency (axis 2).
    """

    def __init__(self, paths: Sequence[nn.Module], split_at: Sequence[int]) -> None:
        super().__init__()
        split_at = [int(s) for s in split_at]
        if len(paths) != len(split_at) + 1:
            raise ConfigError(f"{len(paths)} paths need {len(paths) - 1} split points, got {split_at}")
        if any(b <= a for a, b in zip([0] + split_at, split_at)):
            raise ConfigError(f"split points must be positive and increasing, got {split_at}")
        self.paths = nn.ModuleList(paths)
        self.split_at = tuple(split_at)

    def forward(self, x: Tensor) -> Tensor:
        n_freq = x.shape[2]
        if n_freq <= self.split_at[-1]:
            raise ConfigError(f"input has {n_freq} mel bins; this network splits at bins {list(self.split_at)}")
        edges = (0, *self.split_at, n_freq)
        bands = [x[:, :, lo:hi] for lo, hi in zip(edges[:-1], edges[1:])]
        return torch.cat([path(band) for path, band in zip(self.paths, bands)], dim=2)

    def extra_repr(self) -> str:
        return f"split_at={list(self.split_at)}"
