"""The DCASE 2024 task 1 baseline (CPJKU dcase2024_task1_baseline) and Gao & Lee 2024's use of it.

Each mechanism the baseline relies on is checked against its definition:
AdamW's decoupled weight decay on every parameter, the warm-up counted in
optimiser steps, the +-0.1 s waveform roll, frequency masking of the mel power
before log(x + 1e-5), reflect padding; and the recipes against the baseline's values.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from asclab.augment import FreqMask, TimeRoll, build_mel_power_augment, build_waveform_augment
from asclab.config import load_recipe
from asclab.errors import ConfigError
from asclab.features import FeatureExtractor
from asclab.features.config import FeatureConfig
from asclab.train.data import needs_waveforms
from asclab.optim.optimizers import build_optimizer
from asclab.optim.schedules import build_scheduler

from conftest import shared_data

LOG_EPS = math.log(1e-5)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))


def _one_step_without_gradient(opt: torch.optim.Optimizer, net: nn.Module) -> None:
    """An optimiser step whose loss gradient is exactly zero: only weight decay moves a weight."""
    opt.zero_grad()
    (0.0 * sum(p.sum() for p in net.parameters())).backward()
    opt.step()


# --------------------------------------------------------------------------- AdamW


def test_adamw_weight_decay_is_decoupled_and_decay_all_reaches_biases_and_batchnorm():
    lr, wd = 0.005, 1e-4
    net = _net()
    before = [p.detach().clone() for p in net.parameters()]
    opt = build_optimizer(net, {"name": "adamw", "lr": lr, "weight_decay": wd, "decay_all": True})
    assert isinstance(opt, torch.optim.AdamW)
    _one_step_without_gradient(opt, net)
    # Decoupled: w <- w (1 - lr wd) and nothing else (Adam's moments stay 0), for every parameter.
    for b, p in zip(before, net.parameters()):
        torch.testing.assert_close(p.detach(), b * (1 - lr * wd), rtol=0, atol=1e-12)


def test_adamw_default_groups_spare_biases_and_norms():
    lr, wd = 0.005, 1e-4
    net = _net()
    conv_w, conv_b, bn_w, bn_b = (p.detach().clone() for p in net.parameters())
    opt = build_optimizer(net, {"name": "adamw", "lr": lr, "weight_decay": wd})
    _one_step_without_gradient(opt, net)
    torch.testing.assert_close(net[0].weight.detach(), conv_w * (1 - lr * wd), rtol=0, atol=1e-12)
    assert torch.equal(net[0].bias.detach(), conv_b) and torch.equal(net[1].weight.detach(), bn_w)
    assert torch.equal(net[1].bias.detach(), bn_b)


def test_adam_with_weight_decay_is_l2_not_decoupled():
    """Adam adds wd * w to the gradient, which its normalisation turns into a step of ~lr per weight."""
    lr, wd = 0.005, 1e-4
    net = _net()
    w0 = net[0].weight.detach().clone()
    opt = build_optimizer(net, {"name": "adam", "lr": lr, "weight_decay": wd})
    _one_step_without_gradient(opt, net)
    step = (w0 - net[0].weight.detach()).abs()
    g = wd * w0.abs()  # the L2 gradient; at step 1 Adam moves by lr g / (g + eps)
    torch.testing.assert_close(step, lr * g / (g + 1e-8), rtol=1e-4, atol=1e-9)
    assert (step > 100 * lr * wd * w0.abs().max()).all()  # far from the decoupled step


def test_decay_all_and_decay_conv_only_conflict():
    with pytest.raises(ConfigError, match="decay_conv_only or decay_all"):
        build_optimizer(_net(), {"name": "adamw", "lr": 1e-3, "decay_all": True, "decay_conv_only": True})


# --------------------------------------------------------------------------- warm-up in steps


def _transformers_cosine_with_warmup(step: int, peak: float, warmup: int, total: int) -> float:
    """``transformers.get_cosine_schedule_with_warmup`` (num_cycles 0.5) at optimiser step ``step``."""
    if step < warmup:
        return peak * step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return peak * max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def _lrs(cfg: dict, peak: float, epochs: int, steps_per_epoch: float, data_steps: float | None = None,
         n: int | None = None) -> list[float]:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=peak)
    sched = build_scheduler(opt, cfg, epochs=epochs, steps_per_epoch=steps_per_epoch, data_steps_per_epoch=data_steps)
    out = []
    for _ in range(n if n is not None else int(round(epochs * steps_per_epoch))):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


BASELINE_SCHEDULE = {"name": "cosine", "warmup_steps": 2000, "warmup_start_lr": 0.0, "lr_min": 0.0}


@pytest.mark.parametrize("steps_per_epoch", [28, 137, 546])  # split5 / split25 / split100 at batch 256
def test_warmup_counts_optimiser_steps_like_the_baseline(steps_per_epoch):
    epochs, peak = 150, 0.005
    total = epochs * steps_per_epoch
    lrs = _lrs(BASELINE_SCHEDULE, peak, epochs, steps_per_epoch)
    for step in (0, 1, 999, 1000, 1999, 2000, 2001, total // 2, total - 1):
        assert lrs[step] == pytest.approx(_transformers_cosine_with_warmup(step, peak, 2000, total), abs=1e-12), step
    assert max(lrs) == pytest.approx(peak) and lrs.index(max(lrs)) == 2000  # the peak after exactly 2000 steps


def test_warmup_steps_span_more_epochs_on_a_smaller_split_and_compress_with_a_capped_run():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.01)
    small = build_scheduler(opt, BASELINE_SCHEDULE, epochs=150, steps_per_epoch=28)
    large = build_scheduler(opt, BASELINE_SCHEDULE, epochs=150, steps_per_epoch=546)
    assert small.warmup_epochs == pytest.approx(2000 / 28) and large.warmup_epochs == pytest.approx(2000 / 546)
    # epochs_cap=1 of a 150-epoch recipe: the schedule walks all 150 "epochs" in 546 real steps,
    # so the warm-up takes the same share of the run (2000 / (150 * 546)).
    lrs = _lrs(BASELINE_SCHEDULE, 0.01, 150, 546 / 150, data_steps=546, n=546)
    peak_step = lrs.index(max(lrs))
    assert abs(peak_step - 2000 / 150) <= 1


def test_warmup_steps_errors():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.01)
    with pytest.raises(ConfigError, match="warmup_steps or warmup_epochs"):
        build_scheduler(opt, {"name": "cosine", "warmup_steps": 10, "warmup_epochs": 1}, 10, 5)
    with pytest.raises(ConfigError, match="no warm-up"):
        build_scheduler(opt, {"name": "linear_decay", "warmup_steps": 10}, 10, 5)
    with pytest.raises(ConfigError, match="non-negative"):
        build_scheduler(opt, {"name": "cosine", "warmup_steps": -1}, 10, 5)


def test_warmup_on_the_real_dcase2024_split5_spans_71_epochs_at_batch_256():
    """The real split5.csv has 6,980 clips: 28 steps per epoch at batch 256, so 2000 steps ~ 71 epochs."""
    path = shared_data("tau-meta", "dcase2024-splits", "split5.csv")
    clips = len(path.read_text().splitlines()) - 1
    steps = math.ceil(clips / 256)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.005)
    sched = build_scheduler(opt, BASELINE_SCHEDULE, epochs=150, steps_per_epoch=steps)
    assert clips == 6980 and steps == 28 and sched.warmup_epochs == pytest.approx(2000 / 28)


# --------------------------------------------------------------------------- roll


def _recovered_shifts(rolled: torch.Tensor, n: int) -> torch.Tensor:
    """For clips that were ``arange(n)`` rolled by s: y[0] = (-s) mod n, signed back to (-n/2, n/2]."""
    s = torch.remainder(-rolled[:, 0, 0].round().long(), n)
    return torch.where(s > n // 2, s - n, s)


def test_roll_shifts_uniformly_within_plus_minus_a_tenth_of_a_second():
    sr, n, b = 100, 50, 4000  # 0.1 s at 100 Hz: shifts in {-10, ..., 10}
    x = torch.arange(n, dtype=torch.float32).expand(b, 2, n).contiguous()
    roll = build_waveform_augment([{"name": "roll", "max_seconds": 0.1}], sample_rate=sr)
    y = roll(x, generator=torch.Generator().manual_seed(0))
    shifts = _recovered_shifts(y, n)
    for i in range(0, b, 397):  # each clip is torch.roll of the input by its own shift, both channels alike
        assert torch.equal(y[i], torch.roll(x[i], int(shifts[i]), dims=-1))
    counts = torch.bincount(shifts + 10, minlength=21)
    assert counts.numel() == 21 and (counts > 0).all()  # every shift in [-10, 10], and only those
    assert counts.min() > 0.6 * b / 21 and counts.max() < 1.4 * b / 21


def test_roll_at_32k_is_3200_samples_and_p_zero_is_identity():
    roll = TimeRoll(sample_rate=32000, max_seconds=0.1)
    assert roll.max_shift == 3200
    x = torch.arange(32000, dtype=torch.float32).expand(500, 1, 32000).contiguous()
    shifts = _recovered_shifts(roll(x, torch.Generator().manual_seed(1)), 32000)
    assert shifts.abs().max() <= 3200 and shifts.abs().max() > 3000 and (shifts < 0).any() and (shifts > 0).any()
    assert torch.equal(TimeRoll(32000, 0.1, p=0.0)(x[:3]), x[:3])
    with pytest.raises(ConfigError):
        TimeRoll(32000, -0.1)


# --------------------------------------------------------------------------- masking the mel power, log eps


def _baseline_features() -> FeatureConfig:
    return FeatureConfig.from_dict(load_recipe("dcase2024_baseline")["features"])


def test_frequency_mask_before_the_log_matches_the_definition_and_differs_from_after():
    cfg = _baseline_features()
    fe = FeatureExtractor(cfg)
    torch.manual_seed(0)
    wave = 0.1 * torch.randn(4, 1, cfg.sample_rate)
    mask = FreqMask(max_width=48, continuous=True)

    out = fe(wave, mel_power_hook=lambda s: mask(s, torch.Generator().manual_seed(3)))
    # Definition (the baseline's mel_forward): log(FrequencyMasking(mel power) + 1e-5).
    power = fe.mel(wave)
    expected = torch.log(mask(power, torch.Generator().manual_seed(3)) + 1e-5)
    torch.testing.assert_close(out, expected)
    clean = fe(wave)
    masked_rows = (out != clean).all(dim=-1)  # [B, 1, M]: whole mel bins masked
    assert masked_rows.any() and torch.allclose(out[masked_rows.unsqueeze(-1).expand_as(out)],
                                                torch.tensor(LOG_EPS))
    # Masking after the log with fill 0 puts 0 (a loud value) where the baseline puts log(1e-5).
    after = mask(clean, torch.Generator().manual_seed(3))
    assert (after[masked_rows.unsqueeze(-1).expand_as(after)] == 0).all()
    assert not torch.allclose(after, out)


def test_continuous_mask_draw_is_torchaudios():
    """torchaudio mask_along_axis_iid: v ~ U[0, 48), s ~ U[0, 256 - v), bins floor(s) .. floor(s) + floor(v) - 1:
    widths 0..47 uniformly (mean 23.5), where the integer draw gives 0..48."""
    x = torch.ones(20000, 1, 256, 2)
    masked = FreqMask(max_width=48, continuous=True)(x, torch.Generator().manual_seed(0))[..., 0] == 0
    width = masked.sum(dim=(1, 2))
    counts = torch.bincount(width, minlength=48)
    assert counts.numel() == 48 and (counts > 0.7 * 20000 / 48).all()  # every width 0..47, none of 48
    assert width.double().mean() == pytest.approx(23.5, abs=0.4)
    integer = FreqMask(max_width=48)(x, torch.Generator().manual_seed(0))[..., 0] == 0
    assert integer.sum(dim=(1, 2)).max() == 48
    first = masked[:, 0].float().argmax(dim=-1)
    contiguous = masked[:, 0].float().diff(dim=-1).abs().sum(dim=-1) <= 2
    assert contiguous.all() and first.max() > 200  # one band each, anywhere in the 256 bins


def test_module_masks_the_power_only_while_training_and_trains_on_waveforms():
    from asclab.train.module import ASCModule

    recipe = load_recipe("dcase2024_baseline")
    assert needs_waveforms(recipe)  # no feature cache: the masks are drawn per batch
    module = ASCModule(recipe, classes=[f"c{i}" for i in range(10)], steps_per_epoch=546)
    torch.manual_seed(0)
    wave = 0.1 * torch.randn(8, 1, 32000)
    train, test = module.extract(wave, train=True), module.extract(wave, train=False)
    assert train.shape == test.shape == (8, 1, 256, 65)
    assert (train == torch.tensor(LOG_EPS)).any() and not (test == torch.tensor(LOG_EPS)).any()
    assert sum(p.numel() for p in module.model.parameters()) == 61148  # the baseline's README figure


def test_log_epsilon_sets_the_floor_of_the_log_scale():
    silent = torch.zeros(1, 1, 32000)
    base = _baseline_features()
    floor = FeatureExtractor(base)(silent)
    assert torch.allclose(floor, torch.tensor(LOG_EPS))
    other = FeatureExtractor(FeatureConfig.from_dict({**base.to_dict(), "log_eps": 1e-8}))(silent)
    assert torch.allclose(other, torch.tensor(math.log(1e-8)))
    torch.manual_seed(1)
    wave = 0.05 * torch.randn(2, 1, 32000)
    fe = FeatureExtractor(base)
    torch.testing.assert_close(fe(wave), torch.log(fe.mel(wave) + 1e-5))


def test_reflect_padding_changes_only_the_edge_frames():
    base = _baseline_features()
    assert base.center and base.pad_mode == "reflect"
    torch.manual_seed(2)
    wave = 0.1 * torch.randn(1, 1, 32000)
    reflect = FeatureExtractor(base)(wave)
    constant = FeatureExtractor(FeatureConfig.from_dict({**base.to_dict(), "pad_mode": "constant"}))(wave)
    edge = base.n_fft // 2 // base.hop_length + 1  # frames whose window reaches the padding
    torch.testing.assert_close(reflect[..., edge:-edge], constant[..., edge:-edge])
    assert not torch.allclose(reflect[..., 0], constant[..., 0])
    # reflect padding mirrors the signal: frame 0 of x equals frame 0 of x with its first half-window mirrored
    half = base.n_fft // 2
    mirrored = torch.cat([wave[..., 1:half + 1].flip(-1), wave], dim=-1)
    no_pad = FeatureExtractor(FeatureConfig.from_dict({**base.to_dict(), "center": False}))
    torch.testing.assert_close(no_pad(mirrored)[..., 0], reflect[..., 0], rtol=1e-4, atol=1e-4)


def test_mel_power_builder_rejects_unknown_transforms():
    assert len(build_mel_power_augment(None)) == 0
    with pytest.raises(ConfigError, match="mel power augmentation"):
        build_mel_power_augment([{"name": "time_crop", "frames": 10}])


# --------------------------------------------------------------------------- the recipes

# CPJKU dcase2024_task1_baseline (commit 9948d19): run_training.py argparse defaults, the
# torchaudio MelSpectrogram defaults it relies on, and models/baseline.py's get_model.
BASELINE = {
    ("features", "sample_rate"): 32000, ("features", "n_fft"): 4096, ("features", "win_length"): 3072,
    ("features", "hop_length"): 500, ("features", "n_mels"): 256, ("features", "fmin"): 0.0,
    ("features", "fmax"): None, ("features", "htk"): True, ("features", "mel_norm"): None,
    ("features", "center"): True, ("features", "pad_mode"): "reflect", ("features", "power"): 2.0,
    ("features", "scale"): "log", ("features", "log_eps"): 1e-5, ("features", "channels"): "mono",
    ("features", "resampler"): "sinc_hann", ("features", "mel_fb"): "torchaudio",
    ("model", "name"): "cp_mobile", ("model", "base_channels"): 32, ("model", "channels_multiplier"): 1.8,
    ("model", "expansion"): 2.1, ("model", "blocks_per_stage"): [3, 2, 1],
    ("model", "strides"): {3: [1, 2], 4: [2, 1]}, ("model", "init"): "baseline", ("loss", "name"): "ce",
    ("optim", "name"): "adamw", ("optim", "lr"): 0.005, ("optim", "weight_decay"): 1e-4,
    ("optim", "decay_all"): True, ("schedule", "name"): "cosine", ("schedule", "warmup_steps"): 2000,
    ("schedule", "lr_min"): 0.0, ("schedule", "warmup_start_lr"): 0.0,
    ("train", "epochs"): 150, ("train", "batch_size"): 256, ("train", "keep"): "last", ("train", "drop_last"): False,
    ("augment", "waveform"): [{"name": "roll", "max_seconds": 0.1, "p": 1.0}],
    ("augment", "mel_power"): [{"name": "freq_mask", "max_width": 48, "continuous": True, "fill": 0.0, "p": 1.0}],
    ("augment", "mix"): {"name": "freq_mixstyle", "alpha": 0.3, "p": 0.4, "self_partners": True},
    ("augment", "spec"): [], ("compress", "fp16"): True,
}
# What Gao & Lee 2024 state and therefore change (sec. 2.1, 2.2); the rest follows the baseline.
GAO_LEE_STATED = {("features", "hop_length"), ("loss", "name"), ("optim", "lr"), ("train", "batch_size")}


def _value(recipe: dict, key: tuple[str, str]):
    """The value the run uses: features with FeatureConfig's defaults filled in, else the recipe's."""
    if key[0] == "features":
        return FeatureConfig.from_dict(recipe["features"]).to_dict()[key[1]]
    return recipe[key[0]].get(key[1])


def test_dcase2024_baseline_recipe_is_the_baseline_value_for_value():
    r = load_recipe("dcase2024_baseline")
    wrong = {k: _value(r, k) for k, v in BASELINE.items() if _value(r, k) != v}
    assert not wrong


@pytest.mark.parametrize("split", ["split5", "split10", "split25", "split50", "split100"])
def test_gao_lee_recipes_follow_the_baseline_where_the_report_is_silent(split):
    r = load_recipe(f"gao_lee2024_{split}")
    differ = {k for k, v in BASELINE.items() if _value(r, k) != v}
    model_sizes = {k for k in BASELINE if k[0] == "model" and k[1] not in ("name", "init")}  # cp_mobile's defaults
    assert differ <= GAO_LEE_STATED | model_sizes | {("train", "keep")}
    from asclab.models import create_model

    kwargs = {k: v for k, v in r["model"].items() if k != "name"}
    assert sum(p.numel() for p in create_model("cp_mobile", num_classes=10, **kwargs).parameters()) == 61148
    assert r["features"]["hop_length"] == 472 and r["loss"] == {"name": "focal", "gamma": 2.0}
    small = split in ("split5", "split10", "split25")
    assert (r["train"]["batch_size"], r["optim"]["lr"]) == ((78, 0.005) if small else (130, 0.01))
    assert r["data"]["split"] == split


def test_baseline_initialisation_is_kaiming_normal_fan_out():
    from asclab.models import create_model

    torch.manual_seed(0)
    model = create_model("cp_mobile", num_classes=10, init="baseline")
    conv = model.stages[0].block[0][0]  # 1x1 expansion 32 -> 64: fan_out 64
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2.0 / 64), rel=0.05)
    torch.manual_seed(0)
    default = create_model("cp_mobile", num_classes=10).stages[0].block[0][0]
    assert default.weight.std().item() == pytest.approx(1.0 / math.sqrt(3 * 32), rel=0.05)  # torch: a = sqrt(5)
    with pytest.raises(ConfigError):
        create_model("cp_mobile", init="xavier")


def test_freq_mixstyle_self_partners_draw_a_plain_permutation():
    """The baseline's mixstyle pairs by torch.randperm: some clips keep their own statistics."""
    from asclab.augment import FreqMixStyle

    b = 8
    x = torch.randn(b, 1, 16, 20, generator=torch.Generator().manual_seed(0))
    x = x * torch.arange(1, b + 1).view(b, 1, 1, 1)  # distinct statistics per clip
    unchanged = 0
    for seed in range(40):
        gen = torch.Generator().manual_seed(seed)
        # alpha 50: lam ~ 0.5, so only a self-partner leaves a clip unchanged
        out, _ = FreqMixStyle(alpha=50.0, p=1.0, self_partners=True)(x, torch.arange(b), gen, num_classes=b)
        unchanged += sum(bool(torch.allclose(out[i], x[i], atol=1e-4)) for i in range(b))
    assert 15 <= unchanged <= 70  # one fixed point per random permutation on average: 40 expected


