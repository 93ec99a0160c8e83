"""Median-filter harmonic/percussive separation of a (batch of) spectrograms.

Horvath 2021 sec. 2 appends the harmonic and percussive parts of the [0, 1]
scaled log-mel spectrogram as two extra input channels, computed with
``librosa.decompose.hpss``. ``hpss`` returns the same two arrays: a median
filter of ``kernel_size`` frames along time (harmonic) and bins along
frequency (percussive), both with scipy's "reflect" boundary (edge sample
repeated), then librosa's soft masks.

Speed: librosa calls ``scipy.ndimage.median_filter`` on the 2-D array, which
takes the generic N-d rank-filter path (about 24 ms per 128 x 431 filter). On
CPU this module lays all rows, each padded with its own reflected edges, end
to end in one 1-D array and runs scipy's fast 1-D median filter over it once;
the windows never straddle two rows, so the result is identical and about 10x
faster. On other devices a torch ``unfold`` + ``median`` is used.
"""
from __future__ import annotations

import numpy as np
import scipy.ndimage
import torch
from torch import Tensor


def _reflect_index(n: int, before: int, after: int) -> np.ndarray:
    """Indices of scipy's "reflect" extension (d c b a | a b c d | d c b a)."""
    return np.pad(np.arange(n), (before, after), mode="symmetric")


def median_filter_last(x: Tensor, size: int, backend: str | None = None) -> Tensor:
    """Median over a window of ``size`` along the last axis, scipy.ndimage
    ``median_filter(..., mode="reflect")`` alignment (window starts
    ``size // 2`` before the centre). ``backend``: "scipy" (CPU), "torch", or
    None = scipy on CPU, torch elsewhere."""
    backend = backend or ("scipy" if x.device.type == "cpu" else "torch")
    if backend not in ("scipy", "torch"):
        raise ValueError(f"backend must be 'scipy' or 'torch', got {backend!r}")
    if size < 1:
        raise ValueError(f"median kernel size must be >= 1, got {size}")
    n = x.shape[-1]
    before, after = size // 2, size - 1 - size // 2
    index = _reflect_index(n, before, after)
    if backend == "scipy":
        rows = x.detach().cpu().reshape(-1, n).numpy()[:, index]  # (R, n + size - 1)
        flat = scipy.ndimage.median_filter(np.ascontiguousarray(rows).ravel(), size=size, mode="reflect")
        out = flat.reshape(rows.shape)[:, before : before + n]
        return torch.from_numpy(np.ascontiguousarray(out)).reshape(x.shape).to(x.device)
    padded = x.index_select(-1, torch.as_tensor(index, device=x.device))
    # kthvalue gives scipy's rank size // 2 (the upper median for even sizes)
    return padded.unfold(-1, size, 1).kthvalue(size // 2 + 1, dim=-1).values


def _softmask(x: Tensor, ref: Tensor, power: float, split_zeros: bool) -> Tensor:
    """``librosa.util.softmask``: x^p / (x^p + ref^p), computed relative to max(x, ref)."""
    z = torch.maximum(x, ref)
    bad = z < torch.finfo(z.dtype).tiny
    z = torch.where(bad, torch.ones_like(z), z)
    mask = (x / z) ** power
    ref_mask = (ref / z) ** power
    mask = mask / torch.where(bad, torch.ones_like(mask), mask + ref_mask)
    return torch.where(bad, torch.full_like(mask, 0.5 if split_zeros else 0.0), mask)


def hpss(
    spec, kernel_size: int | tuple[int, int] = 31, power: float = 2.0, margin: float | tuple[float, float] = 1.0
) -> tuple[Tensor, Tensor]:
    """Harmonic and percussive parts of a non-negative (..., F, T) spectrogram,
    equal to ``librosa.decompose.hpss(spec, kernel_size=..., power=...,
    margin=...)`` (float32 tensors on the input's device)."""
    s = torch.as_tensor(spec)
    s = s.float() if not s.is_floating_point() else s
    if s.ndim < 2:
        raise ValueError(f"hpss needs a (..., freq, time) spectrogram, got shape {tuple(s.shape)}")
    if bool((s < 0).any()):
        raise ValueError("hpss needs a non-negative spectrogram (scale it to [0, 1] first)")
    k_harm, k_perc = kernel_size if isinstance(kernel_size, (tuple, list)) else (kernel_size, kernel_size)
    m_harm, m_perc = margin if isinstance(margin, (tuple, list)) else (margin, margin)
    if m_harm < 1 or m_perc < 1:
        raise ValueError("hpss margins must be >= 1")
    if power <= 0:
        raise ValueError("hpss power must be positive")
    harm = median_filter_last(s, int(k_harm))
    perc = median_filter_last(s.transpose(-1, -2), int(k_perc)).transpose(-1, -2)
    split = m_harm == 1 and m_perc == 1
    mask_harm = _softmask(harm, perc * m_harm, power, split)
    mask_perc = _softmask(perc, harm * m_perc, power, split)
    return s * mask_harm, s * mask_perc
