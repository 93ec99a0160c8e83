"""Quantisation-aware training to int8 (asclab.compress.qat, torchao PT2E): a two-stage recipe (train, qat)
end to end on a tiny SYNTHETIC set; the model file stores int8 weights (1 byte each), reloads safely
(``weights_only``) into a rebuilt graph with identical outputs and counts 1 byte per parameter; the
converted int8 graph tracks its fake-quantised model."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from asclab.cli import main
from asclab.compress.qat import (
    convert_int8,
    float_architecture,
    is_int8,
    prepare_qat,
    quantization_info,
    rebuild_int8,
)
from asclab.config import load_recipe
from asclab.errors import ConfigError
from asclab.evaluate.inference import Predictor
from asclab.models import create_model
from asclab.train.checkpoint import load_model_file
from asclab.workflows.complexity import complexity_targets
from asclab.workflows.train import train_run

TINY = {
    "name": "tiny_qat",
    "data": {"duration": 1.0, "split": None},
    "features": {"sample_rate": 16000, "n_fft": 512, "hop_length": 256, "n_mels": 40, "scale": "log",
                 "channels": "mono"},
    "model": {"name": "cp_mobile", "base_channels": 16},
    "loss": {"name": "ce"},
    "optim": {"name": "adam", "lr": 0.005},
    "schedule": {"name": "cosine", "warmup_epochs": 0},
    "train": {"epochs": 2, "batch_size": 8, "seed": 0},
    "workflow": {"stages": [
        {"name": "float"},
        {"name": "qat", "qat": {"backend": "x86"}, "train": {"epochs": 1}, "optim": {"lr": 0.0005}},
    ]},
}


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    from asclab.data.synth import make_synthetic_dataset

    root = tmp_path_factory.mktemp("qat") / "synth"
    make_synthetic_dataset(root, n_per_class_device=1, n_test_per_class_device=1, seconds=1.0,
                           sample_rate=16000, seed=3)
    return root


@pytest.fixture(scope="module")
def qat_run(tiny_set, tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("qat_run") / "run"
    train_run(TINY, tiny_set, out, progress=False)
    return out


def test_qat_stage_writes_an_int8_model_file(qat_run):
    mf = load_model_file(qat_run / "model.ckpt")  # weights_only=True inside
    assert mf.extra["quantization"]["dtype"] == "int8"
    assert mf.extra["quantization"]["flow"] == "pt2e"
    assert not any(v.is_quantized for v in mf.state_dict.values())  # plain int8 tensors, no quantised types
    assert any(v.dtype == torch.int8 for v in mf.state_dict.values())
    pred = Predictor.load(qat_run / "model.ckpt")
    assert pred.precision == "int8" and is_int8(pred.model)
    wave = torch.randn(2, 1, 16000) * 0.1
    p = pred.probs(wave)
    assert p.shape == (2, len(mf.classes)) and torch.allclose(p.sum(1), torch.ones(2), atol=1e-5)
    assert torch.equal(torch.as_tensor(Predictor.load(qat_run / "model.ckpt").probs(wave)), torch.as_tensor(p))
    assert (qat_run / "metrics.json").exists()  # the test split was evaluated with the int8 model


def test_int8_complexity_counts_one_byte_per_parameter(qat_run, capsys):
    rep = complexity_targets([str(qat_run / "model.ckpt")])[str(qat_run / "model.ckpt")]
    fresh = create_model("cp_mobile", num_classes=rep_classes(qat_run), in_chans=1, base_channels=16)
    n = sum(p.numel() for p in fresh.parameters())
    assert rep["params"] == n and rep["bits"] == 8
    assert rep["challenges"]["dcase2022_2025_1"]["param_bytes"] == n  # 128 kB at int8 = 128,000 parameters
    assert rep["challenges"]["dcase2022_2025_1"]["max_bits"] == (128_000 * 8) // n
    assert main(["complexity", str(qat_run / "model.ckpt")]) == 0
    assert "@8" in capsys.readouterr().out


def rep_classes(run: Path) -> int:
    return len(load_model_file(run / "model.ckpt").classes)


def test_int8_model_file_is_smaller_than_float(qat_run):
    mf = load_model_file(qat_run / "model.ckpt")
    fresh = create_model("cp_mobile", num_classes=len(mf.classes), in_chans=1, base_channels=16)
    sizes = []
    for state in (mf.state_dict, fresh.state_dict()):
        buf = io.BytesIO()
        torch.save(state, buf)
        sizes.append(buf.tell())
    assert sizes[0] < 0.6 * sizes[1]
    assert sum(v.numel() for v in mf.state_dict.values() if v.dtype == torch.int8) == _weights(fresh)


def _random_cp_mobile() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("cp_mobile", num_classes=4, in_chans=1, base_channels=16).eval()
    with torch.no_grad():  # random BN statistics: outputs far from trivial
        for key, t in model.state_dict().items():
            if key.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif key.endswith("running_mean"):
                t.normal_(0.0, 0.5)
    return model


def _weights(model: torch.nn.Module) -> int:
    """Weights of the convolutions and linear layers (what int8 stores; BN folds into them)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))