def test_training_reads_audio_with_the_recipes_resampler(tmp_path):
    """features.resampler reaches the training loader: sinc_hann (the baseline's torchaudio method), not soxr."""
    import numpy as np
    import soundfile as sf

    from asclab.data.records import Record
    from asclab.data.sinc_resample import sinc_resample_np
    from asclab.train.data import make_dataset

    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal(44100)).astype(np.float32)
    path = tmp_path / "clip-a.wav"
    sf.write(path, y, 44100, subtype="FLOAT")
    recipe = load_recipe("dcase2024_baseline")
    recs = [Record(path=path, label="c0", device="a")]
    wave = make_dataset(recs, recipe, ["c0"], ["a"], True, None, progress=False)[0]["wave"].numpy()
    expected = sinc_resample_np(y[None], 44100, 32000)[:, :32000]
    np.testing.assert_allclose(wave, expected, atol=1e-6)
    soxr_recipe = load_recipe("dcase2024_baseline", ["features.resampler=soxr"])
    other = make_dataset(recs, soxr_recipe, ["c0"], ["a"], True, None, progress=False)[0]["wave"].numpy()
    assert np.abs(other - wave).max() > 1e-4


def test_the_trainer_converts_warmup_steps_with_the_splits_steps_per_epoch():
    """ASCModule.configure_optimizers: split5 at batch 78 is 90 steps an epoch, so 2000 steps ~ 22 epochs;
    a run capped to 1 epoch keeps the same share of its steps for the warm-up."""
    from types import SimpleNamespace

    from asclab.train.module import ASCModule
    from asclab.train.stages import cap_epochs

    classes = [f"c{i}" for i in range(10)]
    full = ASCModule(load_recipe("gao_lee2024_split5"), classes)
    full._trainer = SimpleNamespace(estimated_stepping_batches=150 * 90)
    sched = full.configure_optimizers()["lr_scheduler"]["scheduler"]
    assert isinstance(full.configure_optimizers()["optimizer"], torch.optim.AdamW)
    assert sched.warmup_epochs == pytest.approx(2000 / 90) and sched.steps_per_epoch == 90
    capped = ASCModule(cap_epochs(load_recipe("gao_lee2024_split5", ["train.epochs_cap=1"])), classes)
    capped._trainer = SimpleNamespace(estimated_stepping_batches=90)
    short = capped.configure_optimizers()["lr_scheduler"]["scheduler"]
    warmup_real_steps = short.warmup_epochs * short.steps_per_epoch
    assert warmup_real_steps / 90 == pytest.approx(2000 / (150 * 90))
