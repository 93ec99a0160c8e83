"""Time-domain augmentations of Horvath et al. 2021, sec. 3 (and their TTA, sec. 4),
and the DCASE 2024 baseline's time roll (:class:`TimeRoll`).

Every transform takes a waveform batch Tensor[B, C, N] (any sample rate: the
parameters are relative, except the roll's seconds, for which the builder passes
the recipe's rate) and is applied to each clip
independently with probability ``p``; the random parameters are drawn per
clip. Time stretching and pitch shifting use a phase vocoder written in torch
(no torchaudio); the vocoder follows the textbook algorithm (Flanagan &
Golden 1966; Laroche & Dolson 1999) that ``librosa.effects.time_stretch`` and
``pitch_shift`` also implement.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from asclab.augment._base import RandomTransform
from asclab.augment._random import bernoulli, choice, pair, randint, uniform
from asclab.errors import ConfigError

VOLUME_CURVES = ("constant", "fade_in", "sine", "cosine")


# --------------------------------------------------------------------------- functional


def phase_vocoder_stretch(x: Tensor, rate: float, n_fft: int = 2048, hop_length: int = 512) -> Tensor:
    """Time-stretch ``x`` [..., N] by ``rate`` (> 1 faster/shorter), keeping its pitch.

    Returns [..., round(N / rate)]. STFT with a Hann window; frames are read at
    fractional positions ``t = 0, rate, 2 rate, ...``, magnitudes interpolated
    linearly between neighbouring frames, and phases accumulated from the
    measured per-bin phase advance (the deviation from the bin's nominal advance
    ``2 pi k hop / n_fft``, wrapped to (-pi, pi]).
    """
    if rate <= 0:
        raise ValueError(f"stretch rate must be positive, got {rate}")
    lead, n = x.shape[:-1], x.shape[-1]
    flat = x.reshape(-1, n)
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    spec = torch.stft(flat, n_fft, hop_length, window=window, center=True, pad_mode="constant",
                      return_complex=True)  # [M, F, T]
    n_bins, n_frames = spec.shape[-2:]
    spec = torch.cat([spec, torch.zeros_like(spec[..., :2])], dim=-1)  # read past the end as silence
    steps = torch.arange(math.ceil(n_frames / rate), dtype=torch.float64, device=x.device) * rate
    steps = steps[steps < n_frames]
    idx = steps.floor().long()
    frac = (steps - idx).to(x.dtype)
    left, right = spec[..., idx], spec[..., idx + 1]
    mag = (1 - frac) * left.abs() + frac * right.abs()
    nominal = torch.linspace(0, math.pi * hop_length, n_bins, dtype=torch.float64, device=x.device)[:, None]
    dev = right.angle().double() - left.angle().double() - nominal
    dev = dev - 2 * math.pi * torch.round(dev / (2 * math.pi))
    advance = torch.remainder(nominal + dev, 2 * math.pi)
    phase = spec[..., :1].angle().double() + torch.cumsum(advance, dim=-1) - advance  # exclusive cumsum
    stretched = torch.polar(mag, phase.to(x.dtype))
    out_len = max(1, int(round(n / rate)))
    y = torch.istft(stretched, n_fft, hop_length, window=window, center=True, length=out_len)
    return y.reshape(*lead, out_len)


def fft_resample(x: Tensor, n_out: int) -> Tensor:
    """Band-limited resampling of ``x`` [..., N] to ``n_out`` samples (FFT zero-padding/truncation)."""
    n = x.shape[-1]
    if n == n_out:
        return x
    spec = torch.fft.rfft(x, dim=-1)
    keep = min(n, n_out) // 2 + 1
    out = torch.zeros(*spec.shape[:-1], n_out // 2 + 1, dtype=spec.dtype, device=x.device)
    out[..., :keep] = spec[..., :keep]
    return torch.fft.irfft(out, n=n_out, dim=-1) * (n_out / n)


def pitch_shift(x: Tensor, semitones: float, n_fft: int = 2048, hop_length: int = 512) -> Tensor:
    """Shift the pitch of ``x`` [..., N] by ``semitones``, keeping its length and duration.

    As librosa does: stretch by ``rate = 2 ** (-semitones / 12)`` with the phase
    vocoder, then resample the N / rate samples back to N, which scales every
    frequency by ``2 ** (semitones / 12)``.
    """
    if semitones == 0:
        return x
    rate = 2.0 ** (-semitones / 12.0)
    return fft_resample(phase_vocoder_stretch(x, rate, n_fft, hop_length), x.shape[-1])


def fix_length(x: Tensor, n: int, offset: int = 0, pad: str = "zeros") -> Tensor:
    """Crop ``x`` [..., L] to ``x[..., offset:offset + n]`` or pad it at the end to ``n``.

    ``pad="zeros"`` appends silence; ``pad="wrap"`` repeats the clip from its start.
    """
    length = x.shape[-1]
    if length >= n:
        return x[..., offset:offset + n]
    if pad == "wrap":
        reps = -(-n // length)
        return x.repeat(*([1] * (x.dim() - 1)), reps)[..., :n]
    return torch.nn.functional.pad(x, (0, n - length))


# --------------------------------------------------------------------------- transforms


class GaussianNoise(RandomTransform):
    """Additive white Gaussian noise (Horvath 2021 sec. 3, "additive noise").

    The paper adds N(mu=0, sigma=1) noise to every recording. On audio scaled to
    [-1, 1] (as loaded here) sigma = 1 is louder than any scene, so by default
    the noise level is set per clip by a signal-to-noise ratio drawn uniformly
    from ``snr_db`` [low, high] dB: noise std = RMS(clip) / 10^(SNR/20), the RMS
    taken over all channels and samples. Deviation from the paper, documented:
    to reproduce it literally set ``sigma: 1.0`` (absolute std; a [low, high]
    pair draws it uniformly), which overrides ``snr_db``.
    """

    ndim = 3

    def __init__(self, p: float = 1.0, snr_db: float | Sequence[float] = (10.0, 40.0),
                 sigma: float | Sequence[float] | None = None) -> None:
        super().__init__(p)
        self.snr_db = pair(snr_db, "snr_db")
        self.sigma = None if sigma is None else pair(sigma, "sigma")
        if self.sigma is not None and self.sigma[0] < 0:
            raise ConfigError(f"sigma must be non-negative, got {sigma!r}")

    def transform(self, x: Tensor, apply: Tensor, generator: torch.Generator | None) -> Tensor:
        b = x.shape[0]
        if self.sigma is not None:
            std = uniform(b, *self.sigma, generator, x.device)
        else:
            snr = uniform(b, *self.snr_db, generator, x.device)
            rms = x.pow(2).mean(dim=(1, 2)).sqrt()
            std = rms / 10.0 ** (snr / 20.0)
        dev = generator.device if generator is not None else x.device
        noise = torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype).to(x.device)
        std = torch.where(apply, std, torch.zeros_like(std)).to(x.dtype)
        return x + std[:, None, None] * noise


class PitchShift(RandomTransform):
    """Random pitch shift (Horvath 2021 sec. 3): uniform in [-1/4, +1/4] octave.

    ``octaves`` is the [low, high] range (1 octave = 12 semitones); the shift is
    drawn per clip and applied to all its channels. Length is kept.
    """

    ndim = 3

    def __init__(self, p: float = 1.0, octaves: float | Sequence[float] = (-0.25, 0.25),
                 n_fft: int = 2048, hop_length: int = 512) -> None:
        super().__init__(p)
        self.octaves = pair(octaves, "octaves")
        self.n_fft, self.hop_length = int(n_fft), int(hop_length)

    def transform(self, x: Tensor, apply: Tensor, generator: torch.Generator | None) -> Tensor:
        shifts = uniform(x.shape[0], *self.octaves, generator) * 12.0
        out = x.clone()
        for i in torch.nonzero(apply.cpu()).flatten().tolist():
            out[i] = pitch_shift(x[i], float(shifts[i]), self.n_fft, self.hop_length)
        return out


class TimeStretch(RandomTransform):
    """Random time stretch (Horvath 2021 sec. 3): rate uniform in [0.5, 2].

    ``rate`` > 1 speeds the clip up. The paper draws the coefficient uniformly
    in [0.5, 2] (so speed-ups are drawn twice as often as slow-downs);
    ``log_uniform: true`` draws log2(rate) uniformly instead. The stretched clip
    (N / rate samples) is brought back to N: a longer one is cropped at a random
    offset (``crop: random``) or from its start (``crop: start``); a shorter one
    is padded at the end with silence (``pad: zeros``) or by repeating it
    (``pad: wrap``). The paper does not say how; librosa would keep the new length.
    """

    ndim = 3

    def __init__(self, p: float = 1.0, rate: float | Sequence[float] = (0.5, 2.0), log_uniform: bool = False,
                 crop: str = "random", pad: str = "zeros", n_fft: int = 2048, hop_length: int = 512) -> None:
        super().__init__(p)
        self.rate = pair(rate, "rate")
        if self.rate[0] <= 0:
            raise ConfigError(f"time_stretch rate must be positive, got {rate!r}")
        if crop not in ("random", "start"):
            raise ConfigError(f"time_stretch crop must be 'random' or 'start', got {crop!r}")
        if pad not in ("zeros", "wrap"):
            raise ConfigError(f"time_stretch pad must be 'zeros' or 'wrap', got {pad!r}")
        self.log_uniform, self.crop, self.pad = bool(log_uniform), crop, pad
        self.n_fft, self.hop_length = int(n_fft), int(hop_length)

    def transform(self, x: Tensor, apply: Tensor, generator: torch.Generator | None) -> Tensor:
        b, n = x.shape[0], x.shape[-1]
        if self.log_uniform:
            rates = 2.0 ** uniform(b, math.log2(self.rate[0]), math.log2(self.rate[1]), generator)
        else:
            rates = uniform(b, *self.rate, generator)
        out = x.clone()
        for i in torch.nonzero(apply.cpu()).flatten().tolist():
            y = phase_vocoder_stretch(x[i], float(rates[i]), self.n_fft, self.hop_length)
            slack = max(0, y.shape[-1] - n)
            offset = int(randint(1, slack + 1, generator)) if self.crop == "random" else 0
            out[i] = fix_length(y, n, offset, self.pad)
        return out


def volume_curve(name: str, n: int, device=None, dtype=torch.float32) -> Tensor:
    """The shape c[n] in [-1, 1] that scales the drawn gain G (dB) along the clip.

    With tau_n = n / (N - 1) (0 at the first sample, 1 at the last) and
    phi_n = 2 pi n / N (one full period over the clip):
      constant: c = 1                  -> G dB everywhere;
      fade_in:  c = tau                -> 0 dB at the first sample rising linearly (in dB) to G at the last;
      sine:     c = sin(phi)           -> 0 dB at the start, G at N/4, 0 at N/2, -G at 3N/4;
      cosine:   c = cos(phi)           -> G at the start, -G at N/2, back towards G at the end.
    """
    if name == "constant":
        return torch.ones(n, device=device, dtype=dtype)
    pos = torch.arange(n, device=device, dtype=torch.float64)
    if name == "fade_in":
        c = pos / max(n - 1, 1)
    elif name == "sine":
        c = torch.sin(2 * math.pi * pos / n)
    elif name == "cosine":
        c = torch.cos(2 * math.pi * pos / n)
    else:
        raise ConfigError(f"unknown volume curve {name!r}; known: {', '.join(VOLUME_CURVES)}")
    return c.to(dtype)


class VolumeChange(RandomTransform):
    """Random volume change (Horvath 2021 sec. 3): G ~ U[-10, +10] dB along a random curve.

    Per clip, G is drawn from ``gain_db`` and a curve uniformly from ``curves``
    (see :func:`volume_curve` for their exact definitions); sample n is
    multiplied by 10^(G c_n / 20), the same on every channel.
    """

    ndim = 3

    def __init__(self, p: float = 1.0, gain_db: float | Sequence[float] = (-10.0, 10.0),
                 curves: Sequence[str] = VOLUME_CURVES) -> None:
        super().__init__(p)
        self.gain_db = pair(gain_db, "gain_db")
        self.curves = tuple(curves)
        if not self.curves:
            raise ConfigError("volume: curves must name at least one curve")
        for c in self.curves:
            if c not in VOLUME_CURVES:
                raise ConfigError(f"unknown volume curve {c!r}; known: {', '.join(VOLUME_CURVES)}")

    def transform(self, x: Tensor, apply: Tensor, generator: torch.Generator | None) -> Tensor:
        b, n = x.shape[0], x.shape[-1]
        gains = uniform(b, *self.gain_db, generator, x.device)
        which = choice(b, len(self.curves), generator, x.device)
        shapes = torch.stack([volume_curve(c, n, x.device, x.dtype) for c in self.curves])  # [K, N]
        db = gains[:, None].to(x.dtype) * shapes[which]  # [B, N]
        db = torch.where(apply[:, None], db, torch.zeros_like(db))
        return x * (10.0 ** (db / 20.0))[:, None, :]


def roll_clips(x: Tensor, shifts: Tensor) -> Tensor:
    """Circularly shift clip i of ``x`` [B, C, N] by ``shifts[i]`` samples (``torch.roll`` per clip:
    ``y[..., n] = x[..., (n - s) mod N]``), all channels alike."""
    n = x.shape[-1]
    idx = torch.remainder(torch.arange(n, device=x.device)[None, :] - shifts.to(x.device)[:, None], n)
    return torch.gather(x, -1, idx[:, None, :].expand_as(x))


class TimeRoll(RandomTransform):
    """Circular time shift ("roll") of the waveform by up to +-``max_seconds``.

    The DCASE 2024 task 1 baseline (CPJKU dcase2024_task1_baseline,
    dataset/dcase24.py ``RollDataset``; ``--roll_sec 0.1`` in run_training.py)
    rolls every training clip by an integer shift drawn uniformly from
    {-S, ..., S}, S = max_seconds x sample rate (there 4,410 samples at the
    original 44.1 kHz, before resampling to 32 kHz; here at the recipe's rate,
    the same 0.1 s). Samples pushed off one end re-enter at the other.
    """

    ndim = 3

    def __init__(self, sample_rate: int, max_seconds: float = 0.1, p: float = 1.0) -> None:
        super().__init__(p)
        if float(max_seconds) < 0:
            raise ConfigError(f"roll max_seconds must be non-negative, got {max_seconds!r}")
        self.sample_rate, self.max_seconds = int(sample_rate), float(max_seconds)
        self.max_shift = int(round(self.max_seconds * self.sample_rate))

    def transform(self, x: Tensor, apply: Tensor, generator: torch.Generator | None) -> Tensor:
        shifts = randint(x.shape[0], 2 * self.max_shift + 1, generator, x.device) - self.max_shift
        return roll_clips(x, torch.where(apply, shifts, torch.zeros_like(shifts)))

    def extra_repr(self) -> str:
        return f"p={self.p}, max_seconds={self.max_seconds}, max_shift={self.max_shift}"


class ChannelSwap(RandomTransform):
    """Swap the left and right channels of stereo clips (Tensor[B, 2, N] or [B, 2, F, T])."""

    ndim = 3

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if x.dim() not in (3, 4) or x.shape[1] != 2:
            raise ConfigError(f"channel_swap needs stereo input [B, 2, ...], got shape {tuple(x.shape)}")
        return self.transform(x, bernoulli(x.shape[0], self.p, generator, x.device), generator)

    def transform(self, x: Tensor, apply: Tensor, generator: torch.Generator | None) -> Tensor:
        sel = apply.view(-1, *([1] * (x.dim() - 1)))
        return torch.where(sel, x.flip(1), x)
