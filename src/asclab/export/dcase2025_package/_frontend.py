"""Audio -> log-mel input: soundfile, mono mix, Hann-windowed sinc resampling, STFT, stored filterbank."""
import math

import numpy as np
import soundfile as sf
import torch


def read_mono(path):
    """(float32 tensor [samples], sample rate): the mean of the channels."""
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(x.mean(axis=1, dtype=np.float32))), int(sr)


def _sinc_kernel(orig, new, width_zc=6, rolloff=0.99):
    base = min(orig, new) * rolloff
    width = math.ceil(width_zc * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float32)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=torch.float32)[:, None, None] / new + idx
    t = (t * base).clamp(-width_zc, width_zc)
    window = torch.cos(t * math.pi / width_zc / 2) ** 2
    t = t * math.pi
    kernel = torch.where(t == 0, torch.tensor(1.0), t.sin() / t)
    return kernel * (window * (base / orig)), width


def resample(wave, orig_freq, new_freq):
    """Band-limited resampling of a 1-D float32 signal (windowed sinc, 6 zero crossings, rolloff 0.99)."""
    if orig_freq == new_freq:
        return wave
    g = math.gcd(orig_freq, new_freq)
    orig, new = orig_freq // g, new_freq // g
    kernel, width = _sinc_kernel(orig, new)
    padded = torch.nn.functional.pad(wave[None], (width, width + orig))
    y = torch.nn.functional.conv1d(padded[:, None], kernel, stride=orig)
    return y.transpose(1, 2).reshape(-1)[: math.ceil(new * wave.shape[-1] / orig)]


class LogMel(torch.nn.Module):
    """wave [B, N] at the model rate -> [B, 1, n_mels, frames] (float32)."""

    def __init__(self, cfg, window, filterbank):
        super().__init__()
        self.cfg = dict(cfg)
        self.register_buffer("window", window.float())
        self.register_buffer("filterbank", filterbank.float())

    def forward(self, wave):
        c = self.cfg
        x = wave.float()
        if c["center"]:
            half = c["n_fft"] // 2
            x = torch.nn.functional.pad(x[:, None], (half, half), mode=c["pad_mode"])[:, 0]
        frames = x.unfold(-1, c["n_fft"], c["hop_length"]) * self.window
        spec = torch.view_as_real(torch.fft.rfft(frames))
        power = spec[..., 0].square() + spec[..., 1].square()
        if c["power"] != 2.0:
            power = power.pow(c["power"] / 2.0)
        mel = self.filterbank @ power.transpose(-1, -2)
        if c["scale"] == "log":
            out = torch.log(mel + c["log_eps"])
        else:
            out = 10.0 * torch.log10(mel.clamp_min(c["amin"]))
            if c["top_db"] is not None:
                out = torch.maximum(out, out.amax(dim=(-2, -1), keepdim=True) - c["top_db"])
        return out[:, None]
