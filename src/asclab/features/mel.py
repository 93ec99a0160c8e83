"""Batched log-mel spectrograms in torch, equal to librosa's within float32 rounding.

McDonnell & Gao 2019 sec. 3.1 and Horvath 2021 sec. 2 computed their inputs with
``librosa.feature.melspectrogram`` followed by ``librosa.power_to_db`` (or a
natural log). This module computes the same numbers for a whole batch:

* STFT: periodic Hann window (zero-padded to ``n_fft`` when ``win_length`` is
  shorter, as librosa does), ``center=True`` pads ``n_fft // 2`` samples with
  ``pad_mode`` ("constant", librosa >= 0.10's default), then one ``rfft`` per
  frame in float32 (librosa: float64; see ``MelSpectrogram`` for the
  difference and the ``fft_float64`` option).
* Mel projection: the filterbank is ``librosa.filters.mel`` (HTK or Slaney
  scale, ``norm="slaney"`` or None). A triangular filterbank is about 98 % zeros,
  so on CPU the filters are split into a few contiguous groups and each group
  multiplies only the band of FFT bins its filters touch (``_band_groups``),
  clip by clip so the STFT stays in cache; fewer, wider groups for short clips,
  where each matmul call's fixed cost weighs more (``_call_cost``); on other
  devices, or when autograd is needed, one dense matmul over the batch is used.
* ``power_to_db`` with librosa's ``ref``, ``amin`` and ``top_db``, where the
  ``top_db`` floor is relative to each signal's own maximum (as if librosa were
  called once per 1-D signal).
"""
from __future__ import annotations

import functools
import math

import librosa
import numpy as np
import torch
from torch import Tensor, nn

from asclab.features.delta import blocked_ok
from asclab.features.torchaudio_fb import torchaudio_mel_filterbank

# A matmul call costs about as much as this many (filter x FFT-bin) products per
# frame; the grouping trades wasted zeros against the number of calls.
_GROUP_CALL_COST = 320
# ... measured as a fixed cost of about this many products per call, spread over the
# clip's frames (issue 15: 1-s clips of 68 frames want ~4096, 10-s clips ~320).
_CALL_PRODUCTS = 220_000


def _call_cost(n_frames: int) -> int:
    """The grouping's per-call cost for a clip of ``n_frames`` (a power of two, 256..8192)."""
    ideal = _CALL_PRODUCTS / max(1, n_frames)
    return int(2 ** min(13, max(8, round(math.log2(ideal)))))


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    *,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = True,
    norm: str | None = "slaney",
) -> np.ndarray:
    """librosa's mel filterbank, shape (n_mels, 1 + n_fft // 2), float32."""
    return librosa.filters.mel(
        sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm, dtype=np.float32
    )


def _band_groups(fb: np.ndarray, call_cost: int = _GROUP_CALL_COST) -> list[tuple[int, int, int, int]]:
    """Split filters into contiguous groups ``(m0, m1, k0, k1)`` minimising
    ``sum((m1 - m0) * (k1 - k0)) + call_cost * n_groups`` (dynamic programme);
    ``[k0, k1)`` is the band of bins any filter of the group touches (empty
    groups get ``k0 == k1``)."""
    n_mels = fb.shape[0]
    nz = fb != 0
    lo = np.where(nz.any(1), nz.argmax(1), fb.shape[1])
    hi = np.where(nz.any(1), fb.shape[1] - nz[:, ::-1].argmax(1), 0)
    best = [0.0] + [math.inf] * n_mels
    prev = [0] * (n_mels + 1)
    for j in range(1, n_mels + 1):
        k0, k1 = fb.shape[1], 0
        for i in range(j - 1, -1, -1):
            k0, k1 = min(k0, lo[i]), max(k1, hi[i])
            cost = best[i] + (j - i) * max(k1 - k0, 0) + call_cost
            if cost < best[j]:
                best[j], prev[j] = cost, i
    groups = []
    j = n_mels
    while j > 0:
        i = prev[j]
        k0, k1 = int(lo[i:j].min()), int(hi[i:j].max())
        groups.append((i, j, k0, max(k0, k1)))
        j = i
    return groups[::-1]


