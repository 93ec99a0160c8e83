"""Normalisation layers: BatchNorm without learned affine, and SubSpectral Norm.

Tensors are laid out ``[B, C, F, T]`` (channels, mel bins, frames).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from asclab.errors import ConfigError


class BatchNorm2dNoAffine(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` with no learned scale and offset.

    McDonnell & Gao 2019 sec. 3.4-3.5 (after McDonnell 2018): every BN except
    the network's very first one normalises only, which regularises. A class of
    its own so that code can find these layers (e.g. to skip them in reports).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum, affine=False)


class SubSpectralNorm(nn.Module):
    """SubSpectral Normalisation (QTI 2020 sec. 2.2).

    The frequency axis is cut into ``groups`` equal sub-bands and each
    (channel, sub-band) pair is batch-normalised with its own statistics, i.e.
    BatchNorm over ``C * groups`` virtual channels. The affine transform is one
    per channel shared by all sub-bands when ``shared_affine`` (the paper's
    choice), or one per (channel, sub-band) otherwise. With ``groups=1`` the
    layer computes exactly what ``nn.BatchNorm2d`` computes, running statistics
    included. Running statistics follow BatchNorm's rules (``momentum=None``:
    cumulative average).
    """

    def __init__(
        self,
        num_features: int,
        groups: int = 2,
        *,
        affine: bool = True,
        shared_affine: bool = True,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        if groups < 1:
            raise ConfigError(f"SubSpectralNorm needs at least one sub-band, got groups={groups}")
        self.num_features, self.groups = int(num_features), int(groups)
        self.affine, self.shared_affine = bool(affine), bool(shared_affine)
        self.eps, self.momentum, self.track_running_stats = float(eps), momentum, bool(track_running_stats)
        n_stats = self.num_features * self.groups
        if self.affine:
            n_affine = self.num_features if self.shared_affine else n_stats
            self.weight = nn.Parameter(torch.ones(n_affine))
            self.bias = nn.Parameter(torch.zeros(n_affine))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", torch.zeros(n_stats))
            self.register_buffer("running_var", torch.ones(n_stats))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def _affine(self) -> tuple[Tensor | None, Tensor | None]:
        if not self.affine:
            return None, None
        if self.shared_affine and self.groups > 1:
            # virtual channel c * groups + s belongs to channel c
            return self.weight.repeat_interleave(self.groups), self.bias.repeat_interleave(self.groups)
        return self.weight, self.bias

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ConfigError(f"SubSpectralNorm expects [B, C, F, T], got shape {tuple(x.shape)}")
        b, c, f, t = x.shape
        if c != self.num_features or f % self.groups:
            raise ConfigError(
                f"SubSpectralNorm({self.num_features}, groups={self.groups}) cannot take shape {tuple(x.shape)}: "
                f"needs {self.num_features} channels and a frequency size divisible by {self.groups}"
            )
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        weight, bias = self._affine()
        y = F.batch_norm(
            x.reshape(b, c * self.groups, f // self.groups, t),
            self.running_mean if track else None,
            self.running_var if track else None,
            weight,
            bias,
            use_batch_stats,
            momentum,
            self.eps,
        )
        return y.reshape(b, c, f, t)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, groups={self.groups}, affine={self.affine}, "
                f"shared_affine={self.shared_affine}, eps={self.eps}, momentum={self.momentum}")
