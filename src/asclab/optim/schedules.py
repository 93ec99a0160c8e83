"""Learning-rate schedules of the reproduced systems, as torch LR schedulers.

Every schedule is a function ``lr_at(e)`` of the fractional epoch
``e = step / steps_per_epoch`` and is meant to be stepped once per optimizer
step (Lightning: ``interval: "step"``), which makes the curves smooth;
``per_epoch: true`` evaluates it at ``floor(e)`` instead (the lr then changes
only at epoch boundaries). Convention throughout: a phase of length L that
starts at epoch a is at position (e - a) / L, so the value "at the end" of a
phase is reached in the limit e -> a + L, and lr_at(a) is exactly the value at
its start. Peak lrs left as None are taken from the optimizer's lr; with
several parameter groups, each group's lr is scaled by its initial lr over the
first group's.
"""
from __future__ import annotations

import bisect
import inspect
import math
from typing import Any, Mapping, Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from asclab.errors import ConfigError
from asclab.registry import Registry


def _optimizer_lr(optimizer: Optimizer) -> float:
    group = optimizer.param_groups[0]
    return float(group.get("initial_lr", group["lr"]))


def _cosine(frac: float, high: float, low: float) -> float:
    """high at frac = 0 (exactly), low at frac = 1, half a cosine period in between."""
    return high - 0.5 * (high - low) * (1.0 - math.cos(math.pi * min(max(frac, 0.0), 1.0)))


class EpochSchedule(LRScheduler):
    """Base class: subclasses implement ``lr_at(epoch: float) -> float``."""

    def __init__(self, optimizer: Optimizer, steps_per_epoch: float = 1, per_epoch: bool = False) -> None:
        if not float(steps_per_epoch) > 0:
            raise ConfigError(f"steps_per_epoch must be positive, got {steps_per_epoch!r}")
        # A fractional value compresses the schedule (a shortened run, ``train.epochs_cap``).
        self.steps_per_epoch = float(steps_per_epoch)
        self.per_epoch = bool(per_epoch)
        super().__init__(optimizer)

    @property
    def epoch(self) -> float:
        """The (fractional) epoch the current lr belongs to."""
        e = self.last_epoch / self.steps_per_epoch
        return float(math.floor(e)) if self.per_epoch else e

    def lr_at(self, epoch: float) -> float:
        raise NotImplementedError

    def get_lr(self) -> list[float]:
        lr = self.lr_at(self.epoch)
        ref = float(self.base_lrs[0]) or 1.0
        return [lr * (float(base) / ref) for base in self.base_lrs]


class Constant(EpochSchedule):
    """A fixed lr (None: the optimizer's)."""

    def __init__(self, optimizer: Optimizer, lr: float | None = None, steps_per_epoch: int = 1,
                 per_epoch: bool = False) -> None:
        self.lr = _optimizer_lr(optimizer) if lr is None else float(lr)
        super().__init__(optimizer, steps_per_epoch, per_epoch)

    def lr_at(self, epoch: float) -> float:
        return self.lr


