"""asclab.optim.schedules and asclab.optim.optimizers against the papers' schedules and decay rules."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from asclab.errors import ConfigError
from asclab.optim.optimizers import build_optimizer, decay_groups
from asclab.optim.schedules import (
    Cosine,
    ExponentialDecay,
    InverseTimeDecay,
    ThreePhaseExponential,
    WarmRestartCosine,
    build_scheduler,
)


def sgd(lr: float = 0.1) -> torch.optim.SGD:
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9)


def run(sched, steps: int) -> list[float]:
    """The lr used by each of ``steps`` optimizer steps."""
    lrs = []
    for _ in range(steps):
        lrs.append(sched.optimizer.param_groups[0]["lr"])
        sched.optimizer.step()
        sched.step()
    return lrs


# --------------------------------------------------------------------------- warm restarts

RESTARTS = [2, 6, 14, 30, 62, 126, 254]


def test_warm_restart_lr_max_exactly_at_restarts_and_lr_min_just_before():
    s = WarmRestartCosine(sgd(0.1), lr_min=1e-5)
    assert s.restarts == RESTARTS
    for r in [0] + RESTARTS:
        assert s.lr_at(r) == 0.1
    for a, b in zip([0] + RESTARTS, RESTARTS + [510]):
        before = s.lr_at(b - 0.01)
        assert 1e-5 < before < 1e-5 + 1e-5  # within 1e-5 of lr_min, 0.01 epochs before the restart
        assert s.lr_at((a + b) / 2) == pytest.approx((0.1 + 1e-5) / 2)  # half-way down the cosine
    assert s.lr_at(510) == 1e-5


def test_warm_restart_stepping_per_batch():
    spe = 8
    s = WarmRestartCosine(sgd(0.1), total_epochs=30, steps_per_epoch=spe)
    lrs = run(s, 30 * spe)
    for step, lr in enumerate(lrs):
        assert lr == pytest.approx(s.lr_at(step / spe), rel=1e-12)
    for r in [2, 6, 14]:
        assert lrs[r * spe] == 0.1
        assert lrs[r * spe - 1] < 0.1 * 0.05  # the last batch before a restart is near the bottom
        assert lrs[r * spe - 1] < lrs[r * spe - 2]  # still decreasing
    assert len(set(lrs[2 * spe: 3 * spe])) == spe  # changes within an epoch


def test_warm_restart_per_epoch_and_generated_restarts():
    s = WarmRestartCosine(sgd(0.1), total_epochs=30, steps_per_epoch=4, per_epoch=True)
    lrs = run(s, 12)
    assert lrs[0:4] == [0.1] * 4 and lrs[4] == lrs[7] == pytest.approx(s.lr_at(1)) and lrs[8] == 0.1
    assert WarmRestartCosine(sgd(), t0=2, t_mult=2, total_epochs=510).restarts == RESTARTS
    assert WarmRestartCosine(sgd(), t0=10, t_mult=2, total_epochs=310).restarts == [10, 30, 70, 150]  # 2020 paper
    with pytest.raises(ConfigError):
        WarmRestartCosine(sgd(), restarts=[6, 2])


def test_cosine_decay_restarts_between_1e2_and_1e3():
    s = build_scheduler(sgd(1e-2), {"name": "cosine_decay_restarts", "t0": 10, "t_mult": 2, "lr_min": 1e-3}, 200, 5)
    assert s.restarts == [10, 30, 70, 150]
    values = [s.lr_at(e / 5) for e in range(1000)]
    assert max(values) == 1e-2 and min(values) > 1e-3
    assert s.lr_at(150) == 1e-2 and s.lr_at(149.99) == pytest.approx(1e-3, rel=1e-3)


# --------------------------------------------------------------------------- QTI and the rest


def test_qti_three_phase_schedule():
    s = ThreePhaseExponential(torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1e-4), lr_end=1e-6)
    lrs = run(s, 350)
    want = {0: 1e-4, 49: 1e-4, 50: 1e-4, 150: 1e-5, 249: 1e-4 * (1e-2) ** (199 / 200), 250: 1e-6, 349: 1e-6}
    for e, v in want.items():
        assert lrs[e] == pytest.approx(v, rel=1e-9), e
    decay = lrs[50:251]
    ratios = [b / a for a, b in zip(decay, decay[1:])]
    assert all(r == pytest.approx(0.01 ** (1 / 200), rel=1e-9) for r in ratios)  # geometric


def test_exponential_and_inverse_time_decay():
    s = ExponentialDecay(sgd(1e-3), decay_rate=3.33e-5, decay_epochs=30, steps_per_epoch=10)
    assert s.lr_at(0) == 1e-3
    assert s.lr_at(15) == pytest.approx(1e-3 * math.sqrt(3.33e-5))
    assert s.lr_at(30) == pytest.approx(1e-3 * 3.33e-5)
    st = ExponentialDecay(sgd(1.0), decay_rate=0.5, decay_epochs=2, staircase=True)
    assert [st.lr_at(e) for e in (0, 1.9, 2, 3.9, 4)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    inv = InverseTimeDecay(sgd(1e-3), decay_rate=3.33e-5, unit="step", steps_per_epoch=175)
    assert inv.lr_at(30) == pytest.approx(1e-3 / (1 + 3.33e-5 * 30 * 175))


def test_linear_decay_qti_finetune():
    s = build_scheduler(sgd(1e-4), {"name": "linear_decay", "lr_end": 1e-6}, epochs=200, steps_per_epoch=3)
    assert s.lr_at(0) == 1e-4
    assert s.lr_at(100) == pytest.approx((1e-4 + 1e-6) / 2)
    assert s.lr_at(200) == pytest.approx(1e-6)
    lrs = run(s, 600)
    assert all(b < a for a, b in zip(lrs, lrs[1:]))


def test_cosine_with_warmup():
    s = Cosine(sgd(0.01), total_epochs=100, warmup_epochs=5, warmup_start_lr=0.0, lr_min=1e-5)
    assert s.lr_at(0) == 0.0 and s.lr_at(2.5) == pytest.approx(0.005) and s.lr_at(5) == 0.01
    assert s.lr_at(52.5) == pytest.approx((0.01 + 1e-5) / 2) and s.lr_at(100) == pytest.approx(1e-5)


def test_group_ratios_and_builder_errors():
    p1, p2 = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p1], "lr": 0.1}, {"params": [p2], "lr": 0.01}])
    s = build_scheduler(opt, {"name": "cosine"}, epochs=10, steps_per_epoch=2)
    run(s, 7)
    assert opt.param_groups[1]["lr"] == pytest.approx(opt.param_groups[0]["lr"] / 10)
    assert build_scheduler(sgd(0.3), None, 10, 2).lr_at(7) == 0.3
    three = {"name": "three_phase", "lr_start": 1e-4, "hold_epochs": 50, "decay_epochs": 200, "tail_epochs": 100}
    assert build_scheduler(sgd(), three, 350, 2).lr_at(150) == pytest.approx(1e-5)
    with pytest.raises(ConfigError):
        build_scheduler(sgd(), three, 300, 2)  # 50 + 200 + 100 != 300
    with pytest.raises(ConfigError):
        build_scheduler(sgd(), {"name": "step"}, 10, 2)
    with pytest.raises(ConfigError):
        build_scheduler(sgd(), {"name": "warm_restart_cosine", "lr_peak": 0.1}, 10, 2)


# --------------------------------------------------------------------------- optimizer


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.shared = nn.Conv2d(4, 4, 1)  # used twice, like QTI's shared residual blocks
        self.frozen = nn.Conv2d(4, 4, 1)
        self.frozen.requires_grad_(False)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = self.shared(self.shared(self.bn(self.conv1(x))))
        return self.fc(self.frozen(x).mean(dim=(2, 3)))


def ids(params) -> set[int]:
    return {id(p) for p in params}


def test_decay_groups():
    net = Net()
    decay, no_decay = decay_groups(net, conv_only=True)
    assert ids(decay) == ids([net.conv1.weight, net.shared.weight])
    assert ids(no_decay) == ids([net.bn.weight, net.bn.bias, net.shared.bias, net.fc.weight, net.fc.bias])
    decay, no_decay = decay_groups(net, conv_only=False)
    assert ids(decay) == ids([net.conv1.weight, net.shared.weight, net.fc.weight])
    assert len(decay) + len(no_decay) == len(ids(decay) | ids(no_decay))  # each parameter once


def test_sgd_decays_only_conv_weights():
    net = Net()
    opt = build_optimizer(net, {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True,
                                "weight_decay": 5e-4, "decay_conv_only": True})
    assert opt.defaults["nesterov"] is True
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    with torch.no_grad():
        net.bn.weight.fill_(1.5)
        before["bn.weight"] = net.bn.weight.detach().clone()
    for p in net.parameters():
        p.grad = torch.zeros_like(p) if p.requires_grad else None
    opt.step()  # zero loss gradient: only weight decay moves parameters
    for n, p in net.named_parameters():
        if n in ("conv1.weight", "shared.weight"):
            # first Nesterov step: buffer = wd p, update = lr (wd p + momentum wd p)
            assert torch.allclose(p, before[n] * (1 - 0.1 * 5e-4 * (1 + 0.9)), rtol=1e-6, atol=0)
            assert not torch.equal(p, before[n])
        else:
            assert torch.equal(p, before[n]), n


def test_optimizer_options_and_errors():
    net = Net()
    opt = build_optimizer(net, {"name": "adam", "lr": 1e-4, "betas": [0.8, 0.99], "keras_l2": 1e-3})
    assert opt.defaults["betas"] == (0.8, 0.99)
    assert opt.param_groups[0]["weight_decay"] == pytest.approx(2e-3) and opt.param_groups[1]["weight_decay"] == 0.0
    assert isinstance(build_optimizer(net, {"name": "adamw", "lr": 0.005}), torch.optim.AdamW)
    frozen = ids(net.frozen.parameters())
    assert not frozen & ids(p for g in opt.param_groups for p in g["params"])
    with pytest.raises(ConfigError):
        build_optimizer(net, {"name": "rmsprop", "lr": 0.1})
    with pytest.raises(ConfigError):
        build_optimizer(net, {"name": "sgd", "lr": 0.1, "betas": [0.9, 0.99]})
    with pytest.raises(ConfigError):
        build_optimizer(net, {"name": "sgd", "lr": 0.1, "nesterov": True})  # nesterov needs momentum
    with pytest.raises(ConfigError):
        build_optimizer(net, {"name": "sgd"})
