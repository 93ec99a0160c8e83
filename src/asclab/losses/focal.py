"""Focal loss (Lin et al. 2017) and its class-balanced form (Cui et al. 2019).

Both accept class indices Tensor[B] or soft targets Tensor[B, K] (mixup).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from asclab.errors import ConfigError

_REDUCTIONS = ("mean", "sum", "none")


def _targets(target: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    if target.is_floating_point() and target.dim() == 2:
        return target.to(dtype)
    return F.one_hot(target.long(), num_classes).to(dtype)


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


class FocalLoss(nn.Module):
    """Softmax focal loss: FL = -alpha_t (1 - p_t)^gamma log p_t.

    Lin et al. 2017 (eq. 5), as used by Gao & McDonnell 2020 sec. 2.3, Gao &
    Lee 2024 sec. 2.1 (gamma = 2, no alpha) and Horvath 2021 sec. 6 (alpha = 1,
    gamma = 2). p = softmax(logits). For soft targets y (Tensor[B, K]) the loss
    of an example is sum_k y_k alpha_k (1 - p_k)^gamma (-log p_k), which is the
    formula above for one-hot y. ``alpha``: None (1 for every class), a number
    (the same factor for every class) or a list of K per-class weights.
    gamma = 0 with alpha None is exactly cross-entropy.
    """

    def __init__(self, gamma: float = 2.0, alpha: float | Sequence[float] | None = None,
                 reduction: str = "mean") -> None:
        super().__init__()
        if float(gamma) < 0:
            raise ConfigError(f"focal gamma must be non-negative, got {gamma!r}")
        if reduction not in _REDUCTIONS:
            raise ConfigError(f"reduction must be one of {', '.join(_REDUCTIONS)}, got {reduction!r}")
        self.gamma, self.reduction = float(gamma), reduction
        alpha_t = None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32)
        if alpha_t is not None and alpha_t.dim() > 1:
            raise ConfigError(f"focal alpha must be a number or a list of per-class weights, got {alpha!r}")
        self.register_buffer("alpha", alpha_t, persistent=False)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        logp = F.log_softmax(logits.float(), dim=-1)
        y = _targets(target, logits.shape[-1], logp.dtype)
        term = -logp
        if self.gamma != 0:
            term = term * (-torch.expm1(logp)).clamp_min(0).pow(self.gamma)  # (1 - p)^gamma
        if self.alpha is not None:
            term = term * self.alpha.to(term.device)
        return _reduce((y * term).sum(dim=-1), self.reduction)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, alpha={None if self.alpha is None else self.alpha.tolist()}"


def class_balanced_weights(class_counts: Sequence[int], beta: float = 0.999, *,
                           normalize: bool = False) -> Tensor:
    """Cui et al. 2019 weights: w_k = (1 - beta) / (1 - beta^n_k), as QTI 2020 eq. 2 writes them.

    (1 - beta^n) / (1 - beta) is the "effective number" of n samples; the
    weights are its inverse. ``normalize=True`` rescales them to sum to the
    number of classes K, as Cui et al.'s released code does (not in eq. 2).
    """
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    if counts.dim() != 1 or counts.numel() == 0:
        raise ConfigError(f"class_counts must be a list of per-class counts, got {class_counts!r}")
    if bool((counts <= 0).any()):
        raise ConfigError(f"class_counts must all be positive, got {counts.tolist()}")
    if not 0.0 <= float(beta) < 1.0:
        raise ConfigError(f"class-balanced beta must lie in [0, 1), got {beta!r}")
    w = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(float(beta), dtype=torch.float64), counts))
    return (w / w.sum() * counts.numel() if normalize else w).float()


FORMS = ("sigmoid", "softmax")


class ClassBalancedFocalLoss(nn.Module):
    """Class-balanced focal loss (QTI 2020 sec. 4, eq. 2; Cui et al. 2019).

    ``form: sigmoid`` (default) is eq. 2 as written: one binary focal term per
    class, CB(z, y) = -w_y sum_i (1 - p_i^t)^gamma log p_i^t with
    p_i^t = sigmoid(z_i) for the target class and 1 - sigmoid(z_i) for the
    others, and w_y = (1 - beta) / (1 - beta^n_y) not rescaled (``rescale:
    true`` gives Cui et al.'s code's normalisation to sum K). For soft targets
    (mixup) each class's binary target is y_i and the weight is sum_k y_k w_k.
    ``form: softmax`` (an option, not the paper's) is the softmax
    :class:`FocalLoss` with alpha_k = w_k: sum_k y_k w_k (1 - p_k)^gamma (-log p_k).
    The batch loss is the mean over examples (``reduction``; not stated).
    """

    def __init__(self, class_counts: Sequence[int], beta: float = 0.999, gamma: float = 2.0,
                 form: str = "sigmoid", rescale: bool = False, reduction: str = "mean") -> None:
        super().__init__()
        if form not in FORMS:
            raise ConfigError(f"cb_focal form must be one of {', '.join(FORMS)}, got {form!r}")
        if reduction not in _REDUCTIONS:
            raise ConfigError(f"reduction must be one of {', '.join(_REDUCTIONS)}, got {reduction!r}")
        if float(gamma) < 0:
            raise ConfigError(f"focal gamma must be non-negative, got {gamma!r}")
        self.beta, self.gamma, self.form, self.rescale = float(beta), float(gamma), form, bool(rescale)
        self.reduction = reduction
        weights = class_balanced_weights(class_counts, beta, normalize=self.rescale)
        self.register_buffer("weights", weights, persistent=False)
        self.focal = FocalLoss(gamma, weights.tolist(), reduction)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if logits.shape[-1] != self.weights.numel():
            raise ValueError(f"logits have {logits.shape[-1]} classes, class_counts has {self.weights.numel()}")
        if self.form == "softmax":
            return self.focal(logits, target)
        z = logits.float()
        y = _targets(target, z.shape[-1], z.dtype)
        logp, log1mp = F.logsigmoid(z), F.logsigmoid(-z)
        pos = -logp * (-torch.expm1(logp)).pow(self.gamma)  # target side: (1 - p)^g (-log p)
        neg = -log1mp * torch.exp(logp).pow(self.gamma)  # other side:  p^g (-log(1 - p))
        per_example = (y * pos + (1 - y) * neg).sum(dim=-1) * (y * self.weights.to(z.device)).sum(dim=-1)
        return _reduce(per_example, self.reduction)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, gamma={self.gamma}, form={self.form!r}, rescale={self.rescale}"
