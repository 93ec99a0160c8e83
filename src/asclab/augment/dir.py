"""Device impulse response (DIR) augmentation (CPJKU, Morocutti et al. 2023,
"Device-robust acoustic scene classification via impulse response augmentation";
CP-JKU DCASE 2023 task 1 technical report).

Clips recorded by the reference device (TAU's device ``a``) are convolved, each
with probability ``p`` (their default 0.6), with an impulse response drawn
uniformly from a folder of device/microphone responses (e.g. MicIRP), which
simulates recording the same scene through another device. The output keeps
the input's length: the first N samples of the full (causal) convolution, as
the authors' released code (cpjku_dcase23, ``DIRAugmentDataset``) cuts it.

Level normalisation (the paper does not state one; the released code uses the
responses as read): with ``normalize: energy`` (default) each response is
scaled to unit energy, sum h[k]^2 = 1, so a white signal keeps its power and
the 66 MicIRP responses, whose energies span 0.25-2.2 (about 19 dB), do not
change the clip level at random; ``normalize: none`` uses them as read.

The responses are read once, when the augmentation is built, resampled with
soxr (``asclab.data.load_audio``) to the recipe's rate and kept as a buffer
(moved with the module to the GPU, never saved in checkpoints). The
convolution is one batched FFT product in torch, on the batch's device.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from asclab.augment._random import bernoulli, choice, probability
from asclab.data import load_audio
from asclab.errors import ConfigError

NORMALIZATIONS = ("energy", "none")


def read_impulse_responses(folder: str | Path, sample_rate: int, normalize: str = "energy") -> list[np.ndarray]:
    """Every ``*.wav`` under ``folder`` (sorted by path), mono, at ``sample_rate``, normalised."""
    if normalize not in NORMALIZATIONS:
        raise ConfigError(f"dir augmentation: normalize must be one of {', '.join(NORMALIZATIONS)}, got {normalize!r}")
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ConfigError(f"dir augmentation: impulse response folder {root} does not exist")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())
    if not paths:
        raise ConfigError(f"dir augmentation: no .wav impulse responses in {root}")
    out = []
    for p in paths:
        h = load_audio(p, sample_rate, channels="mono")[0].astype(np.float64)
        if normalize == "energy":
            energy = float(np.sqrt(np.sum(h * h)))
            if energy == 0.0:
                raise ConfigError(f"dir augmentation: {p} is silent (all zeros)")
            h = h / energy
        out.append(h.astype(np.float32))
    return out


def fft_convolve(x: Tensor, h: Tensor) -> Tensor:
    """Causal convolution of each row of ``x`` [B, C, N] with ``h`` [B, L], cut to N samples.

    ``y[b, c, n] = sum_k h[b, k] x[b, c, n - k]`` for ``0 <= n < N``: the first N
    samples of ``numpy.convolve(x, h, "full")``, computed as one zero-padded FFT product.
    """
    n, length = x.shape[-1], h.shape[-1]
    size = 1 << max(1, int(n + length - 1 - 1).bit_length())  # next power of two >= N + L - 1
    spec = torch.fft.rfft(x.float(), size) * torch.fft.rfft(h.float(), size)[:, None, :]
    return torch.fft.irfft(spec, size)[..., :n].to(x.dtype)


class DeviceImpulseResponse(nn.Module):
    """``{name: dir, folder: DIR, p: 0.6, devices: [a], normalize: energy}``.

    Called as ``aug(wave, generator, devices=names)`` with the batch's recording
    device names; only clips whose device is in ``devices`` are candidates
    (``devices=None`` at the call: every clip is). ``sample_rate`` is the recipe's,
    given by the pipeline builder.
    """

    uses_devices = True  # asclab.augment.Compose passes the batch's device names

    def __init__(self, folder: str, sample_rate: int, p: float = 0.6, devices: Sequence[str] = ("a",),
                 normalize: Literal["energy", "none"] = "energy") -> None:
        super().__init__()
        self.p = probability(p)
        if isinstance(devices, str):
            devices = [devices]
        self.devices = [str(d) for d in devices]
        self.folder = str(folder)
        irs = read_impulse_responses(folder, int(sample_rate), normalize)
        bank = torch.zeros(len(irs), max(len(h) for h in irs))
        for i, h in enumerate(irs):
            bank[i, :len(h)] = torch.from_numpy(h)
        self.register_buffer("bank", bank, persistent=False)

    def forward(self, x: Tensor, generator: torch.Generator | None = None,
                devices: Sequence[str | None] | None = None) -> Tensor:
        if x.dim() != 3:
            raise ValueError(f"DeviceImpulseResponse expects a 3-d batch [B, C, N], got shape {tuple(x.shape)}")
        if devices is not None and len(devices) != x.shape[0]:
            raise ValueError(f"{len(devices)} device names for a batch of {x.shape[0]} clips")
        apply = bernoulli(x.shape[0], self.p, generator, x.device)
        if devices is not None:
            apply &= torch.tensor([d in self.devices for d in devices], dtype=torch.bool, device=x.device)
        if self.p == 0.0 or not bool(apply.any()):
            return x
        idx = apply.nonzero(as_tuple=True)[0]
        pick = choice(len(idx), self.bank.shape[0], generator, x.device)
        out = x.clone()
        out[idx] = fft_convolve(x[idx], self.bank.to(x.device)[pick])
        return out

    def extra_repr(self) -> str:
        return f"folder={self.folder!r}, responses={self.bank.shape[0]}, p={self.p}, devices={self.devices}"
