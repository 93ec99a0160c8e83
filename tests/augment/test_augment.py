"""asclab.augment against the definitions in Horvath 2021, McDonnell & Gao 2019, QTI 2020."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from asclab.augment import (
    ChannelSwap,
    CutMix,
    FreqMask,
    FreqMix,
    FreqMixStyle,
    GaussianNoise,
    Mixup,
    MixupWithCrop,
    PitchShift,
    RandomTimeCrop,
    TemporalShuffle,
    TimeMask,
    TimeStretch,
    VolumeChange,
    build_batch_mix,
    build_spec_augment,
    build_waveform_augment,
    one_hot,
    phase_vocoder_stretch,
)
from asclab.augment._random import beta
from asclab.errors import ConfigError
from conftest import shared_data

SR = 16000


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def sine(freq: float, seconds: float = 1.0, sr: int = SR) -> torch.Tensor:
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    return torch.sin(2 * math.pi * freq * t).float()


def peak_hz(y: torch.Tensor, sr: int = SR) -> float:
    """Dominant frequency with parabolic interpolation of the Hann-windowed spectrum."""
    y = y.double().flatten()
    mag = torch.fft.rfft(y * torch.hann_window(len(y), periodic=False, dtype=torch.float64)).abs()
    k = int(mag[1:-1].argmax()) + 1
    a, b, c = (math.log(float(mag[i]) + 1e-30) for i in (k - 1, k, k + 1))
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / len(y)


# --------------------------------------------------------------------------- random draws


@pytest.mark.parametrize("alpha", [0.2, 1.0, 2.5])
def test_beta_sampler_matches_beta_distribution(alpha):
    draws = beta(4000, alpha, generator=gen(1)).double().numpy()
    assert stats.kstest(draws, stats.beta(alpha, alpha).cdf).pvalue > 1e-3
    assert torch.equal(beta(50, alpha, generator=gen(3)), beta(50, alpha, generator=gen(3)))


# --------------------------------------------------------------------------- waveform


def test_gaussian_noise_hits_the_drawn_snr():
    x = torch.stack([sine(440), 0.1 * sine(1000)])[:, None].repeat(1, 2, 1)  # [2, 2, N]
    y = GaussianNoise(snr_db=20.0)(x, generator=gen())
    snr = 10 * torch.log10(x.pow(2).mean(dim=(1, 2)) / (y - x).pow(2).mean(dim=(1, 2)))
    assert torch.allclose(snr, torch.full_like(snr, 20.0), atol=0.1)


def test_gaussian_noise_literal_sigma():
    x = torch.zeros(2, 1, 20000)
    y = GaussianNoise(sigma=1.0)(x, generator=gen())
    assert abs(float(y.std()) - 1.0) < 0.02


@pytest.mark.parametrize("octaves", [0.25, -0.25, 0.1])
def test_pitch_shift_moves_sine_peak_by_expected_factor(octaves):
    librosa = pytest.importorskip("librosa")
    x = sine(440.0)
    y = PitchShift(octaves=(octaves, octaves))(x[None, None], generator=gen())[0, 0]
    expected = 440.0 * 2.0 ** octaves
    assert y.shape == x.shape
    assert abs(peak_hz(y) - expected) / expected < 0.02
    ref = librosa.effects.pitch_shift(x.numpy(), sr=SR, n_steps=12 * octaves)
    assert abs(peak_hz(y) - peak_hz(torch.from_numpy(ref))) / expected < 0.01


@pytest.mark.parametrize("rate", [0.5, 0.8, 1.6, 2.0])
def test_time_stretch_keeps_length_and_frequency_and_moves_onsets(rate):
    n_fft, hop = 512, 128
    x = sine(440.0, seconds=2.0)
    x[: SR // 2] = 0.0  # onset at 0.5 s
    y = TimeStretch(rate=(rate, rate), crop="start", n_fft=n_fft, hop_length=hop)(x[None, None], generator=gen())[0, 0]
    assert y.shape == x.shape
    onset_expected = 0.5 / rate
    onset = float(torch.nonzero(y.abs() > 0.5)[0]) / SR
    assert abs(onset - onset_expected) < n_fft / SR
    seg = y[int((onset_expected + 0.1) * SR): int((onset_expected + 0.6) * SR)]
    assert abs(peak_hz(seg) - 440.0) / 440.0 < 0.02


@pytest.mark.parametrize("rate", [0.7, 1.37])
def test_phase_vocoder_matches_librosa(rate):
    librosa = pytest.importorskip("librosa")
    x = (sine(440.0) + 0.3 * torch.randn(SR, generator=gen(5))).double()
    spec = librosa.stft(x.numpy(), n_fft=2048, hop_length=512, pad_mode="constant")
    stretched = librosa.phase_vocoder(spec, rate=rate, hop_length=512, n_fft=2048)
    ref = librosa.istft(stretched, hop_length=512, n_fft=2048, length=round(len(x) / rate))
    ours = phase_vocoder_stretch(x, rate, 2048, 512).numpy()
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize("curve", ["constant", "fade_in", "sine", "cosine"])
def test_volume_curves_endpoints(curve):
    n, g_db = 4000, 6.0
    g = 10 ** (g_db / 20)
    y = VolumeChange(gain_db=(g_db, g_db), curves=[curve])(torch.ones(1, 2, n), generator=gen())[0]
    assert torch.equal(y[0], y[1])  # same gain on both channels
    y = y[0].double()
    expect = {
        "constant": [(0, g), (n // 2, g), (n - 1, g)],
        "fade_in": [(0, 1.0), (n - 1, g)],
        "sine": [(0, 1.0), (n // 4, g), (n // 2, 1.0), (3 * n // 4, 1 / g)],
        "cosine": [(0, g), (n // 4, 1.0), (n // 2, 1 / g)],
    }[curve]
    for i, v in expect:
        assert y[i] == pytest.approx(v, rel=1e-5), (curve, i)
    if curve == "fade_in":
        assert torch.all(torch.diff(y) > 0)


def test_volume_gain_is_uniform_in_range():
    y = VolumeChange(curves=["constant"])(torch.ones(2000, 1, 4), generator=gen())
    db = 20 * torch.log10(y[:, 0, 0]).double().numpy()
    assert db.min() >= -10 - 1e-4 and db.max() <= 10 + 1e-4
    assert stats.kstest(db, stats.uniform(-10, 20).cdf).pvalue > 1e-3


def test_channel_swap():
    x = torch.randn(8, 2, 100, generator=gen())
    assert torch.equal(ChannelSwap(p=1.0)(x), x.flip(1))
    assert torch.equal(ChannelSwap(p=0.0)(x), x)
    y = ChannelSwap(p=0.5)(x, generator=gen(2))
    swapped = [bool(torch.equal(y[i], x[i].flip(0))) for i in range(8)]
    kept = [bool(torch.equal(y[i], x[i])) for i in range(8)]
    assert all(s != k for s, k in zip(swapped, kept)) and any(swapped) and any(kept)
    with pytest.raises(ConfigError):
        ChannelSwap()(torch.randn(2, 1, 100))


def test_probability_applies_per_example():
    x = torch.ones(200, 1, 64)
    y = VolumeChange(p=0.3, gain_db=(6.0, 6.0), curves=["constant"])(x, generator=gen())
    changed = (y[:, 0, 0] != 1.0).float().mean()
    assert 0.2 < float(changed) < 0.4


def test_waveform_pipeline_on_real_stereo_clip():
    sf = pytest.importorskip("soundfile")
    path = shared_data("tau-samples", "tut2018-48k-stereo", "bus.wav")
    audio, sr = sf.read(path, dtype="float32", frames=48000, always_2d=True)
    x = torch.from_numpy(audio.T.copy())[None].repeat(2, 1, 1)  # [2, 2, N]
    aug = build_waveform_augment([
        {"name": "gaussian_noise", "snr_db": 30.0},
        {"name": "pitch_shift"},
        {"name": "time_stretch"},
        {"name": "volume"},
        {"name": "channel_swap", "p": 1.0},
    ])
    y = aug(x, generator=gen())
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert not torch.allclose(y, x)
    noisy = GaussianNoise(snr_db=15.0)(x, generator=gen())
    snr = 10 * torch.log10(x.pow(2).mean() / (noisy - x).pow(2).mean())
    assert float(snr) == pytest.approx(15.0, abs=0.1)


# --------------------------------------------------------------------------- spectrogram


def frame_index_batch(b: int, f: int, t: int) -> torch.Tensor:
    return torch.arange(t, dtype=torch.float32).expand(b, 1, f, t).clone()


def test_random_time_crop_independent_offsets():
    x = frame_index_batch(16, 4, 461)
    y = RandomTimeCrop(400)(x, generator=gen())
    assert y.shape == (16, 1, 4, 400)
    offsets = y[:, 0, 0, 0]
    assert torch.equal(y, (offsets.view(-1, 1, 1, 1) + torch.arange(400.0)).expand_as(y))  # contiguous windows
    assert offsets.min() >= 0 and offsets.max() <= 61 and len(set(offsets.tolist())) > 1
    with pytest.raises(ValueError):
        RandomTimeCrop(500)(x)


@pytest.mark.parametrize("cls,axis", [(TimeMask, -1), (FreqMask, -2)])
def test_masks_cover_at_most_ten_percent(cls, axis):
    x = torch.ones(64, 2, 128, 431)
    y = cls(max_fraction=0.1)(x, generator=gen())
    masked = (y == 0)
    size = x.shape[axis]
    other = -2 if axis == -1 else -1
    lines = masked.all(dim=other)[:, 0]  # [B, size]: whole rows/columns masked
    assert torch.equal(masked.any(dim=other)[:, 0], lines)  # masks span the other axis entirely
    assert torch.equal(masked[:, 0], masked[:, 1])  # same mask on every channel
    counts = lines.sum(dim=1)
    assert counts.max() <= int(0.1 * size) and counts.max() > 0
    for row in lines:  # one contiguous band
        idx = torch.nonzero(row).flatten()
        if len(idx):
            assert int(idx[-1] - idx[0] + 1) == len(idx)


def test_mask_max_width_in_bins():
    y = FreqMask(max_width=5)(torch.ones(200, 1, 256, 4), generator=gen())
    widths = (y == 0).all(dim=-1)[:, 0].sum(dim=1)
    assert widths.max() == 5 and set(widths.tolist()) == set(range(6))


def test_mix_choice_draws_one_mix_per_batch():
    from asclab.augment import BatchMixChoice

    b, f, t = 16, 8, 12
    x = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1).expand(b, 1, f, t).clone()
    choice = BatchMixChoice([FreqMix(), CutMix()], weights=[1.0, 0.0])
    for seed in range(5):
        xm, _ = choice(x, torch.arange(b), generator=gen(seed), num_classes=b)
        own = xm[:, 0] == torch.arange(b, dtype=torch.float32).view(b, 1, 1)
        assert torch.equal(own, own[:, :, :1].expand_as(own))  # whole frequency rows: FreqMix, never a CutMix box
    with pytest.raises(ConfigError):
        BatchMixChoice([FreqMix()], weights=[1.0, 2.0])


def test_mask_fill_mean():
    x = torch.rand(4, 1, 32, 50, generator=gen())
    y = TimeMask(max_fraction=0.5, fill="mean")(x, generator=gen(1))
    changed = y != x
    for i in range(4):
        if changed[i].any():
            assert torch.allclose(y[i][changed[i]], x[i].mean())


@pytest.mark.parametrize("t", [10, 11])
def test_temporal_shuffle_swaps_halves(t):
    x = frame_index_batch(32, 3, t)
    y = TemporalShuffle(p=0.5)(x, generator=gen())
    h = t // 2
    swapped = torch.cat([x[..., h:], x[..., :h]], dim=-1)
    n_swapped = 0
    for i in range(32):
        assert torch.equal(torch.sort(y[i, 0, 0]).values, x[i, 0, 0])  # a permutation
        same, sw = torch.equal(y[i], x[i]), torch.equal(y[i], swapped[i])
        assert same or sw
        n_swapped += sw
    assert 0 < n_swapped < 32


# --------------------------------------------------------------------------- mixing


def partner_of(y_soft: torch.Tensor, i: int) -> int | None:
    """With labels = arange(B), the partner is the other class with weight (None: mixed with itself)."""
    others = [k for k in torch.nonzero(y_soft[i] > 0).flatten().tolist() if k != i]
    return others[0] if others else None


def test_mixup_convex_combination_and_soft_targets():
    b = 16
    x = torch.randn(b, 1, 8, 20, generator=gen())
    xm, ym = Mixup(alpha=0.4)(x, torch.arange(b), generator=gen(1), num_classes=b)
    assert torch.allclose(ym.sum(dim=1), torch.ones(b))
    for i in range(b):
        j = partner_of(ym, i)
        if j is None:
            assert torch.allclose(xm[i], x[i])
            continue
        lam = ym[i, i]
        assert torch.allclose(ym[i, j], 1 - lam)
        assert torch.allclose(xm[i], lam * x[i] + (1 - lam) * x[j], atol=1e-6)


def test_mixup_with_crop_crops_partners_independently():
    b, t, crop = 8, 461, 400
    # row f of example b carries (frame index + 1) only when f == b: the mix keeps both crops apart
    x = torch.zeros(b, 1, b, t)
    for i in range(b):
        x[i, 0, i] = torch.arange(1, t + 1, dtype=torch.float32)
    mix = MixupWithCrop(alpha=1.0, crop_frames=crop)
    xm, ym = mix(x, torch.arange(b), generator=gen(4), num_classes=b)
    assert xm.shape == (b, 1, b, crop)
    assert torch.allclose(ym.sum(dim=1), torch.ones(b))
    differ = 0
    for i in range(b):
        j = partner_of(ym, i)
        if j is None:
            continue
        rows = {}
        for k, w in ((i, ym[i, i]), (j, ym[i, j])):
            r = xm[i, 0, k].double()
            step = r[1] - r[0]
            assert float(step) == pytest.approx(float(w), rel=1e-4)  # weight of the slope = mixing weight
            start = float(r[0] / step) - 1
            assert start == pytest.approx(round(start), abs=1e-3) and 0 <= round(start) <= t - crop
            assert torch.allclose(r, step * (round(start) + 1 + torch.arange(crop, dtype=torch.float64)), rtol=1e-4)
            rows[k] = round(start)
        differ += rows[i] != rows[j]
    assert differ > 0


def test_freqmix_label_weight_is_band_share():
    b, f, t = 32, 64, 10
    x = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1).expand(b, 2, f, t).clone()
    xm, ym = FreqMix(alpha=1.0)(x, torch.arange(b), generator=gen(), num_classes=b)
    assert torch.allclose(ym.sum(dim=1), torch.ones(b))
    clipped = 0
    for i in range(b):
        own_rows = (xm[i, 0, :, 0] == i)
        assert torch.equal(xm[i] == i, own_rows.view(1, f, 1).expand(2, f, t))  # whole rows, all channels
        if partner_of(ym, i) is None:
            continue
        idx = torch.nonzero(own_rows).flatten()
        if len(idx):
            assert int(idx[-1] - idx[0] + 1) == len(idx)  # one contiguous band
            clipped += int(idx[-1]) == f - 1
        assert float(ym[i, i]) == pytest.approx(len(idx) / f)
    assert clipped > 0  # the band-edge case did occur and still matched


def test_cutmix_label_weight_is_area_share():
    b, f, t = 32, 40, 60
    x = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1).expand(b, 1, f, t).clone()
    xm, ym = CutMix(alpha=1.0)(x, torch.arange(b), generator=gen(), num_classes=b)
    assert torch.allclose(ym.sum(dim=1), torch.ones(b))
    for i in range(b):
        j = partner_of(ym, i)
        if j is None:
            continue
        box = xm[i, 0] == j
        assert torch.equal(box | (xm[i, 0] == i), torch.ones(f, t, dtype=torch.bool))
        rows, cols = box.any(dim=1), box.any(dim=0)
        assert int(box.sum()) == int(rows.sum()) * int(cols.sum())  # a rectangle
        assert float(ym[i, j]) == pytest.approx(float(box.float().mean()), abs=1e-6)


def test_freq_mixstyle_mixes_per_frequency_statistics():
    x = torch.randn(2, 2, 16, 50, generator=gen()) * torch.linspace(0.5, 3, 16).view(1, 1, 16, 1) + torch.linspace(-2, 2, 16).view(1, 1, 16, 1)
    x[1] = 2 * x[1] + 1
    labels = torch.tensor([0, 1])
    mix = FreqMixStyle(alpha=0.5, p=1.0)
    for seed in range(20):  # with two examples the partner permutation is the identity half the time
        xm, ym = mix(x, labels, generator=gen(seed), num_classes=3)
        if not torch.allclose(xm, x, atol=1e-4):
            break
    else:
        pytest.fail("freq_mixstyle never changed the batch")
    assert torch.equal(ym, one_hot(labels, 3))
    mu, sd = x.mean(dim=(1, 3)), x.var(dim=(1, 3)).add(1e-6).sqrt()
    mu_o, sd_o = xm.mean(dim=(1, 3)), xm.var(dim=(1, 3)).add(1e-6).sqrt()
    for i, j in ((0, 1), (1, 0)):
        lam = (mu_o[i] - mu[j]) / (mu[i] - mu[j])
        assert torch.allclose(lam, lam[0].expand_as(lam), atol=1e-4)  # one lambda for every frequency
        assert torch.allclose(sd_o[i], lam[0] * sd[i] + (1 - lam[0]) * sd[j], atol=1e-4)
    x2 = torch.randn(4, 1, 8, 10)
    assert torch.equal(FreqMixStyle(p=0.0)(x2, torch.zeros(4, dtype=torch.long), num_classes=2)[0], x2)


def test_mix_probability_zero_is_identity():
    x = torch.randn(8, 1, 16, 20, generator=gen())
    labels = torch.arange(8) % 3
    for mix in (Mixup(p=0.0), FreqMix(p=0.0), CutMix(p=0.0)):
        xm, ym = mix(x, labels, generator=gen(), num_classes=3)
        assert torch.equal(xm, x) and torch.equal(ym, one_hot(labels, 3))


# --------------------------------------------------------------------------- builders


def test_builders_and_config_errors():
    spec = build_spec_augment([{"name": "time_crop", "frames": 30}, {"name": "time_mask"},
                               {"name": "freq_mask", "max_fraction": 0.1}, {"name": "temporal_shuffle"}])
    assert spec(torch.randn(4, 1, 16, 40), generator=gen()).shape == (4, 1, 16, 30)
    assert len(build_waveform_augment(None)) == 0
    assert build_batch_mix(None) is None
    mix = build_batch_mix({"name": "mixup_crop", "alpha": 0.2, "crop_frames": 30})
    xm, ym = mix(torch.randn(4, 1, 16, 40), torch.tensor([0, 1, 2, 0]), generator=gen(), num_classes=3)
    assert xm.shape == (4, 1, 16, 30) and torch.allclose(ym.sum(1), torch.ones(4))
    both = build_batch_mix([{"name": "freqmix"}, {"name": "mixup", "alpha": 0.4}])
    assert torch.allclose(both(torch.randn(4, 1, 16, 40), torch.tensor([0, 1, 2, 0]), num_classes=3)[1].sum(1), torch.ones(4))
    same = build_batch_mix({"name": "mixup", "alpha": 0.2, "crop_frames": 30})  # mixup with crop_frames = mixup_crop
    x, lab = torch.randn(4, 1, 16, 40, generator=gen(3)), torch.tensor([0, 1, 2, 0])
    assert torch.equal(same(x, lab, generator=gen(), num_classes=3)[0], mix(x, lab, generator=gen(), num_classes=3)[0])
    masked = build_spec_augment([{"name": "spec_mask", "time_fraction": 0.1, "freq_fraction": 0.1}])(
        torch.ones(8, 1, 50, 100), generator=gen())
    cols, rows = (masked == 0).all(dim=2).sum(dim=-1), (masked == 0).all(dim=3).sum(dim=-1)  # masked frames, bins
    assert cols.max() <= 10 and rows.max() <= 5 and cols.max() > 0 and rows.max() > 0
    assert torch.equal(masked == 0, ((masked == 0).all(dim=2, keepdim=True) | (masked == 0).all(dim=3, keepdim=True)))
    with pytest.raises(ConfigError):
        build_waveform_augment([{"name": "reverb"}])
    with pytest.raises(ConfigError):
        build_batch_mix({"name": "choice", "choices": [{"name": "mixup"}], "p": 0.5})
    with pytest.raises(ConfigError):
        build_spec_augment([{"name": "time_mask", "width": 3}])
    with pytest.raises(ConfigError):
        build_batch_mix({"name": "mixup", "alpha": -1})
    with pytest.raises(ConfigError):
        build_waveform_augment([{"name": "volume", "curves": ["square"]}])
