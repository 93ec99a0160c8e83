"""A loss declares the batch fields it needs (asclab.losses.build); the training module passes
them, mixed with the labels, without knowing the loss (knowledge distillation is one such loss)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from asclab.augment.mixing import one_hot
from asclab.config import load_recipe
from asclab.errors import ConfigError
from asclab.losses import CrossEntropy, KDLoss, build_loss, loss_needs
from asclab.train.module import ASCModule


def test_kd_declares_the_teacher_field_and_others_nothing():
    kd = build_loss({"name": "kd", "temperature": 2.0})
    assert isinstance(kd, KDLoss) and loss_needs(kd) == ("teacher",)
    assert loss_needs(build_loss({"name": "focal"})) == () and loss_needs(CrossEntropy()) == ()
    t = torch.randn(3, 4)
    (probs,) = kd.extra_targets(t)
    assert torch.equal(probs, kd.teacher_targets(t))
    assert "data.teacher_logits" in kd.missing("teacher")


class DeviceWeighted(nn.Module):
    """A toy loss that needs each example's device: cross-entropy plus a term on its device target."""

    needs = ("device",)

    def extra_targets(self, device: torch.Tensor) -> list[torch.Tensor]:
        return [one_hot(device, 4)]

    @staticmethod
    def missing(field: str) -> str:
        return f"toy loss needs {field}"

    def forward(self, logits, targets, device_targets):
        return F.cross_entropy(logits, targets) + (device_targets * logits.log_softmax(1)).sum(1).mean()


def module_with(loss: nn.Module) -> ASCModule:
    recipe = load_recipe("quickstart", ["model.base_channels=8", "augment.mix=null"])
    m = ASCModule(recipe, [f"c{i}" for i in range(4)], ["a", "b"])
    m.loss_fn = loss
    m.log = lambda *a, **k: None  # no trainer attached
    m.optimizers = lambda: SimpleNamespace(param_groups=[{"lr": 0.1}])
    return m


def test_the_module_passes_what_a_loss_declares():
    m = module_with(DeviceWeighted())
    seen = {}
    original = m.class_loss
    m.class_loss = lambda logits, y, *extra: seen.update(extra=extra) or original(logits, y, *extra)
    batch = {"x": torch.randn(4, 1, 64, 20), "label": torch.arange(4), "device": torch.tensor([0, 1, 1, 0])}
    loss = m.training_step(batch, 0)
    assert torch.isfinite(loss)
    (dev,) = seen["extra"]
    assert torch.equal(dev, one_hot(batch["device"], 4))
    del batch["device"]
    with pytest.raises(ConfigError, match="^toy loss needs device$"):
        m.training_step(batch, 0)
