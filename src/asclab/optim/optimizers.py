"""Optimizers from a recipe's ``optimizer:`` block, with weight-decay parameter groups.

Weight decay goes only to weight matrices/kernels (parameters with two or more
dimensions), never to biases or normalisation parameters; with
``decay_conv_only: true`` only convolution kernels are decayed (McDonnell & Gao
2019 sec. 3.5: "5e-4 ... on all convolutional layers"). Frozen parameters
(``requires_grad`` False) are left out, and a parameter shared by several
modules (QTI's shared residual blocks) is listed once. ``decay_all: true``
decays every trainable parameter, biases and BatchNorm scales/offsets included:
the DCASE 2024 baseline (CPJKU dcase2024_task1_baseline, run_training.py) passes
``self.parameters()`` to ``torch.optim.AdamW(lr, weight_decay=1e-4)``.

AdamW's decay is decoupled (Loshchilov & Hutter 2019): each step multiplies a
decayed weight by (1 - lr x weight_decay) besides the Adam update, instead of
adding ``weight_decay x w`` to the gradient before Adam's normalisation (which
is what ``adam`` with ``weight_decay`` does).

On the 2019 number: the paper gives 5e-4 "(i.e. 1e-3 when set in keras)".
Keras's ``l2(c)`` regulariser adds c * sum(w^2) to the loss, whose gradient
2 c w equals SGD weight decay 2c, so their Keras code's l2(1e-3) acts like
``weight_decay: 2e-3`` here, while 5e-4 corresponds to a loss term of
(5e-4 / 2) sum(w^2). ``keras_l2: c`` sets weight_decay = 2c to reproduce a Keras
regulariser exactly; ``weight_decay`` is torch's (SGD/Adam: added to the
gradient; AdamW: decoupled).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
import torch.nn as nn
from torch.optim import Optimizer

from asclab.errors import ConfigError

from asclab.registry import Registry

# Keys every optimiser takes (handled by build_optimizer), with their YAML types.
COMMON_KEYS: dict[str, type] = {"lr": float, "weight_decay": float, "keras_l2": float, "decay_conv_only": bool,
                                "decay_all": bool}
OPTIMIZERS: Registry[Callable[..., Optimizer]] = Registry("optimizer")


def _given(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


@OPTIMIZERS.register("sgd")
def sgd(groups: list[dict], lr: float, momentum: float | None = None, nesterov: bool | None = None,
        dampening: float | None = None) -> Optimizer:
    """torch's SGD; keys left out keep torch's defaults."""
    return torch.optim.SGD(groups, lr=lr, **_given(momentum=momentum, nesterov=nesterov, dampening=dampening))


@OPTIMIZERS.register("adam")
def adam(groups: list[dict], lr: float, betas: list[float] | None = None, eps: float | None = None,
         amsgrad: bool | None = None) -> Optimizer:
    """torch's Adam; keys left out keep torch's defaults."""
    return torch.optim.Adam(groups, lr=lr, **_given(betas=tuple(betas) if betas is not None else None, eps=eps,
                                                    amsgrad=amsgrad))


@OPTIMIZERS.register("adamw")
def adamw(groups: list[dict], lr: float, betas: list[float] | None = None, eps: float | None = None,
          amsgrad: bool | None = None) -> Optimizer:
    """torch's AdamW (weight decay 0 unless the recipe sets it, as for the other two)."""
    return torch.optim.AdamW(groups, lr=lr, **_given(betas=tuple(betas) if betas is not None else None, eps=eps,
                                                     amsgrad=amsgrad))


def optimizer_keys(name: str) -> dict[str, Any]:
    """Keys a recipe's ``optim`` block may set for ``name`` -> YAML type (the schema asks this)."""
    own = {p.name: p.annotation for p in OPTIMIZERS.params(name, skip=1)}
    return {**COMMON_KEYS, **{k: v for k, v in own.items() if k != "lr"}}


def decay_groups(model: nn.Module, conv_only: bool = False,
                 every: bool = False) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(decayed, not decayed) trainable parameters of ``model``, each listed once
    (``every``: all are decayed)."""
    conv_weights = {id(m.weight) for m in model.modules()
                    if isinstance(m, nn.modules.conv._ConvNd) and m.weight is not None}
    decay, no_decay, seen = [], [], set()
    for p in model.parameters():  # parameters() already skips repeats of shared tensors
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        wanted = every or (id(p) in conv_weights if conv_only else p.dim() >= 2)
        (decay if wanted else no_decay).append(p)
    return decay, no_decay


def build_optimizer(model: nn.Module, cfg: Mapping[str, Any]) -> Optimizer:
    """``{name: sgd, lr: 0.1, momentum: 0.9, weight_decay: 5e-4, decay_conv_only: true}`` -> optimizer.

    Names: sgd (momentum, nesterov, dampening), adam and adamw (betas, eps,
    amsgrad). ``weight_decay`` defaults to 0 for all three (AdamW included). Per-split batch size and lr (Gao & Lee 2024 sec. 2.2) are recipe
    values passed through ``lr``.
    """
    kwargs = dict(cfg or {})
    name = str(kwargs.pop("name", "")).lower()
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS.names())}")
    unknown = sorted(set(kwargs) - set(optimizer_keys(name)))
    if unknown:
        raise ConfigError(f"optimizer {name!r}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(optimizer_keys(name)))}")
    if "lr" not in kwargs:
        raise ConfigError(f"optimizer {name!r}: lr is required")
    if "keras_l2" in kwargs and "weight_decay" in kwargs:
        raise ConfigError("optimizer: give weight_decay or keras_l2, not both")
    wd = 2.0 * float(kwargs.pop("keras_l2")) if "keras_l2" in kwargs else float(kwargs.pop("weight_decay", 0.0))
    conv_only = bool(kwargs.pop("decay_conv_only", False))
    every = bool(kwargs.pop("decay_all", False))
    if conv_only and every:
        raise ConfigError("optimizer: give decay_conv_only or decay_all, not both")
    decay, no_decay = decay_groups(model, conv_only, every)
    groups = [g for g in ({"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
    if not groups:
        raise ConfigError("optimizer: the model has no trainable parameters")
    try:
        return OPTIMIZERS.get(name)(groups, **kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"optimizer {name!r}: {e}") from None
