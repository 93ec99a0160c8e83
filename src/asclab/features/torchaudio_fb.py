"""The mel filterbank as torchaudio's ``functional.melscale_fbanks`` defines it.

The CPJKU DCASE baselines and the inference packages built on them take their
log-mel input from ``torchaudio.transforms.MelSpectrogram`` (HTK scale, no
normalisation). Its triangles are computed in float32 on the linear grid
``linspace(0, sr // 2, n_freqs)``, which differs from librosa's float64
filterbank by up to ~1.6e-5; ``features.mel_fb: torchaudio`` selects this one
so an imported model sees the filterbank it was trained with (for the Karasin_JKU
2025 checkpoint it equals the stored ``mel.1.mel_scale.fb`` bit for bit).
"""
from __future__ import annotations

import math

import numpy as np
import torch


def _hz_to_mel(f: float, htk: bool) -> float:
    if htk:
        return 2595.0 * math.log10(1.0 + f / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    if f < min_log_hz:
        return f / f_sp
    return min_log_hz / f_sp + math.log(f / min_log_hz) / (math.log(6.4) / 27.0)


def _mel_to_hz(m: torch.Tensor, htk: bool) -> torch.Tensor:
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    hz = f_sp * m
    return torch.where(m >= min_log_mel, min_log_hz * torch.exp(logstep * (m - min_log_mel)), hz)


def torchaudio_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, *, fmin: float = 0.0,
                              fmax: float | None = None, htk: bool = True, norm: str | None = None) -> np.ndarray:
    """Filterbank ``(n_mels, 1 + n_fft // 2)`` float32, torchaudio's construction (transposed)."""
    n_freqs = n_fft // 2 + 1
    fmax = float(sample_rate // 2) if fmax is None else float(fmax)
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    m_pts = torch.linspace(_hz_to_mel(fmin, htk), _hz_to_mel(fmax, htk), n_mels + 2)
    f_pts = _mel_to_hz(m_pts, htk)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)
    down = (-1.0 * slopes[:, :-2]) / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = torch.max(torch.zeros(1), torch.min(down, up))
    if norm == "slaney":
        fb *= (2.0 / (f_pts[2:n_mels + 2] - f_pts[:n_mels])).unsqueeze(0)
    return fb.T.contiguous().numpy()