class WarmRestartCosine(EpochSchedule):
    """Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter 2017).

    McDonnell & Gao 2019 sec. 3.6: SGD, 510 epochs, lr reset to lr_max = 0.1
    at each restart and decayed along a cosine to lr_min = 1e-5. The paper
    lists restarts after 2, 6, 14, 30, 126 and 254 epochs, but 510 epochs is
    SGDR with T0 = 2, T_mult = 2, whose restarts include 62 too: the default
    here. Gao & McDonnell 2020 sec. 2.2: restarts after 10, 30, 70, 150 in
    310 epochs (T0 = 10, T_mult = 2).

    Cycles are [0, r_1), [r_1, r_2), ..., [r_n, total_epochs); in the cycle
    [a, b) the lr at fractional epoch e is
    lr_min + (peak - lr_min) (1 + cos(pi (e - a) / (b - a))) / 2, so it is
    exactly the peak at every restart epoch and tends to lr_min just before the
    next. Restarts can be given as a list (``restarts``) or generated from
    ``t0`` and ``t_mult`` (then ``restarts`` is ignored). The peak of cycle i is
    lr_max * m_mul^i (Keras's CosineDecayRestarts m_mul; default 1); with
    lr_max = 1e-2, lr_min = 1e-3 this is Horvath 2021 sec. 6 stage 1's
    cosine-decay-restart schedule (the paper does not give its first period).
    """

    def __init__(self, optimizer: Optimizer, restarts: Sequence[float] | None = (2, 6, 14, 30, 62, 126, 254),
                 total_epochs: float = 510, lr_max: float | None = None, lr_min: float = 1e-5,
                 t0: float | None = None, t_mult: float = 2.0, m_mul: float = 1.0,
                 steps_per_epoch: int = 1, per_epoch: bool = False) -> None:
        total = float(total_epochs)
        if total <= 0:
            raise ConfigError(f"total_epochs must be positive, got {total_epochs!r}")
        if t0 is not None:
            if float(t0) <= 0 or float(t_mult) < 1:
                raise ConfigError(f"warm restarts need t0 > 0 and t_mult >= 1, got t0={t0!r}, t_mult={t_mult!r}")
            points, period = [], float(t0)
            nxt = period
            while nxt < total:
                points.append(nxt)
                period *= float(t_mult)
                nxt += period
        else:
            points = [float(r) for r in (restarts or ())]
            if any(b <= a for a, b in zip([0.0] + points, points)):
                raise ConfigError(f"restarts must be positive and increasing, got {restarts!r}")
            points = [r for r in points if r < total]
        self.boundaries = [0.0] + points + [total]
        self.lr_max = _optimizer_lr(optimizer) if lr_max is None else float(lr_max)
        self.lr_min, self.m_mul = float(lr_min), float(m_mul)
        super().__init__(optimizer, steps_per_epoch, per_epoch)

    @property
    def restarts(self) -> list[float]:
        return self.boundaries[1:-1]

    def lr_at(self, epoch: float) -> float:
        if epoch >= self.boundaries[-1]:
            return self.lr_min
        k = bisect.bisect_right(self.boundaries, epoch) - 1
        a, b = self.boundaries[k], self.boundaries[k + 1]
        return _cosine((epoch - a) / (b - a), self.lr_max * self.m_mul ** k, self.lr_min)


class ThreePhaseExponential(EpochSchedule):
    """Hold, exponential decay, hold (QTI 2020 sec. 6.1, with Adam, 350 epochs).

    lr_start for ``hold_epochs`` (50), then lr_start (lr_end / lr_start)^((e - 50) / 200)
    over ``decay_epochs`` (200), then lr_end for the rest (100 epochs in the
    paper). QTI: lr_start = 1e-4 (None: the optimizer's lr), lr_end = 1e-6.
    ``tail_epochs``, if given, is checked: hold + decay + tail must equal the
    training's epochs.
    """

    def __init__(self, optimizer: Optimizer, lr_start: float | None = None, lr_end: float = 1e-6,
                 hold_epochs: float = 50, decay_epochs: float = 200, tail_epochs: float | None = None,
                 total_epochs: float | None = None, steps_per_epoch: int = 1, per_epoch: bool = False) -> None:
        self.lr_start = _optimizer_lr(optimizer) if lr_start is None else float(lr_start)
        self.lr_end = float(lr_end)
        if self.lr_start <= 0 or self.lr_end <= 0:
            raise ConfigError("three_phase lr_start and lr_end must be positive for an exponential decay")
        if float(hold_epochs) < 0 or float(decay_epochs) <= 0:
            raise ConfigError(f"three_phase needs hold_epochs >= 0 and decay_epochs > 0, got {hold_epochs!r}, {decay_epochs!r}")
        self.hold_epochs, self.decay_epochs = float(hold_epochs), float(decay_epochs)
        if tail_epochs is not None and total_epochs is not None \
                and self.hold_epochs + self.decay_epochs + float(tail_epochs) != float(total_epochs):
            raise ConfigError(f"three_phase: hold {hold_epochs} + decay {decay_epochs} + tail {tail_epochs} "
                              f"epochs do not add up to the {total_epochs} training epochs")
        super().__init__(optimizer, steps_per_epoch, per_epoch)

    def lr_at(self, epoch: float) -> float:
        frac = min(max((epoch - self.hold_epochs) / self.decay_epochs, 0.0), 1.0)
        return self.lr_start * (self.lr_end / self.lr_start) ** frac


