"""Training speed options (issue 15): ``train.channels_last``, ``train.precision: bf16-mixed``
and the process's malloc policy (asclab.memory). No timings: these check that the options
validate, run a real (tiny) training step and change what they claim to change."""
from __future__ import annotations

import platform

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from asclab.config import load_recipe, validate
from asclab.errors import ConfigError
from asclab.memory import keep_freed_memory
from asclab.train import precision as precision_rule
from asclab.train.module import ASCModule


def _batches(n: int, frames: int = 20) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    return [{"x": torch.randn(1, 256, frames, generator=gen), "label": i % 3, "device": 0} for i in range(n)]


def _fit(overrides: list[str]) -> tuple[ASCModule, dict[str, torch.Tensor]]:
    recipe = load_recipe("quickstart", ["train.batch_size=4", "augment.mix=null", *overrides])
    module = ASCModule(recipe, classes=["a", "b", "c"], devices=["a"])
    before = {k: v.detach().clone() for k, v in module.model.state_dict().items()}
    trainer = L.Trainer(max_steps=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        precision=precision_rule.resolve_precision(recipe["train"]["precision"], recipe["model"]))
    trainer.fit(module, DataLoader(_batches(8), batch_size=4))
    return module, before


def test_speed_options_are_recipe_keys():
    cfg = validate(load_recipe("quickstart", ["train.channels_last=true", "train.precision=bf16-mixed"]))
    assert cfg.train.channels_last is True and cfg.train.precision == "bf16-mixed"
    assert validate(load_recipe("quickstart")).train.channels_last == "auto"  # the measured layout (models.layout)
    assert validate(load_recipe("quickstart")).train.precision == "auto"  # asclab.train.precision
    with pytest.raises(ConfigError):
        load_recipe("quickstart", ["train.precision=bf17"])


@pytest.mark.parametrize("overrides", [["train.channels_last=true"],
                                       ["train.channels_last=true", "train.precision=bf16-mixed"]])
def test_channels_last_and_bf16_train_a_step(overrides, one_torch_thread):
    module, before = _fit(overrides)
    convs = [m.weight for m in module.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert any(not w.is_contiguous() for w in convs)  # (32, 8, 3, 3): NHWC differs from NCHW there
    assert all(w.dtype == torch.float32 for w in convs)  # mixed precision keeps float32 weights
    after = module.model.state_dict()
    changed = [k for k, v in before.items() if v.is_floating_point() and not torch.equal(v, after[k])]
    assert changed, "the optimiser step changed no weight"
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    # the trained weights load into a fresh, contiguous model (the model file's path)
    fresh = ASCModule(module.recipe, classes=["a", "b", "c"]).model
    fresh.load_state_dict(after)
    x = torch.randn(2, 1, 256, 20)
    module.model.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.allclose(module.model(x), fresh(x), atol=1e-5)


def test_malloc_policy_applies_on_glibc_and_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("ASCLAB_MALLOC", "default")
    assert keep_freed_memory() is False
    monkeypatch.delenv("ASCLAB_MALLOC")
    expected = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is expected


def test_auto_precision_is_bf16_only_on_native_bf16_cpus_for_measured_checked_families(monkeypatch):
    monkeypatch.setattr(precision_rule, "MEASURED", {"cp_mobile": (24.0, 32.2), "cp_resnet": (80.0, 70.0)})
    monkeypatch.setattr(precision_rule, "ACCURACY_CHECKED", frozenset({"cp_mobile", "cp_resnet"}))
    resolve = precision_rule.resolve_precision
    for native in (True, False):
        monkeypatch.setattr(precision_rule, "cpu_has_native_bf16", lambda native=native: native)
        want = "bf16-mixed" if native else "32-true"
        assert resolve("auto", {"name": "cp_mobile"}) == want
        assert resolve("auto", {"name": "device_container", "base": {"name": "cp_mobile"}}) == want
        assert resolve("auto", {"name": "cp_resnet"}) == "32-true"  # measured slower
        assert resolve("auto", {"name": "mobilenetv2_small"}) == "32-true"  # not measured
        assert resolve("auto", {"name": "cp_mobile"}, cuda=True) == "32-true"  # CUDA: not measured
        assert resolve("32-true", {"name": "cp_mobile"}) == "32-true"  # an explicit setting wins
        assert resolve("bf16-mixed", {"name": "mobilenetv2_small"}) == "bf16-mixed"
    monkeypatch.setattr(precision_rule, "cpu_has_native_bf16", lambda: True)
    assert resolve("auto", {"name": "cp_mobile"}, quantising=True) == "32-true"  # a qat stage: fake quant in fp32
    with pytest.raises(ConfigError, match="qat stage"):
        resolve("bf16-mixed", {"name": "cp_mobile"}, quantising=True)
    monkeypatch.setattr(precision_rule, "ACCURACY_CHECKED", frozenset())
    assert resolve("auto", {"name": "cp_mobile"}) == "32-true"  # faster, but its accuracy not checked


def test_native_bf16_is_read_from_the_cpu_flags():
    flags = open("/proc/cpuinfo").read() if platform.system() == "Linux" else ""
    precision_rule.cpu_has_native_bf16.cache_clear()
    assert precision_rule.cpu_has_native_bf16() == (" avx512_bf16" in flags or " amx_bf16" in flags)
