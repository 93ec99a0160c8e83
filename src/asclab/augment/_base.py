"""Shared plumbing: per-sample random application and sequential composition."""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn
from torch import Tensor

from asclab.augment._random import bernoulli, probability


class RandomTransform(nn.Module):
    """A transform applied to each batch element independently with probability ``p``.

    Subclasses set ``ndim`` (3 for waveforms [B, C, N], 4 for features
    [B, C, F, T]) and implement ``transform(x, apply, generator)`` where
    ``apply`` is a bool Tensor[B]. Transforms act whenever called, in train and
    eval mode alike: the trainer calls them while training, and test-time
    augmentation (Horvath 2021 sec. 4) calls the waveform ones at inference.
    """

    ndim: int = 0

    def __init__(self, p: float = 1.0) -> None:
        super().__init__()
        self.p = probability(p)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if x.dim() != self.ndim:
            raise ValueError(f"{type(self).__name__} expects a {self.ndim}-d batch, got shape {tuple(x.shape)}")
        apply = bernoulli(x.shape[0], self.p, generator, x.device)
        if not bool(apply.any()):
            return x
        return self.transform(x, apply, generator)

    def transform(self, x: Tensor, apply: Tensor, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Compose(nn.Module):
    """Apply transforms one after the other, passing the same generator to each."""

    def __init__(self, transforms: Iterable[nn.Module] = ()) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: Tensor, generator: torch.Generator | None = None,
                devices: list[str | None] | None = None) -> Tensor:
        """``devices``: the clips' recording device names, for transforms that select by
        device (``uses_devices``, e.g. the device impulse responses); the others ignore it."""
        for t in self.transforms:
            x = t(x, generator=generator, devices=devices) if getattr(t, "uses_devices", False) else t(x, generator=generator)
        return x

    def __len__(self) -> int:
        return len(self.transforms)