@pytest.mark.parametrize("backend", ["x86", "qnnpack"])
def test_prepared_model_tracks_float_output_and_converts(backend):
    model = _random_cp_mobile()
    x = torch.randn(3, 1, 40, 63)
    prepared = prepare_qat(model, (1, 1, 40, 63), backend)
    with torch.no_grad():  # observers see data (train mode), then the fake-quantised model in eval mode
        prepared.train()(x)
        fake = prepared.eval()(x)
    int8 = convert_int8(prepared)
    ref = model(x).detach()
    got = int8(x)
    assert got.shape == ref.shape
    assert (fake - ref).abs().max() < 0.25 * ref.abs().max() + 1e-3  # fake quantisation is a small change
    # the int8 graph computes what the fake-quantised one simulated (rounding ties aside)
    assert (got - fake).abs().max() < 0.02 * fake.abs().max() + 1e-4
    assert (got.argmax(1) == fake.argmax(1)).all()
    assert float_architecture(int8) is not int8 and sum(p.numel() for p in int8.parameters()) == 0
    assert int8(torch.randn(1, 1, 40, 200)).shape == (1, 4)  # batch and time axes stay dynamic


def test_int8_state_is_one_byte_per_weight_and_reloads_weights_only():
    model = _random_cp_mobile()
    prepared = prepare_qat(model, (1, 1, 40, 63), "x86")
    x = torch.randn(4, 1, 40, 63)
    with torch.no_grad():
        prepared.train()(x)
    int8 = convert_int8(prepared)
    state = int8.state_dict()
    qbytes = sum(v.numel() * v.element_size() for v in state.values() if v.dtype == torch.int8)
    assert qbytes == _weights(model)  # 1 byte per weight
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    fresh = create_model("cp_mobile", num_classes=4, in_chans=1, base_channels=16)
    again = rebuild_int8(fresh, quantization_info(int8), loaded)
    with torch.no_grad():
        assert torch.equal(again(x), int8(x))
        assert torch.equal(again(x[:1, ..., :30]), int8(x[:1, ..., :30]))
    float_buf = io.BytesIO()
    torch.save(model.state_dict(), float_buf)
    assert buf.getbuffer().nbytes < 0.5 * float_buf.getbuffer().nbytes


def test_qat_stage_must_be_last_and_backend_checked():
    bad = {**TINY, "workflow": {"stages": [{"name": "qat", "qat": {}}, {"name": "after"}]}}
    from asclab.train.stages import stage_list
    with pytest.raises(ConfigError, match="last stage"):
        stage_list(load_recipe(bad))
    with pytest.raises(ConfigError, match="qat.backend"):
        load_recipe({**TINY, "workflow": {"stages": [{"name": "q", "qat": {"backend": "tpu"}}]}})
