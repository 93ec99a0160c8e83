"""The fast inference network (asclab.evaluate.fast_path): batch norms folded into
the convolutions, used by Predictor only while it is exact and current."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from asclab.evaluate.fast_path import TOLERANCE, fused_for_inference, onnx_network
from asclab.evaluate.inference import Predictor
from asclab.features import FeatureConfig
from asclab.models import create_model
from asclab.train.checkpoint import ModelFile, save_model_file


def _trained_looking(model: nn.Module) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, so folding has something to fold."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return model.eval()


def _model_file(tmp_path):
    torch.manual_seed(0)
    fcfg = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=64)
    model = _trained_looking(create_model("cp_mobile", num_classes=4, in_chans=1))
    mf = ModelFile(state_dict=model.state_dict(), classes=list("abcd"), features=fcfg.to_dict(),
                   model={"name": "cp_mobile"}, recipe={}, duration=1.0)
    return save_model_file(mf, tmp_path / "m.ckpt"), model


def _reference_probs(model: nn.Module, pred: Predictor, waves: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(model(pred.features(waves)), dim=1)


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_default_predict_path_equals_the_reference_model(tmp_path, one_torch_thread, monkeypatch, backend):
    """The network Predictor.load picks by default (onnxruntime, the fastest exact one) and the
    torch fallback (ASCLAB_INFERENCE=torch) give the reference model's probabilities."""
    if backend == "torch":
        monkeypatch.setenv("ASCLAB_INFERENCE", "torch")
    path, model = _model_file(tmp_path)
    pred = Predictor.load(path)
    assert pred.fast is not None and pred.network() is not pred.model
    assert pred.backend.name == ("onnxruntime" if backend == "onnxruntime" else "torch (folded)")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in pred.fast[1].modules())  # folded copy
    waves = torch.randn(3, 1, 16000, generator=torch.Generator().manual_seed(2)) * 0.1
    ref, got = _reference_probs(model, pred, waves), pred.probs(waves)
    assert (got - ref).abs().max().item() <= TOLERANCE
    assert torch.equal(got.argmax(1), ref.argmax(1))
    # a longer clip and another batch size than the check input: still the reference's output
    long = torch.randn(2, 1, 48000, generator=torch.Generator().manual_seed(3)) * 0.1
    assert (pred.probs(long) - _reference_probs(model, pred, long)).abs().max().item() <= TOLERANCE
    # the shipped model file's own weights, not a copy from before loading
    with torch.no_grad():
        assert torch.allclose(pred.logits(waves), pred.model(pred.features(waves)), atol=1e-4)


def test_onnx_network_is_refused_when_it_is_not_exact(one_torch_thread):
    model = _trained_looking(create_model("cp_mobile", num_classes=4, in_chans=1))
    x = torch.randn(1, 1, 64, 63)
    assert onnx_network(model, model, x) is not None
    other = _trained_looking(create_model("cp_mobile", num_classes=4, in_chans=1))  # different weights
    assert onnx_network(other, model, x) is None
    assert onnx_network(model.train(), model, x) is None  # training mode: never exported


def test_fast_network_follows_the_model_it_was_built_from(tmp_path, one_torch_thread):
    path, _ = _model_file(tmp_path)
    pred = Predictor.load(path)
    other = _trained_looking(create_model("cp_mobile", num_classes=4, in_chans=1))
    swapped = pred.with_network(other)
    assert swapped.network() is other  # a replaced model is never shadowed by the old folded copy
    pred.model.train()
    assert pred.network() is pred.model  # nor a model put back into training mode
    half = pred.with_network(pred.model, "fp16")
    assert half.network() is half.model


def test_folding_is_refused_where_it_does_not_apply():
    x = torch.randn(1, 1, 8, 8)
    assert fused_for_inference(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()).eval(), x) is None  # no BN
    bn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    assert fused_for_inference(bn.train(), x) is None  # training mode: BN uses batch statistics

    class Branchy(nn.Module):  # data-dependent control flow: not traceable
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)

        def forward(self, x):
            y = self.bn(self.conv(x))
            return y if y.sum() > 0 else -y

    assert fused_for_inference(Branchy().eval(), x) is None
    folded = fused_for_inference(bn.eval(), x)
    assert folded is not None and torch.allclose(folded(x), bn(x), atol=1e-6)


def test_onnx_network_follows_torch_threads(one_torch_thread):
    model = _trained_looking(create_model("cp_mobile", num_classes=4, in_chans=1))
    x = torch.randn(1, 1, 64, 63)
    net = onnx_network(model, model, x)
    assert net is not None and set(net.sessions) == {1}
    torch.set_num_threads(2)
    out = net(x)
    assert set(net.sessions) == {1, 2} and net.session(2).get_session_options().intra_op_num_threads == 2
    with torch.no_grad():
        assert torch.allclose(out, model(x), atol=1e-5)
