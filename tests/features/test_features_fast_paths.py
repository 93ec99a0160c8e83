"""The eager CPU fast paths of the front end (issue 15) equal the plain tensor code they
replace: interior frames read straight from the signal, band groups chosen by clip length,
and deltas as blocked matmuls."""
from __future__ import annotations

import pytest
import torch

from asclab.features.delta import _deltas_functional, _savgol_rows, deltas
from asclab.features.mel import MelSpectrogram, _call_cost


@pytest.mark.parametrize("sr,n_fft,hop,win", [(44100, 2048, 1024, None), (32000, 4096, 472, 3072),
                                              (16000, 512, 160, 400), (22050, 1024, 1000, None)])
def test_cpu_mel_power_equals_the_dense_path(sr, n_fft, hop, win, one_torch_thread):
    mel = MelSpectrogram(sr, n_fft, hop, 64, win_length=win)
    gen = torch.Generator().manual_seed(0)
    for n in (n_fft, n_fft + 1, 3 * n_fft + 7, sr, 4 * sr + 13):
        x = torch.randn(2, n, generator=gen)
        got, ref = mel(x), mel._mel_power_dense(x)
        assert got.shape == ref.shape
        assert ((got - ref).abs() / ref.abs().amax()).max().item() < 1e-5, n


def test_band_grouping_follows_clip_length():
    assert _call_cost(68) > _call_cost(431) >= _call_cost(2000)  # short clips: fewer, wider groups
    mel = MelSpectrogram(32000, 4096, 472, 256, win_length=3072)
    x = torch.randn(1, 32000)
    short, long = mel._bands_for(68), mel._bands_for(678)
    assert len(short) < len(long)
    assert torch.allclose(mel(x), mel._mel_power_dense(x), rtol=1e-5, atol=1e-6 * mel(x).abs().max().item())


@pytest.mark.parametrize("width,order,padding,dtype", [(9, 1, True, torch.float32), (9, 2, True, torch.float32),
                                                        (5, 1, False, torch.float32), (3, 1, True, torch.float64),
                                                        (7, 2, False, torch.float64)])
def test_blocked_deltas_equal_the_tap_sums(width, order, padding, dtype):
    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(3, 2, 40, 150, generator=gen) * 20).to(dtype)  # 150 frames: several 64-frame blocks
    centre, left, right = _savgol_rows(width, order)
    taps = [(j, c) for j, c in enumerate(centre.tolist()) if c != 0.0]
    ref = _deltas_functional(x, width, padding, taps, left, right)
    got = deltas(x, width, padding, order=order)
    assert got.dtype == dtype and got.shape == ref.shape
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    assert (got - ref).abs().max().item() < tol


@pytest.mark.parametrize("scale", ["db", "log", "db01", "log01"])
@pytest.mark.parametrize("channels,deltas_on", [("mono", True), ("stereo", True), ("mono", False), ("stereo", False)])
def test_eager_extractor_built_in_place_equals_the_autograd_path(scale, channels, deltas_on, one_torch_thread):
    """Eager CPU features write the mel power into the output tensor and scale it there (no
    intermediate arrays); with autograd on, every step allocates its result. Same numbers."""
    from asclab.features import FeatureConfig, FeatureExtractor

    cfg = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=160, n_mels=40, scale=scale, channels=channels,
                        deltas=deltas_on, top_db=80.0 if scale.startswith("db") else None)
    ext = FeatureExtractor(cfg).eval()
    wave = torch.randn(3, 2, 16000, generator=torch.Generator().manual_seed(2)) * 0.1
    wave[1] *= 1e-4  # a quiet clip: its own top_db floor and min-max range
    with torch.no_grad():
        got = ext(wave)
    ref = ext(wave.clone().requires_grad_(True)).detach()
    assert got.shape == ref.shape == (3, cfg.in_chans, 40, 101)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-4)


def test_mel_power_into_the_channels_of_a_larger_tensor(one_torch_thread):
    mel = MelSpectrogram(16000, 512, 160, 40)
    x = torch.randn(2, 2, 16000, generator=torch.Generator().manual_seed(3))
    big = torch.full((2, 6, 40, 101), -1.0)
    got = mel(x, out=big[:, :2])
    assert got.data_ptr() == big.data_ptr()
    torch.testing.assert_close(big[:, :2], mel(x), rtol=0, atol=0)
    assert (big[:, 2:] == -1.0).all()  # the other channels are left alone
    with pytest.raises(ValueError, match="out must be"):
        mel(x, out=torch.empty(2, 2, 101, 40).transpose(-1, -2))


@pytest.mark.parametrize("layout", ["contiguous", "channels of a larger tensor"])
def test_deltas_into_a_view_equals_deltas(layout, one_torch_thread):
    from asclab.features.delta import deltas_into

    gen = torch.Generator().manual_seed(4)
    big = torch.randn(3, 6, 40, 150, generator=gen)
    x = big[:, :2].contiguous() if layout == "contiguous" else big[:, :2]
    for order, dst in ((1, big[:, 2:4]), (2, big[:, 4:])):
        deltas_into(x, dst, 9, True, order=order)
        torch.testing.assert_close(dst, deltas(x.contiguous(), 9, True, order=order), rtol=1e-5, atol=1e-4)
