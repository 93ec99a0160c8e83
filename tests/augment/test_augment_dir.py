"""Device impulse response augmentation (CPJKU 2023) against its definition."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from asclab.augment import build_waveform_augment
from asclab.augment.dir import DeviceImpulseResponse, fft_convolve, read_impulse_responses
from asclab.errors import ConfigError
from conftest import shared_data

SR = 16000


def write_irs(folder, irs: list[np.ndarray], sample_rate: int = SR):
    folder.mkdir(parents=True, exist_ok=True)
    for i, h in enumerate(irs):
        sf.write(folder / f"ir{i}.wav", np.asarray(h, np.float32), sample_rate, subtype="FLOAT")
    return folder


def noise(b: int, n: int = 4000, c: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, c, n, generator=torch.Generator().manual_seed(seed))


def test_fft_convolve_is_the_causal_part_of_numpy_full_convolution():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 1000)).astype(np.float32)
    h = rng.standard_normal((3, 257)).astype(np.float32)
    y = fft_convolve(torch.from_numpy(x), torch.from_numpy(h)).numpy()
    for b in range(3):
        for c in range(2):
            ref = np.convolve(x[b, c], h[b], mode="full")[:1000]
            np.testing.assert_allclose(y[b, c], ref, atol=1e-4)


def test_unit_impulse_leaves_audio_unchanged(tmp_path):
    h = np.zeros(300)
    h[0] = 1.0
    aug = DeviceImpulseResponse(str(write_irs(tmp_path / "irs", [h])), sample_rate=SR, p=1.0)
    x = noise(4)
    y = aug(x, devices=["a"] * 4)
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)


def test_known_response_gives_known_convolution_energy_normalised(tmp_path):
    h = np.array([0.5, -0.25, 0.0, 0.125, 2.0], dtype=np.float64)
    aug = DeviceImpulseResponse(str(write_irs(tmp_path / "irs", [h])), sample_rate=SR, p=1.0)
    x = noise(2, n=500)
    y = aug(x, devices=["a", "a"]).numpy()
    hn = h / np.sqrt((h ** 2).sum())  # normalize: energy
    for b in range(2):
        np.testing.assert_allclose(y[b, 0], np.convolve(x[b, 0].numpy(), hn)[:500], atol=1e-5)
    raw = DeviceImpulseResponse(str(tmp_path / "irs"), sample_rate=SR, p=1.0, normalize="none")
    np.testing.assert_allclose(raw(x).numpy()[0, 0], np.convolve(x[0, 0].numpy(), h)[:500], atol=1e-5)


def test_p_zero_is_identity(tmp_path):
    aug = DeviceImpulseResponse(str(write_irs(tmp_path / "irs", [np.r_[0.3, 0.7, -0.2]])), sample_rate=SR, p=0.0)
    x = noise(8)
    assert torch.equal(aug(x, devices=["a"] * 8), x)


def test_only_reference_device_clips_are_convolved(tmp_path):
    aug = DeviceImpulseResponse(str(write_irs(tmp_path / "irs", [np.r_[0.0, 1.0, 0.5]])), sample_rate=SR, p=1.0)
    x = noise(5)
    devices = ["a", "b", None, "a", "s4"]
    y = aug(x, devices=devices)
    for i, d in enumerate(devices):
        same = torch.equal(y[i], x[i])
        assert same == (d != "a"), (i, d)


def test_probability_and_choice_of_response(tmp_path):
    # two responses: a one-sample delay and a two-sample delay; p = 0.6 per clip
    d1, d2 = np.r_[0.0, 1.0], np.r_[0.0, 0.0, 1.0]
    aug = DeviceImpulseResponse(str(write_irs(tmp_path / "irs", [d1, d2])), sample_rate=SR, p=0.6)
    x = noise(2000, n=64)
    y = aug(x, generator=torch.Generator().manual_seed(3))
    unchanged = (y == x).flatten(1).all(1)
    shifted1 = torch.isclose(y[..., 1:], x[..., :-1], atol=1e-5).flatten(1).all(1)
    shifted2 = torch.isclose(y[..., 2:], x[..., :-2], atol=1e-5).flatten(1).all(1)
    assert bool((unchanged | shifted1 | shifted2).all())
    assert abs(1 - unchanged.float().mean().item() - 0.6) < 0.05
    applied = ~unchanged
    assert abs(shifted1[applied].float().mean().item() - 0.5) < 0.06


def test_responses_are_resampled_to_the_recipe_rate(tmp_path):
    h = np.zeros(441)
    h[0] = 1.0
    folder = write_irs(tmp_path / "irs", [h], sample_rate=44100)
    (out,) = read_impulse_responses(folder, 32000)
    assert len(out) == 320
    assert abs(float(np.sum(out ** 2)) - 1.0) < 1e-5


def test_built_from_a_recipe_entry(tmp_path):
    folder = write_irs(tmp_path / "irs", [np.r_[1.0]])
    aug = build_waveform_augment([{"name": "dir", "folder": str(folder), "p": 0.6}], sample_rate=SR)
    (t,) = aug.transforms
    assert isinstance(t, DeviceImpulseResponse) and t.p == 0.6 and t.devices == ["a"]
    x = noise(3)
    assert torch.allclose(aug(x, devices=["a", "b", "c"]), x, atol=1e-5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no .wav"):
        build_waveform_augment([{"name": "dir", "folder": str(tmp_path / "empty")}], sample_rate=SR)
    with pytest.raises(ConfigError, match="does not exist"):
        build_waveform_augment([{"name": "dir", "folder": str(tmp_path / "missing")}], sample_rate=SR)
    with pytest.raises(ConfigError, match="unknown key"):
        build_waveform_augment([{"name": "dir", "folder": str(folder), "prob": 0.5}], sample_rate=SR)


def test_real_micirp_responses_keep_length_and_level():
    folder = shared_data("micirp")
    aug = DeviceImpulseResponse(str(folder), sample_rate=32000, p=1.0)
    assert aug.bank.shape[0] == 66
    x = noise(16, n=32000)
    y = aug(x, generator=torch.Generator().manual_seed(0), devices=["a"] * 16)
    assert y.shape == x.shape and torch.isfinite(y).all()
    ratio_db = 10 * torch.log10(y.pow(2).mean((1, 2)) / x.pow(2).mean((1, 2)))
    assert ratio_db.abs().max() < 3.0  # unit-energy responses keep white noise near its level


def test_the_trainer_convolves_only_its_reference_device_clips(tmp_path):
    from asclab.train.module import ASCModule

    delay = np.zeros(40)
    delay[39] = 1.0  # a pure 39-sample delay: a convolved clip starts with 39 zeros
    recipe = {"name": "t", "features": {"sample_rate": SR, "n_fft": 512, "hop_length": 256, "n_mels": 16},
              "model": {"name": "cp_mobile"}, "loss": {"name": "ce"}, "optim": {"name": "adam", "lr": 1e-3},
              "schedule": {"name": "cosine"}, "train": {"epochs": 1, "batch_size": 4},
              "augment": {"waveform": [{"name": "dir", "folder": str(write_irs(tmp_path / "irs", [delay])),
                                        "p": 1.0}]}}
    module = ASCModule(recipe, ["x", "y"], devices=["a", "b", "s1"])
    seen = {}
    module.extract = lambda wave, train=False: seen.setdefault("wave", wave)
    x = noise(4, n=SR) + 1.0  # no zero samples of its own
    module.inputs({"wave": x, "device": torch.tensor([0, 1, -1, 0])}, train=True)  # a, b, unknown, a
    wave = seen["wave"]
    convolved = [bool((wave[i, 0, :39].abs() < 1e-4).all()) for i in range(4)]
    assert convolved == [True, False, False, True]
    torch.testing.assert_close(wave[0, 0, 39:], x[0, 0, :-39], atol=1e-4, rtol=0)