class ExponentialDecay(EpochSchedule):
    """Keras ``ExponentialDecay`` with its decay period in epochs: lr_start (decay_rate)^(e / decay_epochs).

    Horvath 2021 sec. 6 stage 4: "exponential decay ... initial LR of 1e-3 and
    decay rate of 3.33e-5 for 30 epochs". Reading taken: Keras's
    ExponentialDecay(1e-3, decay_steps = the 30 epochs, decay_rate = 3.33e-5),
    i.e. lr falls smoothly from 1e-3 to 3.33e-8 over the stage
    (``decay_rate: 3.33e-5, decay_epochs: 30``). Note 3.33e-5 = 1e-3 / 30, the
    classic Keras idiom ``decay = lr / epochs`` for the optimizer's legacy
    time-based decay: that alternative reading is :class:`InverseTimeDecay`.
    ``staircase: true`` decays in whole periods (floor of e / decay_epochs).
    """

    def __init__(self, optimizer: Optimizer, decay_rate: float = 3.33e-5, decay_epochs: float = 30,
                 lr_start: float | None = None, staircase: bool = False, steps_per_epoch: int = 1,
                 per_epoch: bool = False) -> None:
        if float(decay_rate) <= 0 or float(decay_epochs) <= 0:
            raise ConfigError(f"exponential decay needs decay_rate > 0 and decay_epochs > 0, got {decay_rate!r}, {decay_epochs!r}")
        self.lr_start = _optimizer_lr(optimizer) if lr_start is None else float(lr_start)
        self.decay_rate, self.decay_epochs, self.staircase = float(decay_rate), float(decay_epochs), bool(staircase)
        super().__init__(optimizer, steps_per_epoch, per_epoch)

    def lr_at(self, epoch: float) -> float:
        p = epoch / self.decay_epochs
        return self.lr_start * self.decay_rate ** (math.floor(p) if self.staircase else p)


class InverseTimeDecay(EpochSchedule):
    """lr_start / (1 + decay_rate n): Keras's legacy optimizer ``decay`` (n = optimizer steps).

    ``unit: step`` counts optimizer steps (what Keras's ``SGD(decay=...)``
    does), ``unit: epoch`` counts fractional epochs. The alternative reading of
    Horvath 2021's stage 4 (``decay_rate: 3.33e-5``, ``unit: step``).
    """

    def __init__(self, optimizer: Optimizer, decay_rate: float = 3.33e-5, unit: str = "step",
                 lr_start: float | None = None, steps_per_epoch: int = 1, per_epoch: bool = False) -> None:
        if unit not in ("step", "epoch"):
            raise ConfigError(f"inverse_time_decay unit must be 'step' or 'epoch', got {unit!r}")
        if float(decay_rate) < 0:
            raise ConfigError(f"decay_rate must be non-negative, got {decay_rate!r}")
        self.lr_start = _optimizer_lr(optimizer) if lr_start is None else float(lr_start)
        self.decay_rate, self.unit = float(decay_rate), unit
        super().__init__(optimizer, steps_per_epoch, per_epoch)

    def lr_at(self, epoch: float) -> float:
        n = epoch * self.steps_per_epoch if self.unit == "step" else epoch
        return self.lr_start / (1.0 + self.decay_rate * n)


class LinearDecay(EpochSchedule):
    """Linear from lr_start to lr_end over ``decay_epochs`` (None: all epochs), then lr_end.

    QTI 2020 sec. 5.1: fine-tuning after pruning for 200 epochs, "the learning
    rate started from 1e-4 and decayed linearly to 1e-6".
    """

    def __init__(self, optimizer: Optimizer, total_epochs: float, lr_start: float | None = None,
                 lr_end: float = 1e-6, decay_epochs: float | None = None, steps_per_epoch: int = 1,
                 per_epoch: bool = False) -> None:
        self.lr_start = _optimizer_lr(optimizer) if lr_start is None else float(lr_start)
        self.lr_end = float(lr_end)
        self.decay_epochs = float(total_epochs if decay_epochs is None else decay_epochs)
        if self.decay_epochs <= 0:
            raise ConfigError(f"linear decay needs a positive length, got {self.decay_epochs}")
        super().__init__(optimizer, steps_per_epoch, per_epoch)

    def lr_at(self, epoch: float) -> float:
        frac = min(max(epoch / self.decay_epochs, 0.0), 1.0)
        return self.lr_start + (self.lr_end - self.lr_start) * frac


