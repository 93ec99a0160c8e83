"""Band-limited resampling with a Hann-windowed sinc kernel, in torch.

The DCASE 2024/2025 baselines (CPJKU) and the packages built on them resample
with torchaudio's ``functional.resample`` (``sinc_interp_hann``,
``lowpass_filter_width`` 6, ``rolloff`` 0.99). torchaudio does not import
everywhere, so this is a re-implementation of that method from its published
definition: the rates are reduced by their gcd to ``orig``/``new``; the
cut-off is ``rolloff * min(orig, new)``; each of the ``new`` output phases has
a kernel of ``2 * width + orig`` taps, ``width = ceil(lowpass_filter_width *
orig / cutoff)``, ``sinc(pi * t) * cos(pi * t / (2 * lowpass_filter_width))**2``
with ``t`` the tap offset in cut-off periods clamped to +-lowpass_filter_width;
the signal is padded by ``width`` (left) and ``width + orig`` (right) and
convolved with stride ``orig``; the output keeps ``ceil(new * n / orig)``
samples. ``kernel_dtype=None`` builds the kernel in float64 then casts to
float32 (torchaudio's ``transforms.Resample``); ``torch.float32`` builds it in
float32 (``functional.resample``, which the inference packages call).
"""
from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np

from asclab.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import Tensor


def sinc_kernel(orig_freq: int, new_freq: int, *, lowpass_filter_width: int = 6, rolloff: float = 0.99,
                kernel_dtype: "torch.dtype | str | None" = "float32") -> tuple[Tensor, int]:
    """``(kernel[new, 1, 2 * width + orig], width)`` for the gcd-reduced rates, float32
    (``kernel_dtype``: ``"float32"``/``torch.float32``, or None for a float64-built kernel)."""
    import torch  # here, not at the top: asclab.data.audio imports this module and must load without torch

    if kernel_dtype == "float32":
        kernel_dtype = torch.float32
    if lowpass_filter_width <= 0 or not 0 < rolloff <= 1:
        raise ConfigError(f"sinc resampling needs lowpass_filter_width > 0 and 0 < rolloff <= 1, "
                          f"got {lowpass_filter_width} and {rolloff}")
    gcd = math.gcd(int(orig_freq), int(new_freq))
    orig, new = int(orig_freq) // gcd, int(new_freq) // gcd
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base)
    dtype = torch.float64 if kernel_dtype is None else kernel_dtype
    idx = torch.arange(-width, width + orig, dtype=dtype)[None, None] / orig
    # the phase offsets are float32 even for a float64 kernel, as in torchaudio's transforms.Resample
    t = torch.arange(0, -new, -1, dtype=kernel_dtype or torch.float32)[:, None, None] / new + idx
    t *= base
    t = t.clamp_(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t *= math.pi
    kernel = torch.where(t == 0, torch.tensor(1.0, dtype=dtype), t.sin() / t)
    kernel *= window * (base / orig)
    return kernel.to(torch.float32), width


@functools.lru_cache(maxsize=16)
def _cached_kernel(orig: int, new: int, width: int, rolloff: float, kernel_dtype: str) -> tuple[Tensor, int]:
    dtype = None if kernel_dtype == "float64" else "float32"
    return sinc_kernel(orig, new, lowpass_filter_width=width, rolloff=rolloff, kernel_dtype=dtype)


def sinc_resample(wave: Tensor, orig_freq: int, new_freq: int, *, lowpass_filter_width: int = 6,
                  rolloff: float = 0.99, kernel_dtype: str = "float32") -> Tensor:
    """Resample the last axis of ``wave`` (float32) from ``orig_freq`` to ``new_freq`` Hz."""
    import torch  # here, not at the top: asclab.data.audio imports this module and must load without torch

    if int(orig_freq) == int(new_freq):
        return wave
    gcd = math.gcd(int(orig_freq), int(new_freq))
    orig, new = int(orig_freq) // gcd, int(new_freq) // gcd
    kernel, width = _cached_kernel(int(orig_freq), int(new_freq), int(lowpass_filter_width), float(rolloff),
                                   kernel_dtype)
    lead, n = wave.shape[:-1], wave.shape[-1]
    flat = wave.reshape(-1, n).to(torch.float32)
    padded = torch.nn.functional.pad(flat, (width, width + orig))
    out = torch.nn.functional.conv1d(padded[:, None], kernel.to(flat.device), stride=orig)
    out = out.transpose(1, 2).reshape(flat.shape[0], -1)[..., : math.ceil(new * n / orig)]
    return out.reshape(*lead, out.shape[-1])


def sinc_resample_np(wave: np.ndarray, orig_freq: int, new_freq: int, **kwargs) -> np.ndarray:
    """``sinc_resample`` for a numpy array ``[..., n]`` (float32 out). Without torch (the torch-free
    ONNX predictor) the same kernel and strided convolution run in numpy (``_sinc_resample_numpy``),
    equal to the torch result within float32 rounding (about 1e-6)."""
    try:
        import torch  # optional here: the torch-free ONNX predictor resamples through this function
    except ImportError:
        return _sinc_resample_numpy(wave, orig_freq, new_freq, **kwargs)
    with torch.no_grad():
        return sinc_resample(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), orig_freq, new_freq,
                             **kwargs).numpy()


def _numpy_kernel(orig: int, new: int, lowpass_filter_width: int, rolloff: float,
                  kernel_dtype: str) -> tuple[np.ndarray, int]:
    """``sinc_kernel`` in numpy, operation for operation, for gcd-reduced rates: ``[new, taps]``."""
    if lowpass_filter_width <= 0 or not 0 < rolloff <= 1:
        raise ConfigError(f"sinc resampling needs lowpass_filter_width > 0 and 0 < rolloff <= 1, "
                          f"got {lowpass_filter_width} and {rolloff}")
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base)
    dtype = np.float64 if kernel_dtype == "float64" else np.float32
    idx = np.arange(-width, width + orig, dtype=dtype)[None] / dtype(orig)
    t = (np.arange(0, -new, -1, dtype=np.float32)[:, None] / np.float32(new) + idx).astype(dtype)
    t = np.clip(t * dtype(base), -lowpass_filter_width, lowpass_filter_width)
    window = np.cos(t * dtype(math.pi / lowpass_filter_width / 2)) ** 2
    t = t * dtype(math.pi)
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel = np.where(t == 0, dtype(1.0), np.sin(t) / t)
    kernel = kernel * (window * dtype(base / orig))
    return kernel.astype(np.float32), width


def _sinc_resample_numpy(wave: np.ndarray, orig_freq: int, new_freq: int, *, lowpass_filter_width: int = 6,
                         rolloff: float = 0.99, kernel_dtype: str = "float32") -> np.ndarray:
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    if int(orig_freq) == int(new_freq):
        return wave
    gcd = math.gcd(int(orig_freq), int(new_freq))
    orig, new = int(orig_freq) // gcd, int(new_freq) // gcd
    kernel, width = _numpy_kernel(orig, new, int(lowpass_filter_width), float(rolloff), kernel_dtype)
    lead, n = wave.shape[:-1], wave.shape[-1]
    flat = np.pad(wave.reshape(-1, n), ((0, 0), (width, width + orig)))
    frames = np.lib.stride_tricks.sliding_window_view(flat, kernel.shape[-1], axis=-1)[:, ::orig]
    out = (frames @ kernel.T).reshape(flat.shape[0], -1)[..., : math.ceil(new * n / orig)]
    return np.ascontiguousarray(out.reshape(*lead, out.shape[-1]), dtype=np.float32)
