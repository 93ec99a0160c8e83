"""The Gao & McDonnell 2020 device head as the authors' released code trains it
(emilywg/DCASE2020-Task1): auxiliary task, 0.9 scene + 0.1 device, the device
target unmixed, the body run once per training step; gradient reversal as an option."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from asclab.augment.mixing import Mixup
from asclab.config import load_recipe
from asclab.errors import ConfigError
from asclab.losses import DeviceHead
from asclab.models import create_model, list_models
from asclab.models.body import body_and_logits
from asclab.train.module import ASCModule

CLASSES = ["c0", "c1", "c2"]


def small_module(**device_head) -> ASCModule:
    recipe = load_recipe("gao2020_sub3_device_head", ["model.width=4", "augment.mix.crop_frames=12"])
    if device_head:
        recipe["device_head"] = {**recipe["device_head"], **device_head}
    m = ASCModule(recipe, CLASSES, devices=["a", "b", "c"], class_counts=[2, 2, 2])
    m.log = lambda *a, **k: None  # no trainer attached
    m.optimizers = lambda: SimpleNamespace(param_groups=[{"lr": 0.1}])
    return m.train()


def batch(n: int = 6, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(n, 3, 128, 16, generator=g), "label": torch.arange(n) % 3,
            "device": torch.tensor([0, 1, 2, 0, 2, 1][:n])}


def test_recipe_default_is_the_released_codes_auxiliary_head():
    r = load_recipe("gao2020_sub3_device_head")
    assert r["device_head"] == {"mode": "auxiliary", "weight": 0.1}
    head = small_module().device_head
    layers = [type(m).__name__ for m in head.classifier]
    assert layers == ["BatchNorm2dNoAffine", "Conv2d", "BatchNorm2dNoAffine"]
    assert head.classifier[1].kernel_size == (1, 1) and head.classifier[1].out_channels == 2
    assert isinstance(head.reverse, nn.Identity)


def test_body_runs_once_per_training_step():
    m = small_module()
    calls: dict[str, int] = {}
    for name, sub in m.model.named_modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm):
            sub.register_forward_hook(lambda mod, i, o, name=name: calls.__setitem__(name, calls.get(name, 0) + 1))
    before = {n: b.num_batches_tracked.item() for n, b in m.model.named_modules()
              if isinstance(b, nn.modules.batchnorm._BatchNorm)}
    m.training_step(batch(), 0)
    assert calls and set(calls.values()) == {1}, calls  # every BatchNorm of the body and scene head: once
    after = {n: b.num_batches_tracked.item() for n, b in m.model.named_modules()
             if isinstance(b, nn.modules.batchnorm._BatchNorm)}
    assert all(after[n] == before[n] + 1 for n in before)


def test_total_loss_is_point_nine_scene_plus_point_one_device():
    m = small_module()
    m.mix = None
    b = batch()
    torch.manual_seed(0)
    total = m.training_step(b, 0)
    # the same numbers by hand on a copy with the same weights (train mode: batch statistics)
    m2 = small_module()
    m2.load_state_dict(m.state_dict())
    feats = m2.model.features(b["x"])
    scene = F.cross_entropy(m2.model.classifier(feats).mean(dim=(2, 3)), F.one_hot(b["label"], 3).float())
    dev_logits = m2.device_head(feats)
    device = F.cross_entropy(dev_logits, torch.tensor([0, 1, 1, 0, 1, 1]))  # class 0: device A ('s'), 1: other
    assert torch.allclose(total, 0.9 * scene + 0.1 * device, atol=1e-5)


def test_mixup_does_not_mix_the_device_target():
    m = small_module()
    m.mix = Mixup(alpha=0.4)
    seen = []
    original = m.device_head.loss
    m.device_head.loss = lambda logits, dev: seen.append(dev.clone()) or original(logits, dev)
    b = batch()
    m.training_step(b, 0)
    assert torch.equal(seen[0], b["device"])  # each example's own device index, a hard label
    assert torch.equal(DeviceHead.targets(seen[0]), torch.tensor([0, 1, 1, 0, 1, 1]))


def test_reversal_mode_negates_the_scaled_gradient_into_the_body():
    torch.manual_seed(1)
    feats = torch.randn(6, 8, 4, 5, requires_grad=True)
    dev = torch.tensor([0, 1, 2, 0, 1, 0])
    rev = DeviceHead(8, mode="reversal", weight=0.1)
    aux = DeviceHead(8, mode="auxiliary", weight=0.1)
    aux.load_state_dict(rev.state_dict())
    rev.loss(rev(feats), dev).backward()
    g_rev = feats.grad.clone()
    feats.grad = None
    aux.loss(aux(feats), dev).backward()
    assert torch.allclose(g_rev, -0.1 * feats.grad, atol=1e-7)
    for p, q in zip(rev.parameters(), aux.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-7)  # the head itself minimises its loss in both modes
    s, d = torch.tensor(2.0), torch.tensor(1.0)
    assert rev.total(s, d).item() == pytest.approx(3.0) and aux.total(s, d).item() == pytest.approx(1.9)


def test_bad_mode_or_weight_is_a_config_error():
    with pytest.raises(ConfigError, match="mode"):
        DeviceHead(8, mode="adversary")
    with pytest.raises(ConfigError, match="weight"):
        DeviceHead(8, mode="auxiliary", weight=1.5)


@pytest.mark.parametrize("name", [n for n in list_models() if n != "device_container"])
def test_body_and_logits_equals_the_models_forward(name, one_torch_thread):
    chans = {"two_path_resnet": 6, "two_path_resnet_2020": 3, "shared_resnet_ssn": 2}.get(name, 1)
    model = create_model(name, num_classes=4, in_chans=chans).eval()
    x = torch.randn(2, chans, 128, 20)
    with torch.no_grad():
        body, logits = body_and_logits(model, x)
        assert torch.allclose(logits, model(x), atol=1e-5)
        assert body.shape[1] == model.embed_dim
