"""An ONNX-exportable copy of ``FeatureExtractor``'s arithmetic.

``asclab.features`` computes log-mels fast on CPU with a per-clip loop and a
banded filterbank, and HPSS with scipy's median filter; neither traces into
ONNX. ``ExportableFeatures`` computes the same numbers with ops ONNX has:

* STFT: ``torch.stft`` on the padded signal, exported as the ONNX ``STFT``
  operator (opset >= 17) through a custom symbolic,
  then ``re^2 + im^2`` and the extractor's own mel filterbank, applied band by
  band (only the non-zero columns are stored);
* the dB / natural-log scaling, [0, 1] min-max and deltas: the extractor's
  own ``scale`` and ``asclab.features.deltas`` (plain tensor ops);
* HPSS (Horvath 2021 sec. 2): median filters as the middle of ``TopK`` over
  ``kernel`` shifted slices with scipy's "reflect" edge (edge sample repeated,
  built with ``flip``), then librosa's soft masks, as ``asclab.features.hpss``.

The time axis stays symbolic, so the exported graph takes any clip length.
Its agreement with ``FeatureExtractor`` (within 1e-4) is tested.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from asclab.errors import DataError
from asclab.features import FeatureExtractor, deltas


class ExportableMel(nn.Module):
    """``MelSpectrogram`` via ``torch.stft``: waveform (..., N) -> mel power (..., n_mels, frames).

    The filterbank is stored as bands: each group of ``group`` consecutive
    filters keeps only the FFT bins its filters touch (a triangular mel
    filterbank is about 98 % zeros), so the exported file holds tens of
    kilobytes of filter weights instead of megabytes; the products are the same.
    """

    def __init__(self, mel: nn.Module, group: int = 8) -> None:
        super().__init__()
        self.n_fft, self.hop_length = int(mel.n_fft), int(mel.hop_length)
        self.center, self.pad_mode, self.power = bool(mel.center), str(mel.pad_mode), float(mel.power)
        self.register_buffer("window", mel.window.detach().clone(), persistent=False)
        fb = mel.filterbank.detach().clone()
        self.bands: list[tuple[int, int]] = []
        for g, m0 in enumerate(range(0, fb.shape[0], group)):
            rows = fb[m0:m0 + group]
            cols = torch.nonzero(rows.abs().sum(0)).flatten()
            k0, k1 = (int(cols[0]), int(cols[-1]) + 1) if len(cols) else (0, 1)
            self.bands.append((k0, k1))
            self.register_buffer(f"band{g}", rows[:, k0:k1].contiguous(), persistent=False)

    def forward(self, wave: Tensor) -> Tensor:
        lead = wave.shape[:-1]
        x = wave.reshape(-1, wave.shape[-1])
        if self.center:
            half = self.n_fft // 2
            x = nn.functional.pad(x.unsqueeze(1), (half, half), mode=self.pad_mode).squeeze(1)
        power = _Stft.apply(x, self.window, self.n_fft, self.hop_length).square().sum(-1).transpose(1, 2)
        if self.power != 2.0:
            power = power.pow(self.power / 2.0)  # (R, F, T)
        mel = torch.cat([torch.matmul(getattr(self, f"band{g}"), power[:, k0:k1])
                         for g, (k0, k1) in enumerate(self.bands)], dim=1)
        return mel.reshape(lead + mel.shape[-2:])


class _Stft(torch.autograd.Function):
    """One-sided STFT of frames ``n_fft`` apart by ``hop`` (no padding): (R, N) -> (R, T, F, 2).

    Runs ``torch.stft`` in torch and becomes the ONNX ``STFT`` operator (opset 17)
    in the TorchScript exporter, whose own ``stft`` export does not take
    complex output.
    """

    @staticmethod
    def forward(ctx, x: Tensor, window: Tensor, n_fft: int, hop: int) -> Tensor:  # noqa: ARG004
        spec = torch.stft(x, n_fft, hop, window=window, center=False, return_complex=True)
        return torch.view_as_real(spec).transpose(1, 2)

    @staticmethod
    def symbolic(g, x, window, n_fft: int, hop: int):
        signal = g.op("Unsqueeze", x, g.op("Constant", value_t=torch.tensor([2], dtype=torch.int64)))
        step = g.op("Constant", value_t=torch.tensor(hop, dtype=torch.int64))
        length = g.op("Constant", value_t=torch.tensor(n_fft, dtype=torch.int64))
        return g.op("STFT", signal, step, window, length, onesided_i=1)


def _symmetric_pad_last(x: Tensor, before: int, after: int) -> Tensor:
    """scipy.ndimage "reflect" extension (d c b a | a b c d | d c b a) along the last axis."""
    parts = [x]
    if before:
        parts.insert(0, x[..., :before].flip(-1))
    if after:
        parts.append(x[..., x.shape[-1] - after:].flip(-1))
    return torch.cat(parts, dim=-1)


def median_filter_last(x: Tensor, size: int) -> Tensor:
    """Median of ``size`` values along the last axis, aligned as scipy's ``median_filter``
    (the rank ``size // 2`` element, so the upper median for even sizes)."""
    before, after = size // 2, size - 1 - size // 2
    padded = _symmetric_pad_last(x, before, after)
    n = x.shape[-1]
    windows = torch.stack([padded[..., i:i + n] for i in range(size)], dim=-1)
    k = size - size // 2  # the (size//2 + 1)-th smallest is the k-th largest
    return torch.topk(windows, k, dim=-1).values[..., k - 1]


def _softmask(x: Tensor, ref: Tensor, power: float) -> Tensor:
    """librosa.util.softmask(x, ref, power, split_zeros=True) (margins of 1)."""
    z = torch.maximum(x, ref)
    bad = z < torch.finfo(z.dtype).tiny
    z = torch.where(bad, torch.ones_like(z), z)
    mask = (x / z) ** power
    total = mask + (ref / z) ** power
    return torch.where(bad, torch.full_like(mask, 0.5), mask / torch.where(bad, torch.ones_like(total), total))


def exportable_hpss(spec: Tensor, kernel: int, power: float = 2.0) -> tuple[Tensor, Tensor]:
    """Harmonic and percussive parts as ``asclab.features.hpss(spec, kernel)`` (margins 1)."""
    harm = median_filter_last(spec, kernel)
    perc = median_filter_last(spec.transpose(-1, -2), kernel).transpose(-1, -2)
    return spec * _softmask(harm, perc, power), spec * _softmask(perc, harm, power)


class ExportableFeatures(nn.Module):
    """``FeatureExtractor(cfg)`` for export: ``forward(wave[B, C, N]) -> [B, in_chans, n_mels, T]``.

    ``C`` is fixed by the config: 1 for "mono" (the caller mixes down, as
    ``asclab.data`` does), 2 for "stereo"; a mono config also averages several
    channels if given them.
    """

    def __init__(self, extractor: FeatureExtractor) -> None:
        super().__init__()
        self.cfg = extractor.cfg
        self.extractor = extractor
        self.mel = ExportableMel(extractor.mel)

    @property
    def n_audio_channels(self) -> int:
        return 2 if self.cfg.channels == "stereo" else 1

    def forward(self, wave: Tensor) -> Tensor:
        cfg = self.cfg
        if wave.ndim != 3:
            raise DataError(f"expected a waveform batch [B, C, N], got shape {tuple(wave.shape)}")
        if cfg.channels == "mono":
            wave = wave.mean(dim=1, keepdim=True)
        x = self.extractor.scale(self.mel(wave))  # (B, A, M, T)
        crop = (cfg.delta_width - 1) if cfg.deltas and not cfg.delta_padding else 0
        parts = [(x, True)]  # (tensor, still has all T frames)
        if cfg.deltas:
            w = cfg.delta_width
            if cfg.delta_padding:
                parts += [(deltas(x, w, True, order=1), True), (deltas(x, w, True, order=2), True)]
            else:  # delta cropped to the delta-delta's frames, as FeatureExtractor does
                d = deltas(x, w, False)
                parts += [(d[..., crop // 2: d.shape[-1] - crop // 2], False), (deltas(d, w, False), False)]
        if cfg.hpss:
            parts += [(p, True) for p in exportable_hpss(x, cfg.hpss_kernel)]
        return torch.cat([p[..., crop: p.shape[-1] - crop] if full and crop else p for p, full in parts], dim=1)
