"""Global L1 unstructured pruning of convolution weights (QTI 2020 sec. 5.1).

Uses torch.nn.utils.prune: the smallest-magnitude weights across all conv
layers together are masked to zero; the masks stay in place while the model
is fine-tuned (so pruned weights stay zero), and ``finalize_pruning`` folds
them into the weights before the model is saved.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.utils.prune as tprune


def conv_weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]


def global_l1_prune(model: nn.Module, amount: float) -> int:
    """Mask ``amount`` (0..1) of all conv weights, smallest |w| first. Returns the number masked."""
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"pruning amount must be in [0, 1), got {amount}")
    params = conv_weights(model)
    if not params:
        raise ValueError("model has no convolution layers to prune")
    tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=float(amount))
    return int(sum((getattr(m, "weight_mask") == 0).sum().item() for m, _ in params))


def is_pruned(model: nn.Module) -> bool:
    return any(hasattr(m, "weight_mask") for m in model.modules())


def finalize_pruning(model: nn.Module) -> None:
    """Make the masks permanent (weights stay zero, the reparametrisation goes)."""
    for m in model.modules():
        if hasattr(m, "weight_mask"):
            tprune.remove(m, "weight")


def conv_sparsity(model: nn.Module) -> float:
    ws = [m.weight for m, _ in conv_weights(model)]
    total = sum(w.numel() for w in ws)
    zeros = sum(int((w == 0).sum()) for w in ws)
    return zeros / total if total else 0.0


def to_fp16_state(state_dict: dict) -> dict:
    """FP16 storage of floating-point tensors (QTI 2020 sec. 5; Gao & Lee 2024 sec. 1)."""
    return {k: (v.half() if torch.is_floating_point(v) else v) for k, v in state_dict.items()}
