"""``asclab evaluate --precision fp16``: the network runs in float16 arithmetic and the
accuracy change against float32 is reported (QTI 2020 sec. 5, Horvath et al. 2021 sec. 5.1)."""
from __future__ import annotations

import json

import pytest
import torch

from asclab.cli import main
from asclab.data.synth import make_synthetic_dataset
from asclab.evaluate.inference import Predictor
from asclab.evaluate.precision import at_precision
from asclab.features.config import FeatureConfig
from asclab.models import create_model
from asclab.train.checkpoint import ModelFile, save_model_file

FEATURES = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=64)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A SYNTHETIC labelled test split (90 one-second clips) and an untrained CP-Mobile model file."""
    tmp = tmp_path_factory.mktemp("precision")
    synth = make_synthetic_dataset(tmp / "synth", n_per_class_device=1, n_test_per_class_device=1,
                                   seconds=1.0, sample_rate=16000, seed=3)
    torch.manual_seed(0)
    model = create_model("cp_mobile", num_classes=len(synth.classes), in_chans=1)
    mf = ModelFile(state_dict=model.state_dict(), classes=synth.classes, features=FEATURES.to_dict(),
                   model={"name": "cp_mobile"}, recipe={}, duration=1.0)
    ckpt = save_model_file(mf, tmp / "run" / "model.ckpt")
    return synth.root, ckpt


def test_fp16_network_computes_in_half_precision(tiny_run, one_torch_thread):
    _, ckpt = tiny_run
    pred = Predictor.load(ckpt)
    half = at_precision(pred, "fp16")
    assert pred.precision == "fp32" and next(pred.model.parameters()).dtype == torch.float32  # original kept
    dtypes = []
    for m in half.model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(lambda mod, i, o: dtypes.append((i[0].dtype, o.dtype)))
    waves = torch.randn(2, 1, 16000) * 0.1
    logits = half.logits(waves)
    assert dtypes and set(dtypes) == {(torch.float16, torch.float16)}  # every convolution in and out fp16
    assert logits.dtype == torch.float32
    diff = (logits - pred.logits(waves)).abs().max().item()
    assert 0 < diff < 0.1  # rounded, not the same numbers, and close


def test_evaluate_fp16_reports_the_change_against_fp32(tiny_run, tmp_path, capsys, one_torch_thread):
    root, ckpt = tiny_run
    assert main(["evaluate", str(ckpt), "--data", str(root), "--out", str(tmp_path / "fp32"), "--quiet"]) == 0
    fp32 = json.loads((tmp_path / "fp32" / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", str(ckpt), "--data", str(root), "--out", str(tmp_path / "fp16"),
                 "--precision", "fp16", "--quiet"]) == 0
    out = capsys.readouterr().out
    fp16 = json.loads((tmp_path / "fp16" / "metrics.json").read_text())
    change = fp16["precision"]
    assert fp32["precision"] == {"precision": "fp32"} and change["precision"] == "fp16"
    assert change["fp32_accuracy"] == pytest.approx(fp32["accuracy"])
    assert change["fp32_macro_accuracy"] == pytest.approx(fp32["macro_accuracy"])
    assert change["accuracy"] == pytest.approx(fp16["accuracy"])
    assert change["accuracy_change"] == pytest.approx(fp16["accuracy"] - fp32["accuracy"])
    assert change["macro_accuracy_change"] == pytest.approx(fp16["macro_accuracy"] - fp32["macro_accuracy"])
    assert 0.9 <= change["top1_agreement"] <= 1.0 and 0 < change["max_abs_prob_diff"] < 0.05
    assert "fp16 arithmetic: accuracy" in out and "vs fp32" in out


def test_unknown_precision_is_refused(tiny_run, capsys):
    root, ckpt = tiny_run
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", str(ckpt), "--data", str(root), "--precision", "int4"])
    assert exc.value.code == 2
