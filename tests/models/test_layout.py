"""``train.channels_last: auto`` (issue 23): NHWC by default for the model families the committed
training benchmark measured faster in it, with the same results within float rounding."""
from __future__ import annotations

import pytest
import torch

from asclab.config import load_config
from asclab.models import create_model
from asclab.models.layout import MEASURED, prefers_channels_last, resolve_channels_last
from asclab.train.module import ASCModule


def test_auto_follows_the_committed_measurements_and_explicit_settings_win():
    assert prefers_channels_last("cp_mobile") and not prefers_channels_last("shared_resnet_ssn")
    assert not prefers_channels_last("a_model_never_measured")
    assert all(prefers_channels_last(m) == (nhwc > fp32) for m, (fp32, nhwc) in MEASURED.items())
    assert resolve_channels_last("auto", {"name": "device_container", "base": {"name": "cp_mobile"}})
    assert resolve_channels_last(True, {"name": "shared_resnet_ssn"}) and not resolve_channels_last(False, None)
    recipe, cfg = load_config("quickstart")
    assert cfg.train.channels_last == "auto" and ASCModule(recipe, classes=["a", "b"], devices=["a"]).channels_last
    recipe, _ = load_config("quickstart", ["train.channels_last=false"])
    assert not ASCModule(recipe, classes=["a", "b"], devices=["a"]).channels_last


@pytest.mark.parametrize("name,shape", [("cp_mobile", (4, 1, 64, 40)), ("mobilenetv2_small", (2, 3, 64, 40))])
def test_nhwc_gives_the_same_outputs_and_gradients_within_float_rounding(name, shape, one_torch_thread):
    torch.manual_seed(0)
    a = create_model(name, num_classes=5, in_chans=shape[1]).eval()  # eval: no batch-statistics noise
    b = create_model(name, num_classes=5, in_chans=shape[1]).eval()
    b.load_state_dict(a.state_dict())
    b.to(memory_format=torch.channels_last)
    x, y = torch.randn(*shape), torch.arange(shape[0]) % 5
    ya, yb = a(x), b(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(ya, yb, atol=1e-5, rtol=1e-4)
    torch.nn.functional.cross_entropy(ya, y).backward(), torch.nn.functional.cross_entropy(yb, y).backward()
    for (k, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-5, rtol=1e-3), k
