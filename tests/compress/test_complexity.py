"""Complexity accounting: parameters, storage, MACs in both conventions, challenge verdicts."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.utils.prune as prune
from torch.utils.flop_counter import FlopCounterMode

from asclab.compress.complexity import (
    CHALLENGE_LIMITS,
    complexity_report,
    count_macs,
    count_nonzero_params,
    count_params,
    default_input_shape,
    format_report,
    param_bytes,
)
from asclab.errors import ConfigError
from asclab.features.config import FeatureConfig
from asclab.models import create_model
from asclab.models.layers import SharedResidualBlock

CP_MOBILE_INPUT = (1, 1, 256, 65)  # 1 s at 32 kHz, hop 500, 256 mel bins (DCASE 2024 baseline)


def tiny() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, bias=True),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )


def test_param_counts_and_storage():
    model = tiny()
    n = 4 * 2 * 9 + 4 + 2 * 4 + 4 * 3 + 3
    assert count_params(model) == n
    assert param_bytes(model, 32) == 4 * n and param_bytes(model, 16) == 2 * n and param_bytes(model, 8) == n
    assert param_bytes(model, 4) == (4 * n + 7) // 8
    nz = count_nonzero_params(model)
    assert nz == sum(int((p != 0).sum()) for p in model.parameters())
    assert param_bytes(model, 16, nonzero=True) == 2 * nz
    with pytest.raises(ConfigError):
        param_bytes(model, 0)


def test_shared_parameters_are_counted_once():
    lin = nn.Linear(5, 5)
    model = nn.Sequential(lin, nn.ReLU(), lin)
    assert count_params(model) == 30
    # ...but the MACs count every call
    assert count_macs(model, (2, 5)) == 2 * 2 * 25


def test_nonzero_count_drops_when_weights_are_zeroed():
    model = create_model("cp_mobile", in_chans=1)
    before = count_nonzero_params(model)
    conv = model.stages[0].block[0][0]
    with torch.no_grad():
        conv.weight[: conv.weight.shape[0] // 2] = 0
    assert before - count_nonzero_params(model) == conv.weight.numel() // 2
    assert count_params(model) == 61_148


def test_nonzero_count_sees_pruning_masks():
    model = tiny()
    conv = model[0]
    prune.l1_unstructured(conv, "weight", amount=0.5)  # weight_orig stays dense, weight_mask holds the zeros
    masked = int((conv.weight_mask == 0).sum())
    assert masked == 36
    assert count_params(model) == 4 * 2 * 9 + 4 + 8 + 15
    assert count_nonzero_params(model) == count_nonzero_params(tiny()) - masked


def test_mac_conventions_on_a_hand_counted_model():
    model = tiny()
    h = w = 8
    conv = 4 * 2 * 9 * h * w
    assert count_macs(model, (1, 2, h, w), "conv_linear") == conv + 4 * 3
    # nessi: conv (weights + bias) per output position, BN 2 per channel, Linear weights + bias
    assert count_macs(model, (1, 2, h, w), "nessi") == (4 * 2 * 9 + 4) * h * w + 2 * 4 + (12 + 3)
    assert count_macs(model, (3, 2, h, w), "nessi") == 3 * count_macs(model, (1, 2, h, w), "nessi")
    with pytest.raises(ConfigError):
        count_macs(model, (1, 2, h, w), "flops")


def test_cp_mobile_macs_match_the_official_figure():
    model = create_model("cp_mobile", in_chans=1)
    assert count_macs(model, CP_MOBILE_INPUT, "nessi") == 29_419_156
    # Gao & Lee 2024 sec. 2.2: hop 472 gives 68 frames and "29.43 MMACs"
    assert round(count_macs(model, (1, 1, 256, 68), "nessi") / 1e6, 2) == 29.43


SMALL_INPUTS = {
    "cp_mobile": (1, 1, 256, 65),
    "mobilenetv2_small": (1, 3, 128, 100),
    "cp_resnet": (1, 3, 128, 100),
    "shared_resnet_ssn": (1, 2, 64, 40),
    "two_path_resnet": (1, 6, 128, 24),
}


@pytest.mark.parametrize("name", sorted(SMALL_INPUTS))
def test_conv_linear_macs_are_half_the_flop_counter(name):
    shape = SMALL_INPUTS[name]
    model = create_model(name, in_chans=shape[1]).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(shape))
    assert counter.get_total_flops() == 2 * count_macs(model, shape, "conv_linear")


@pytest.mark.parametrize("name", sorted(SMALL_INPUTS))
def test_nessi_macs_equal_torchinfo(name):
    torchinfo = pytest.importorskip("torchinfo", reason="torchinfo not installed (optional cross-check)")
    shape = SMALL_INPUTS[name]
    model = create_model(name, in_chans=shape[1])
    stats = torchinfo.summary(model, input_size=shape, verbose=0)
    assert count_macs(model, shape, "nessi") == stats.total_mult_adds


def test_nessi_macs_of_a_pruned_model_equal_torchinfo():
    torchinfo = pytest.importorskip("torchinfo", reason="torchinfo not installed (optional cross-check)")
    model = create_model("cp_mobile", in_chans=1)
    convs = [(m, "weight") for m in model.modules() if isinstance(m, nn.Conv2d)]
    prune.global_unstructured(convs, pruning_method=prune.L1Unstructured, amount=0.3)
    ours = count_macs(model, CP_MOBILE_INPUT, "nessi")
    assert ours == torchinfo.summary(model, input_size=CP_MOBILE_INPUT, verbose=0).total_mult_adds
    assert ours < 29_419_156


def test_shared_block_macs_count_every_repetition():
    conv_macs = {n: count_macs(SharedResidualBlock(8, repeats=n), (1, 8, 4, 4)) for n in (1, 3)}
    assert conv_macs[3] == 3 * conv_macs[1] == 3 * 2 * 8 * 8 * 16


def test_count_macs_keeps_training_mode_and_accepts_fp16_weights():
    model = tiny().train()
    count_macs(model, (1, 2, 8, 8))
    assert model.training
    half = tiny().half()
    assert count_macs(half, (1, 2, 8, 8), "nessi") == count_macs(tiny(), (1, 2, 8, 8), "nessi")
    assert next(half.parameters()).dtype == torch.float16


@pytest.mark.parametrize(
    "cfg, seconds",
    [
        (dict(sample_rate=32000, n_fft=4096, hop_length=500, n_mels=256), 1.0),
        (dict(sample_rate=44100, n_fft=2048, hop_length=1024), 10.0),
        (dict(sample_rate=22050, n_fft=2048, hop_length=512, center=False), 2.5),
    ],
)
def test_default_input_shape_counts_frames_like_librosa(cfg, seconds):
    librosa = pytest.importorskip("librosa")
    fc = FeatureConfig(**cfg)
    n = int(round(seconds * fc.sample_rate))
    frames = librosa.stft(np.zeros(n, dtype=np.float32), n_fft=fc.n_fft, hop_length=fc.hop_length,
                          center=fc.center).shape[1]
    assert default_input_shape(fc, seconds) == (1, fc.in_chans, fc.n_mels, frames)


def test_default_input_shape_matches_the_2019_paper():
    # McDonnell & Gao 2019 sec. 3.1: 469 (48 kHz) / 431 (44.1 kHz) frames, 461 / 423 after unpadded deltas
    # (the authors' code: width-5 deltas, each pass losing 4 frames)
    task1a = FeatureConfig(sample_rate=48000, deltas=True, delta_width=5, delta_padding=False, channels="stereo")
    task1b = FeatureConfig(sample_rate=44100, deltas=True, delta_width=5, delta_padding=False)
    assert default_input_shape(task1a, 10.0) == (1, 6, 128, 461)
    assert default_input_shape(task1b, 10.0) == (1, 3, 128, 423)
    wide = FeatureConfig(sample_rate=48000, deltas=True, delta_width=9, delta_padding=False)
    assert default_input_shape(wide, 10.0) == (1, 3, 128, 469 - 16)  # two unpadded width-9 passes
    assert default_input_shape(FeatureConfig(sample_rate=44100), 10.0) == (1, 1, 128, 431)


def test_challenge_limits_table():
    limits = {lim.key: lim for lim in CHALLENGE_LIMITS}
    assert limits["dcase2020_1b"].max_param_bytes == 500 * 1024 and limits["dcase2020_1b"].nonzero_only
    assert limits["dcase2021_1a"].max_param_bytes == 131_072 and limits["dcase2021_1a"].nonzero_only
    late = limits["dcase2022_2025_1"]
    assert late.max_macs == 30_000_000 and not late.nonzero_only and late.max_param_bytes == 128_000
    assert all(lim.source for lim in CHALLENGE_LIMITS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        late.max_macs = 1


def test_report_verdicts_follow_precision_and_macs():
    model = create_model("cp_mobile", in_chans=1)
    fp16 = complexity_report(model, CP_MOBILE_INPUT, bits=16)
    fp32 = complexity_report(model, CP_MOBILE_INPUT, bits=32)
    json.dumps(fp16)  # JSON-ready
    assert fp16["params"] == 61_148 and fp16["macs"]["nessi"] == 29_419_156
    assert fp16["bytes"] == {"fp32": 4 * 61_148, "fp16": 2 * 61_148, "int8": 61_148}
    late16, late32 = fp16["challenges"]["dcase2022_2025_1"], fp32["challenges"]["dcase2022_2025_1"]
    assert late16["pass"] and late16["margin_bytes"] == 128_000 - 2 * 61_148
    assert late16["margin_macs"] == 30_000_000 - 29_419_156
    assert not late32["pass"] and late32["margin_bytes"] < 0
    assert late32["max_bits"] == 16  # 128,000 bytes hold 61,148 parameters at up to 16 bits
    # the same model on a 2-s clip breaks the MAC limit
    long = complexity_report(model, (1, 1, 256, 129), bits=16)["challenges"]["dcase2022_2025_1"]
    assert long["margin_bytes"] > 0 and long["margin_macs"] < 0 and not long["pass"]


def test_report_nonzero_rules_reward_pruning():
    model = create_model("shared_resnet_ssn", num_classes=3, in_chans=2)
    shape = (1, 2, 64, 16)
    assert not complexity_report(model, shape, bits=16)["challenges"]["dcase2020_1b"]["pass"]
    convs = [(m, "weight") for m in model.modules() if isinstance(m, nn.Conv2d)]
    prune.global_unstructured(convs, pruning_method=prune.L1Unstructured, amount=0.6)  # QTI 2020 sec. 5.1
    rep = complexity_report(model, shape, bits=16)
    assert rep["challenges"]["dcase2020_1b"]["pass"]  # 491 KB in the report's Table 4
    assert rep["nonzero_bytes"]["fp16"] <= 500 * 1024 < rep["bytes"]["fp16"]


def test_format_report_table():
    reps = {name: complexity_report(create_model(name, in_chans=s[1]), s, bits=16)
            for name, s in (("cp_mobile", CP_MOBILE_INPUT), ("cp_resnet", (1, 3, 128, 44)))}
    text = format_report(reps)
    lines = text.splitlines()
    assert lines[0].split()[0] == "model" and "dcase2021_1a" in lines[0]
    assert lines[2].startswith("cp_mobile") and "61,148" in lines[2] and "29,419,156" in lines[2]
    assert "ok" in lines[2] and any("cp_resnet" in line for line in lines)


# --------------------------------------------------------------------------- each model at its paper's input


def test_complexity_cp_mobile_prints_the_official_macs(capsys, one_torch_thread):
    from asclab.cli import main

    assert main(["complexity", "cp_mobile"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("cp_mobile "))
    assert "29,419,156" in row and "1x256x65" in row


def test_paper_inputs_agree_with_the_papers_recipes():
    from asclab.compress.paper_inputs import PAPER_INPUTS
    from asclab.config import list_recipes, load_recipe
    from asclab.models import list_models

    assert set(PAPER_INPUTS) <= set(list_models())
    assert PAPER_INPUTS["two_path_resnet"].shape == (6, 128, 461)  # McDonnell & Gao 2019 sec. 3.1, task 1a
    assert PAPER_INPUTS["two_path_resnet_2020"].shape == (3, 128, 423)  # Gao & McDonnell 2020 sec. 2.1
    assert PAPER_INPUTS["mobilenetv2_small"].shape == (3, 128, 431)  # Horvath et al. 2021 Table 1
    for name, paper in PAPER_INPUTS.items():
        if paper.recipe is None:
            continue
        assert paper.recipe in list_recipes(), name
        r = load_recipe(paper.recipe)
        assert r["model"]["name"] == name
        shape = default_input_shape(FeatureConfig.from_dict(r["features"]), float(r["data"]["duration"]))
        assert shape == (1, *paper.shape), name


def test_complexity_targets_measure_models_at_their_paper_input(one_torch_thread):
    from asclab.workflows.complexity import complexity_targets
    from asclab.config import load_recipe

    reps = complexity_targets(["two_path_resnet_2020", "shared_resnet_ssn", "quickstart"])
    tp = reps["two_path_resnet_2020"]
    assert tp["input_shape"] == [1, 3, 128, 423] and tp["params"] == 4_311_732 and "2020" in tp["input_source"]
    qti = reps["shared_resnet_ssn"]
    assert qti["input_shape"] == [1, 2, 256, 469] and qti["params"] == 601_862  # 3 classes (QTI Table 4: 601 K)
    quick = load_recipe("quickstart")  # a recipe: one clip of its data.duration
    want = default_input_shape(FeatureConfig.from_dict(quick["features"]), float(quick["data"]["duration"]))
    assert reps["quickstart"]["input_shape"] == list(want) and "input_source" not in reps["quickstart"]


@pytest.mark.parametrize("width", [5, 9])
def test_default_input_shape_equals_the_extractors_output_with_unpadded_deltas(width, one_torch_thread):
    from asclab.features import FeatureExtractor

    fc = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=160, n_mels=40, deltas=True,
                       delta_width=width, delta_padding=False)
    x = FeatureExtractor(fc)(torch.zeros(1, 1, 16000))
    assert default_input_shape(fc, 1.0) == tuple(x.shape)