class Cosine(EpochSchedule):
    """Optional linear warm-up, then one cosine from lr to lr_min at ``total_epochs``.

    Warm-up goes linearly from ``warmup_start_lr`` to ``lr`` over
    ``warmup_epochs``; the cosine then spans [warmup_epochs, total_epochs).
    A run shorter than twice its warm-up (a quick ``--epochs 1`` try) warms up
    for half of it instead. A recipe may count the warm-up in optimiser steps
    (``warmup_steps``, converted by :func:`build_scheduler`): with
    ``warmup_start_lr = lr_min = 0`` and the lr stepped per optimiser step this
    is ``transformers.get_cosine_schedule_with_warmup``, the DCASE 2024
    baseline's schedule (CPJKU dcase2024_task1_baseline, run_training.py:
    2,000 warm-up steps, then a half cosine to 0 at the last step).
    """

    def __init__(self, optimizer: Optimizer, total_epochs: float, lr: float | None = None, lr_min: float = 0.0,
                 warmup_epochs: float = 0.0, warmup_start_lr: float = 0.0, steps_per_epoch: int = 1,
                 per_epoch: bool = False) -> None:
        self.lr = _optimizer_lr(optimizer) if lr is None else float(lr)
        self.lr_min, self.total_epochs = float(lr_min), float(total_epochs)
        self.warmup_epochs, self.warmup_start_lr = float(warmup_epochs), float(warmup_start_lr)
        if self.total_epochs > 0 and self.warmup_epochs >= self.total_epochs / 2:
            self.warmup_epochs = self.total_epochs / 2
        if not 0 <= self.warmup_epochs < self.total_epochs:
            raise ConfigError(f"cosine needs 0 <= warmup_epochs < total_epochs, got {warmup_epochs!r}, {total_epochs!r}")
        super().__init__(optimizer, steps_per_epoch, per_epoch)

    def lr_at(self, epoch: float) -> float:
        if epoch < self.warmup_epochs:
            return self.warmup_start_lr + (self.lr - self.warmup_start_lr) * epoch / self.warmup_epochs
        frac = (epoch - self.warmup_epochs) / (self.total_epochs - self.warmup_epochs)
        return _cosine(frac, self.lr, self.lr_min)


SCHEDULES: Registry[type[EpochSchedule]] = Registry("lr schedule")
SCHEDULES.add("constant", Constant)
SCHEDULES.add("warm_restart_cosine", WarmRestartCosine)
SCHEDULES.add("warm_restarts", WarmRestartCosine)
SCHEDULES.add("cosine_decay_restarts", WarmRestartCosine)
SCHEDULES.add("cosine_restarts", WarmRestartCosine)
SCHEDULES.add("three_phase", ThreePhaseExponential)
SCHEDULES.add("exponential_decay", ExponentialDecay)
SCHEDULES.add("exponential", ExponentialDecay)
SCHEDULES.add("inverse_time_decay", InverseTimeDecay)
SCHEDULES.add("linear_decay", LinearDecay)
SCHEDULES.add("linear", LinearDecay)
SCHEDULES.add("cosine", Cosine)


def build_scheduler(optimizer: Optimizer, cfg: Mapping[str, Any] | None, epochs: int,
                    steps_per_epoch: float, data_steps_per_epoch: float | None = None) -> EpochSchedule:
    """A scheduler to step once per optimizer step, from ``{name: ..., key: value}``.

    None gives a constant lr. ``total_epochs`` defaults to ``epochs`` (a
    recipe may set it, e.g. to stop early inside a longer schedule).
    ``warmup_steps: N`` (schedules with a warm-up) counts the warm-up in
    optimiser steps of the full-length run: it becomes ``warmup_epochs = N /
    data_steps_per_epoch`` (the optimiser steps one pass over the training
    split takes: ceil(clips / batch); default ``steps_per_epoch``), so the same
    N spans more epochs on a smaller split, as in the DCASE 2024 baseline. A
    shortened run (``train.epochs_cap``) compresses it with the rest of the
    schedule.
    """
    cfg = dict(cfg or {"name": "constant"})
    if "warmup_steps" in cfg:
        if "warmup_epochs" in cfg:
            raise ConfigError("schedule: give warmup_steps or warmup_epochs, not both")
        table_cls = SCHEDULES.get(cfg["name"]) if cfg.get("name") in SCHEDULES else None
        if table_cls is not None and "warmup_epochs" not in inspect.signature(table_cls).parameters:
            raise ConfigError(f"lr schedule {cfg.get('name')!r} has no warm-up; warmup_steps is not one of its keys")
        steps = float(data_steps_per_epoch or steps_per_epoch)
        warmup_steps = cfg.pop("warmup_steps")
        if not isinstance(warmup_steps, (int, float)) or warmup_steps < 0:
            raise ConfigError(f"schedule.warmup_steps must be a non-negative number, got {warmup_steps!r}")
        cfg["warmup_epochs"] = float(warmup_steps) / steps
    return SCHEDULES.build(cfg, optimizer,
                           defaults={"total_epochs": epochs}, steps_per_epoch=steps_per_epoch)
