"""Waveform batch -> network input: log-mel (+ deltas) (+ HPSS) channels.

Channel order is feature-major, audio-channel-minor: for stereo with deltas
and HPSS ``[L, R, dL, dR, ddL, ddR, hL, hR, pL, pR]`` (mono: ``[x, dx, ddx, h,
p]``). This is the order of McDonnell & Gao 2019's released code, whose
left/right swap augmentation permutes channels as [1, 0, 3, 2, 5, 4].

Each audio channel of each clip is treated as its own clip, as if librosa were
called once per channel (the 2019 code did exactly that): the ``top_db`` floor
and the [0, 1] min-max scaling use that channel's own range.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from asclab.errors import ConfigError, DataError
from asclab.features.config import FeatureConfig
from asclab.features.delta import blocked_ok, deltas, deltas_into
from asclab.features.median_hpss import hpss
from asclab.features.mel import MelSpectrogram, power_to_db


def _stft_frames(cfg: FeatureConfig, n_samples: int) -> int:
    padded = n_samples + (2 * (cfg.n_fft // 2) if cfg.center else 0)
    if padded < cfg.n_fft:
        raise ValueError(f"clip of {n_samples} samples is shorter than n_fft={cfg.n_fft}")
    return 1 + (padded - cfg.n_fft) // cfg.hop_length


def _crop(cfg: FeatureConfig) -> int:
    """Frames lost on each side by the no-padding deltas (delta of delta: 2 x)."""
    return (cfg.delta_width - 1) if cfg.deltas and not cfg.delta_padding else 0


def feature_shape(cfg: FeatureConfig, n_samples: int) -> tuple[int, int, int]:
    """(in_chans, n_mels, frames) that ``FeatureExtractor(cfg)`` gives for ``n_samples``."""
    frames = _stft_frames(cfg, n_samples) - 2 * _crop(cfg)
    if frames < 1:
        raise ValueError(f"clip of {n_samples} samples leaves no frames after the no-padding deltas")
    return cfg.in_chans, cfg.n_mels, frames


def _check(cfg: FeatureConfig) -> None:
    if cfg.channels not in ("mono", "stereo"):
        raise ConfigError(f"features.channels must be 'mono' or 'stereo', got {cfg.channels!r}")
    if cfg.scale not in ("db", "log", "db01", "log01"):
        raise ConfigError(f"features.scale must be db, log, db01 or log01, got {cfg.scale!r}")
    if cfg.deltas and (cfg.delta_width < 3 or cfg.delta_width % 2 != 1):
        raise ConfigError(f"features.delta_width must be an odd integer >= 3, got {cfg.delta_width}")
    if cfg.hpss and not cfg.scale.endswith("01"):
        raise ConfigError(
            f"features.hpss needs a non-negative scale (db01 or log01, Horvath 2021 sec. 2), got {cfg.scale!r}"
        )
    if cfg.pad_mode not in ("constant", "reflect", "replicate", "circular"):
        raise ConfigError(f"features.pad_mode must be constant, reflect, replicate or circular, got {cfg.pad_mode!r}")
    if cfg.mel_norm not in (None, "slaney"):
        raise ConfigError(f"features.mel_norm must be 'slaney' or null, got {cfg.mel_norm!r}")


def minmax01(x: Tensor) -> Tensor:
    """Scale each (..., M, T) slice to [0, 1] by its own min and max (a constant slice gives 0)."""
    lo = x.amin(dim=(-2, -1), keepdim=True)
    span = x.amax(dim=(-2, -1), keepdim=True) - lo
    return (x - lo) / torch.where(span > 0, span, torch.ones_like(span))


class FeatureExtractor(nn.Module):
    """``forward(wave[B, C, N]) -> [B, cfg.in_chans, n_mels, frames]`` (float32,
    on the device of the module's buffers; move with ``.to(device)``).

    ``channels="mono"`` averages the audio channels first (librosa.to_mono);
    ``"stereo"`` needs C == 2 and computes features per channel.
    Scales: "db" = ``librosa.power_to_db(mel, ref=1, amin, top_db)``; "log" =
    ``ln(mel + log_eps)`` (McDonnell & Gao 2019 code, Horvath 2021 sec. 2);
    "db01"/"log01" = the same, then min-max scaled to [0, 1] per clip and channel.
    Deltas (``cfg.deltas``) are taken of the scaled spectrogram:
    ``delta_padding=True``: ``librosa.feature.delta`` order 1 and order 2 (T
    frames); ``False``: McDonnell & Gao 2019 sec. 3.1 / their code: delta = valid
    width-``w`` delta (T - (w-1)), delta-delta = valid delta of that (T - 2(w-1)),
    and the log-mel and delta are cropped to the delta-delta's frames
    (``w = 5``: 431 -> 423). HPSS channels (Horvath 2021 sec. 2) are
    ``librosa.decompose.hpss(scaled, kernel_size=cfg.hpss_kernel)`` of the full
    scaled spectrogram, cropped likewise.
    """

    def __init__(self, cfg: FeatureConfig) -> None:
        super().__init__()
        _check(cfg)
        self.cfg = cfg
        self.mel = MelSpectrogram(
            cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.n_mels, win_length=cfg.win_length, fmin=cfg.fmin,
            fmax=cfg.fmax, htk=cfg.htk, mel_norm=cfg.mel_norm, center=cfg.center, pad_mode=cfg.pad_mode,
            power=cfg.power, fb_formula=cfg.mel_fb,
        )

    @property
    def in_chans(self) -> int:
        return self.cfg.in_chans

    def n_frames(self, n_samples: int) -> int:
        return feature_shape(self.cfg, n_samples)[2]

    def frames_for(self, seconds: float) -> int:
        """Output frames for a clip of ``seconds`` at ``cfg.sample_rate``."""
        return self.n_frames(int(round(seconds * self.cfg.sample_rate)))

    def scale(self, mel: Tensor, inplace: bool = False) -> Tensor:
        """The configured scale of the mel power; ``inplace`` (db and log scales, eager CPU
        tensors without autograd) overwrites ``mel`` instead of allocating the result."""
        cfg = self.cfg
        inplace = inplace and not cfg.scale.endswith("01") and blocked_ok(mel)
        if cfg.scale.startswith("db"):
            x = power_to_db(mel, ref=1.0, amin=cfg.amin, top_db=cfg.top_db, inplace=inplace)
        else:
            x = mel.add_(cfg.log_eps).log_() if inplace else torch.log(mel + cfg.log_eps)
        return minmax01(x) if cfg.scale.endswith("01") else x

    def forward(self, wave: Tensor, mel_power_hook: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """``mel_power_hook`` (training only, e.g. ``augment.mel_power``) transforms the mel
        power [B, A, M, T] before the log/dB scale: the DCASE 2024 baseline (CPJKU
        dcase2024_task1_baseline, run_training.py ``mel_forward``) masks frequency bins of
        the mel power and then takes ``log(x + 1e-5)``, so a masked bin becomes ``log(eps)``."""
        cfg = self.cfg
        wave = torch.as_tensor(wave)
        if wave.ndim != 3:
            raise DataError(f"FeatureExtractor expects a waveform batch [B, C, N], got shape {tuple(wave.shape)}")
        if cfg.channels == "mono":
            wave = wave.mean(dim=1, keepdim=True) if wave.shape[1] > 1 else wave
        elif wave.shape[1] != 2:
            raise DataError(f"features.channels: stereo needs 2 audio channels, got {wave.shape[1]}")
        eager = blocked_ok(wave) and self.mel.window.device.type == "cpu" and mel_power_hook is None
        if eager and cfg.deltas and cfg.delta_padding and not cfg.hpss and not cfg.scale.endswith("01"):
            return self._stacked_with_deltas(wave)
        power = self.mel(wave)  # (B, A, M, T)
        if mel_power_hook is not None:
            power = mel_power_hook(power)
        x = self.scale(power, inplace=eager)  # power is this call's own temporary
        parts = [x]
        crop = _crop(cfg)
        if cfg.deltas and cfg.delta_padding and not cfg.hpss and blocked_ok(x):
            return _stack_with_deltas(x, cfg.delta_width)
        if cfg.deltas:
            w = cfg.delta_width
            if cfg.delta_padding:
                parts += [deltas(x, w, True, order=1), deltas(x, w, True, order=2)]
            else:
                d = deltas(x, w, False)
                parts += [d[..., crop // 2 : d.shape[-1] - crop // 2], deltas(d, w, False)]
        if cfg.hpss:
            parts += list(hpss(x, cfg.hpss_kernel))
        t = x.shape[-1] - 2 * crop
        parts = [p if p.shape[-1] == t else p[..., crop : crop + t] for p in parts]
        return torch.cat(parts, dim=1)

    def _stacked_with_deltas(self, wave: Tensor) -> Tensor:
        """``[x, delta, delta-delta]`` (padded deltas) built in one output tensor: the mel power
        is written into its first channels and scaled there, the deltas beside it (eager CPU:
        no intermediate arrays, no concatenation copy; issue 15)."""
        cfg = self.cfg
        b, a = wave.shape[0], wave.shape[1]
        frames = self.mel.n_frames(wave.shape[-1])
        out = torch.empty((b, 3 * a, cfg.n_mels, frames), dtype=torch.float32)
        x = self.scale(self.mel(wave, out=out[:, :a]), inplace=True)
        deltas_into(x, out[:, a : 2 * a], cfg.delta_width, True, order=1)
        deltas_into(x, out[:, 2 * a :], cfg.delta_width, True, order=2)
        return out


def _stack_with_deltas(x: Tensor, width: int) -> Tensor:
    """``cat([x, delta, delta-delta], dim=1)`` (padded deltas) with the deltas written straight
    into the output (eager CPU: no intermediate arrays, no concatenation copy)."""
    b, a = x.shape[:2]
    out = torch.empty((b, 3 * a, *x.shape[2:]), dtype=x.dtype)
    out[:, :a].copy_(x)
    deltas_into(x, out[:, a : 2 * a], width, True, order=1)
    deltas_into(x, out[:, 2 * a :], width, True, order=2)
    return out


def frames_for(cfg: FeatureConfig, seconds: float) -> int:
    """Frames ``FeatureExtractor(cfg)`` gives for a clip of ``seconds``."""
    return feature_shape(cfg, int(round(seconds * cfg.sample_rate)))[2]


__all__ = ["FeatureExtractor", "feature_shape", "frames_for", "minmax01"]