class MelSpectrogram(nn.Module):
    """Mel power spectrogram: waveform (..., N) -> (..., n_mels, frames), float32.

    Equal to ``librosa.feature.melspectrogram`` with the same arguments (window
    "hann"). librosa's FFT runs in float64; the float32 FFT used here adds
    rounding noise near float32 epsilon times the frame's energy, which shows
    (up to ~1.5e-3 dB) only in bands 60-80 dB below the clip maximum and ~100 dB
    below their own frame's peak. ``fft_float64=True`` removes it at about
    twice the STFT cost. The window and filterbank are non-persistent buffers, so
    ``.to(device)`` moves them and state dicts stay free of them.
    """

    def __init__(
        self,
        sample_rate: int,
        n_fft: int = 2048,
        hop_length: int = 1024,
        n_mels: int = 128,
        *,
        win_length: int | None = None,
        fmin: float = 0.0,
        fmax: float | None = None,
        htk: bool = True,
        mel_norm: str | None = "slaney",
        center: bool = True,
        pad_mode: str = "constant",
        power: float = 2.0,
        fft_float64: bool = False,
        fb_formula: str = "librosa",
    ) -> None:
        super().__init__()
        win_length = n_fft if win_length is None else int(win_length)
        if not 0 < win_length <= n_fft:
            raise ValueError(f"win_length must be in 1..n_fft={n_fft}, got {win_length}")
        if power <= 0:
            raise ValueError(f"power must be positive, got {power}")
        self.sample_rate, self.n_fft = int(sample_rate), int(n_fft)
        self.hop_length, self.n_mels = int(hop_length), int(n_mels)
        self.center, self.pad_mode, self.power = bool(center), pad_mode, float(power)
        self.fft_dtype = torch.float64 if fft_float64 else torch.float32
        window = torch.zeros(n_fft)
        left = (n_fft - win_length) // 2
        window[left : left + win_length] = torch.hann_window(win_length, periodic=True, dtype=torch.float64)
        self.register_buffer("window", window.to(self.fft_dtype), persistent=False)
        if fb_formula == "torchaudio":  # the CPJKU baselines' filterbank (asclab.features.torchaudio_fb)
            fb = torchaudio_mel_filterbank(sample_rate, n_fft, n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=mel_norm)
        else:
            fb = mel_filterbank(sample_rate, n_fft, n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=mel_norm)
        self.register_buffer("filterbank", torch.from_numpy(fb), persistent=False)
        # CPU band weights per grouping cost (see _bands): built on first use, CPU only
        self._bands: dict[int, list[tuple[tuple[int, int, int, int], Tensor]]] = {}

    def _bands_for(self, n_frames: int) -> list[tuple[tuple[int, int, int, int], Tensor]]:
        """``[((m0, m1, k0, k1), weights)]`` for a clip of ``n_frames`` on CPU: the filter groups
        of ``_band_groups`` at ``_call_cost(n_frames)``; weights per (re^2, im^2) pair."""
        cost = _call_cost(n_frames)
        if cost not in self._bands:
            interleaved = np.repeat(self.filterbank.detach().cpu().numpy(), 2, axis=1)
            self._bands[cost] = [((m0, m1, k0, k1), torch.from_numpy(np.ascontiguousarray(interleaved[m0:m1, k0:k1])))
                                 for m0, m1, k0, k1 in _band_groups(interleaved, cost)]
        return self._bands[cost]

    def n_frames(self, n_samples: int) -> int:
        """Frames for a signal of ``n_samples`` (librosa's count)."""
        padded = n_samples + (2 * (self.n_fft // 2) if self.center else 0)
        if padded < self.n_fft:
            raise ValueError(f"signal of {n_samples} samples is shorter than n_fft={self.n_fft}")
        return 1 + (padded - self.n_fft) // self.hop_length

    def forward(self, wave: Tensor, out: Tensor | None = None) -> Tensor:
        """``out`` (CPU path only, optional): a float32 tensor of the result's shape whose
        (n_mels, frames) slices are contiguous (e.g. the first channels of a larger
        feature tensor); the mel power is written into it and it is returned."""
        wave = torch.as_tensor(wave)
        if not wave.is_floating_point():
            raise TypeError(f"waveform must be floating point, got {wave.dtype}")
        lead, n = wave.shape[:-1], wave.shape[-1]
        dtype = torch.float64 if wave.dtype == torch.float64 and self.fft_dtype == torch.float64 else torch.float32
        flat = wave.reshape(-1, n).to(dtype=dtype, device=self.window.device)
        frames = self.n_frames(n)
        shape = (*lead, self.n_mels, frames)
        if out is not None:
            if tuple(out.shape) != shape or out.dtype != torch.float32 or out.device.type != "cpu" \
                    or flat.requires_grad or out.stride(-1) != 1 or out.stride(-2) != frames:
                raise ValueError(f"out must be a CPU float32 tensor of shape {shape} with contiguous "
                                 f"(n_mels, frames) slices, got {tuple(out.shape)}")
            self._mel_power_cpu(flat, frames, out.view(-1, self.n_mels, frames) if out.is_contiguous()
                                else [out[idx] for idx in np.ndindex(*lead)])
            return out
        if flat.device.type == "cpu" and not flat.requires_grad:
            res = self._mel_power_cpu(flat, frames)
        else:
            res = self._mel_power_dense(flat)
        return res.reshape(shape)

    def _pad(self, x: Tensor) -> Tensor:
        half = self.n_fft // 2
        return nn.functional.pad(x, (half, half), mode=self.pad_mode) if self.center else x

    def _mel_power_dense(self, x: Tensor) -> Tensor:
        """Whole batch at once with a dense filterbank (GPU path): (B, N) -> (B, M, T)."""
        frames = self._pad(x.to(self.fft_dtype)).unfold(-1, self.n_fft, self.hop_length) * self.window
        spec = torch.view_as_real(torch.fft.rfft(frames))
        power = spec[..., 0].square() + spec[..., 1].square()
        if self.power != 2.0:
            power = power.pow(self.power / 2.0)
        power = power.float()
        return self.filterbank @ power.transpose(-1, -2)

    def _mel_power_cpu(self, x: Tensor, n_frames: int, out=None):
        """One clip at a time (keeps the STFT in cache), banded mel projection:
        (B, N) -> (B, M, T). The squared real and imaginary parts stay
        interleaved and the band weights are repeated per pair, so the sum
        re^2 + im^2 happens inside the matmul. ``out``: where clip ``i`` goes
        (``out[i]``: a contiguous (M, T) tensor); allocated when None."""
        if out is None:
            out = torch.empty(x.shape[0], self.n_mels, n_frames, dtype=torch.float32, device=x.device)
        bands = self._bands_for(n_frames)
        half = self.n_fft // 2
        n, hop = x.shape[-1], self.hop_length
        constant_pad = self.center and self.pad_mode == "constant"
        reflect_pad = self.center and self.pad_mode == "reflect" and n > half
        # frames [lo, hi) lie inside the signal: read straight from it; only the edge frames are
        # read from the padded copy, of which only the edges are filled (issue 15)
        lo, hi = -(-half // hop), (n + half - self.n_fft) // hop + 1
        direct = (constant_pad or reflect_pad) and x.dtype == self.fft_dtype and 0 < lo < hi <= n_frames
        if constant_pad:
            padded = x.new_zeros(n + 2 * half, dtype=self.fft_dtype)
        elif direct:
            padded = x.new_empty(n + 2 * half, dtype=self.fft_dtype)
        frames = x.new_empty(n_frames, self.n_fft, dtype=self.fft_dtype)  # reused: no per-clip allocation
        for i in range(x.shape[0]):
            if direct:
                head, tail = (lo - 1) * hop + self.n_fft - half, hi * hop - half
                padded[half : half + head].copy_(x[i, :head])
                padded[half + tail : half + n].copy_(x[i, tail:])
                if reflect_pad:  # x[half], ..., x[1] before the signal; x[n-2], ..., x[n-1-half] after it
                    padded[:half].copy_(x[i, 1 : half + 1].flip(0))
                    padded[half + n :].copy_(x[i, n - 1 - half : n - 1].flip(0))
                edges = padded.unfold(-1, self.n_fft, hop)
                torch.mul(edges[:lo], self.window, out=frames[:lo])
                inner = x[i, lo * hop - half :].unfold(-1, self.n_fft, hop)[: hi - lo]
                torch.mul(inner, self.window, out=frames[lo:hi])
                torch.mul(edges[hi:], self.window, out=frames[hi:])
            else:
                if constant_pad:
                    padded[half : half + n].copy_(x[i])
                    xi = padded
                else:
                    xi = self._pad(x[i : i + 1].to(self.fft_dtype))[0]
                torch.mul(xi.unfold(-1, self.n_fft, hop), self.window, out=frames)
            sq = torch.view_as_real(torch.fft.rfft(frames)).reshape(n_frames, -1).square_()  # (T, 2F)
            if sq.dtype != torch.float32:
                sq = sq.float()
            if self.power != 2.0:
                pairs = sq.view(n_frames, -1, 2)
                pairs[..., 0] = (pairs[..., 0] + pairs[..., 1]).pow_(self.power / 2.0)
                pairs[..., 1] = 0.0
            dst = out[i]
            for (m0, m1, k0, k1), band in bands:
                if k1 > k0:
                    torch.mm(band, sq[:, k0:k1].t(), out=dst[m0:m1])
                else:
                    dst[m0:m1] = 0.0
        return out


def power_to_db(
    mel: Tensor, *, ref: float = 1.0, amin: float = 1e-10, top_db: float | None = 80.0, inplace: bool = False
) -> Tensor:
    """``librosa.power_to_db`` over the last two axes of each (..., M, T) slice:
    ``10 log10(max(amin, S)) - 10 log10(max(amin, |ref|))``, floored at each
    slice's own maximum minus ``top_db``. ``inplace``: overwrite ``mel`` (eager CPU
    tensors with contiguous (M, T) slices; otherwise a new tensor is returned)."""
    if amin <= 0:
        raise ValueError(f"amin must be positive, got {amin}")
    if top_db is not None and top_db < 0:
        raise ValueError(f"top_db must be non-negative, got {top_db}")
    offset = 10.0 * math.log10(max(amin, abs(float(ref))))
    if blocked_ok(mel) and mel.ndim >= 2 and mel.numel():
        return _power_to_db_blocks(mel, amin, offset, top_db, inplace and _slices_contiguous(mel))
    db = torch.log10(mel.clamp_min(amin)).mul_(10.0)
    if offset:
        db.sub_(offset)
    if top_db is not None:
        if top_db < 0:
            raise ValueError(f"top_db must be non-negative, got {top_db}")
        floor = db.amax(dim=(-2, -1), keepdim=True) - top_db
        db = torch.maximum(db, floor)
    return db


def _slices_contiguous(x: Tensor) -> bool:
    return x.ndim >= 2 and x.stride(-1) == 1 and x.stride(-2) == x.shape[-1]


def _power_to_db_blocks(mel: Tensor, amin: float, offset: float, top_db: float | None,
                        inplace: bool = False) -> Tensor:
    """``power_to_db`` on CPU without autograd: the same operations, in place in the output,
    a few (M, T) slices at a time so each block stays in cache (the whole batch is
    memory-bound: five passes over it otherwise). ``inplace``: the output is ``mel`` itself
    (no new allocation, so no page faults for a fresh array; issue 15)."""
    if inplace:
        out = mel
        lead = [mel[idx] for idx in np.ndindex(*mel.shape[:-2])] if not mel.is_contiguous() else None
        if lead is not None:  # (M, T) slices of a larger tensor: one slice at a time
            for d in lead:
                _db_block(d, d, amin, offset, top_db)
            return out
    else:
        out = torch.empty(mel.shape, dtype=mel.dtype)
    slices = mel.reshape(-1, *mel.shape[-2:])
    dst = out.view(-1, *mel.shape[-2:])
    step = max(1, (1 << 16) // max(1, slices[0].numel()))
    for i in range(0, slices.shape[0], step):
        _db_block(slices[i : i + step], dst[i : i + step], amin, offset, top_db)
    return out


def _db_block(src: Tensor, d: Tensor, amin: float, offset: float, top_db: float | None) -> None:
    torch.clamp_min(src, amin, out=d)
    d.log10_().mul_(10.0)
    if offset:
        d.sub_(offset)
    if top_db is not None:
        torch.maximum(d, d.amax(dim=(-2, -1), keepdim=True).sub_(top_db), out=d)


@functools.lru_cache(maxsize=8)
def _cached_mel(key: tuple, device: str) -> MelSpectrogram:
    return MelSpectrogram(**dict(key)).to(device)


def log_mel(
    waveform,
    sample_rate: int,
    n_fft: int = 2048,
    hop_length: int = 1024,
    n_mels: int = 128,
    htk: bool = True,
    fmin: float = 0.0,
    fmax: float | None = None,
    win_length: int | None = None,
    center: bool = True,
    power: float = 2.0,
    top_db: float | None = 80.0,
    amin: float = 1e-10,
    ref: float = 1.0,
    *,
    mel_norm: str | None = "slaney",
    pad_mode: str = "constant",
    fft_float64: bool = False,
) -> Tensor:
    """Log-mel spectrogram in dB, (..., N) -> (..., n_mels, frames), float32,
    on the input's device (numpy input: CPU).

    Equals ``librosa.power_to_db(librosa.feature.melspectrogram(y=w, sr=..., ...,
    norm=mel_norm, pad_mode=pad_mode), ref=ref, amin=amin, top_db=top_db)`` for
    every 1-D signal ``w`` of the batch (McDonnell & Gao 2019 sec. 3.1 settings
    by default). The STFT/filterbank module is cached per settings and device.
    ``fft_float64``: see ``MelSpectrogram``.
    """
    wave = torch.as_tensor(waveform)
    key = tuple(
        sorted(
            dict(
                sample_rate=int(sample_rate), n_fft=int(n_fft), hop_length=int(hop_length), n_mels=int(n_mels),
                htk=bool(htk), fmin=float(fmin), fmax=None if fmax is None else float(fmax),
                win_length=None if win_length is None else int(win_length), center=bool(center),
                power=float(power), mel_norm=mel_norm, pad_mode=pad_mode, fft_float64=bool(fft_float64),
            ).items()
        )
    )
    mel = _cached_mel(key, str(wave.device))(wave)
    return power_to_db(mel, ref=ref, amin=amin, top_db=top_db, inplace=True)  # mel is our own temporary
