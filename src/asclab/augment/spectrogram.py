"""Feature-domain augmentations on Tensor[B, C, F, T] (F frequency bins, T frames).

Random temporal crop (McDonnell & Gao 2019 sec. 3.5), SpecAugment-style time and
frequency masking and random temporal shuffle (Horvath 2021 sec. 3). Random
parameters are drawn per example.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from asclab.augment._base import RandomTransform
from asclab.augment._random import rand, randint
from asclab.errors import ConfigError


def crop_frames(x: Tensor, offsets: Tensor, frames: int) -> Tensor:
    """``x[i, ..., offsets[i]:offsets[i] + frames]`` for every i (last axis is time)."""
    idx = offsets.to(x.device)[:, None] + torch.arange(frames, device=x.device)  # [B, frames]
    idx = idx.view(x.shape[0], *([1] * (x.dim() - 2)), frames).expand(*x.shape[:-1], frames)
    return torch.gather(x, -1, idx)


class RandomTimeCrop(torch.nn.Module):
    """Crop every example to ``frames`` frames at its own uniformly drawn offset.

    McDonnell & Gao 2019 sec. 3.5 train on 400-frame crops of the 461/423-frame
    spectrograms (at inference the full length is used: the caller simply does
    not call this). Raises when the input is shorter than ``frames``.
    """

    def __init__(self, frames: int) -> None:
        super().__init__()
        if int(frames) < 1:
            raise ConfigError(f"time_crop frames must be positive, got {frames!r}")
        self.frames = int(frames)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        t = x.shape[-1]
        if t < self.frames:
            raise ValueError(f"time_crop: input has {t} frames, fewer than the crop's {self.frames}")
        offsets = randint(x.shape[0], t - self.frames + 1, generator, x.device)
        return crop_frames(x, offsets, self.frames)

    def extra_repr(self) -> str:
        return f"frames={self.frames}"


class _AxisMask(RandomTransform):
    ndim = 4
    axis = -1

    def __init__(self, max_fraction: float = 0.1, num_masks: int = 1, fill: float | str = 0.0, p: float = 1.0,
                 max_width: int | None = None, continuous: bool = False) -> None:
        super().__init__(p)
        self.continuous = bool(continuous)
        if max_width is not None and int(max_width) < 0:
            raise ConfigError(f"max_width must be non-negative, got {max_width!r}")
        self.max_width = None if max_width is None else int(max_width)
        if not 0.0 <= float(max_fraction) <= 1.0:
            raise ConfigError(f"max_fraction must lie in [0, 1], got {max_fraction!r}")
        if int(num_masks) < 0:
            raise ConfigError(f"num_masks must be non-negative, got {num_masks!r}")
        if not isinstance(fill, (int, float)) and fill != "mean":
            raise ConfigError(f"fill must be a number or 'mean', got {fill!r}")
        self.max_fraction, self.num_masks, self.fill = float(max_fraction), int(num_masks), fill

    def band_mask(self, b: int, size: int, apply: Tensor, generator: torch.Generator | None, device) -> Tensor:
        """Bool [B, size]: True where masked (union of ``num_masks`` bands per example)."""
        max_w = int(self.max_fraction * size) if self.max_width is None else min(self.max_width, size)
        pos = torch.arange(size, device=device)
        masked = torch.zeros(b, size, dtype=torch.bool, device=device)
        for _ in range(self.num_masks):
            if self.continuous:  # torchaudio's mask_along_axis_iid: real width and start, each truncated
                value = rand(b, generator, device).double() * max_w
                low = rand(b, generator, device).double() * (size - value)
                start, end = low.long(), low.long() + value.long()
            else:
                width = randint(b, max_w + 1, generator, device)
                start = randint(b, size - width + 1, generator, device)
                end = start + width
            masked |= (pos >= start[:, None]) & (pos < end[:, None])
        return masked & apply[:, None]

    def transform(self, x: Tensor, apply: Tensor, generator: torch.Generator | None) -> Tensor:
        b, size = x.shape[0], x.shape[self.axis]
        masked = self.band_mask(b, size, apply, generator, x.device)
        shape = [b, 1, 1, 1]
        shape[self.axis] = size
        masked = masked.view(shape)
        value = x.mean(dim=(1, 2, 3), keepdim=True) if self.fill == "mean" else torch.tensor(float(self.fill), dtype=x.dtype, device=x.device)
        return torch.where(masked, value, x)

    def extra_repr(self) -> str:
        width = f"max_fraction={self.max_fraction}" if self.max_width is None else f"max_width={self.max_width}"
        return f"p={self.p}, {width}, num_masks={self.num_masks}, fill={self.fill!r}"


class TimeMask(_AxisMask):
    """SpecAugment time masking (Park et al. 2019; Horvath 2021 sec. 3).

    Horvath "masked 10 % of the input features along the time ... axis"; read
    as SpecAugment does: ``num_masks`` bands of consecutive frames, each of
    width w ~ U{0, ..., floor(max_fraction T)} at a uniform start, set to
    ``fill`` (a number, or "mean": the example's mean). With one mask at most
    10 % of the frames are covered. ``max_width`` (a count of frames) replaces
    the fraction, like torchaudio's ``time_mask_param`` (e.g. the DCASE 2024
    baseline's frequency mask of up to 48 bins). ``continuous: true`` draws as
    torchaudio's ``mask_along_axis_iid`` (``iid_masks=True``) does: v ~ U[0,
    max_width), s ~ U[0, size - v), bins floor(s) .. floor(s) + floor(v) - 1
    masked, so widths 0 .. max_width - 1 (mean (max_width - 1) / 2), where the
    integer draw gives 0 .. max_width (mean max_width / 2).
    """

    axis = -1


class FreqMask(_AxisMask):
    """SpecAugment frequency masking: as :class:`TimeMask`, along the frequency axis."""

    axis = -2


class SpecMask(nn.Module):
    """SpecAugment time and frequency masking in one entry (Horvath 2021 sec. 3):
    a :class:`TimeMask` with ``time_fraction`` then a :class:`FreqMask` with ``freq_fraction``."""

    def __init__(self, time_fraction: float = 0.1, freq_fraction: float = 0.1, num_masks: int = 1,
                 fill: float | str = 0.0, p: float = 1.0) -> None:
        super().__init__()
        self.time = TimeMask(time_fraction, num_masks, fill, p)
        self.freq = FreqMask(freq_fraction, num_masks, fill, p)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.freq(self.time(x, generator), generator)


class TemporalShuffle(RandomTransform):
    """Random temporal shuffle (Horvath 2021 sec. 3, after Inoue et al. 2018).

    The feature map is cut along time into two parts at T // 2 and, with
    probability ``p`` per example, the parts are swapped: [a | b] -> [b | a].
    """

    ndim = 4

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p)

    def transform(self, x: Tensor, apply: Tensor, generator: torch.Generator | None) -> Tensor:
        half = x.shape[-1] // 2
        swapped = torch.cat([x[..., half:], x[..., :half]], dim=-1)
        return torch.where(apply.view(-1, 1, 1, 1), swapped, x)
