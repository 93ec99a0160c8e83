"""Half-precision (FP16) arithmetic at evaluation, not only FP16 storage.

QTI 2020 sec. 5 and Horvath et al. 2021 sec. 5.1 store their parameters as
float16; ``asclab evaluate RUN --precision fp16`` runs the network itself in
float16 (weights, activations and every layer's output rounded to half
precision) and reports what that costs against float32. The front end
(STFT, mel, log) stays in float32, as the papers compute features before the
network; the logits return as float32 for the softmax.

torch 2.13 runs float16 convolutions, BatchNorm, pooling and linear layers on
CPU (checked in ``tests/compress/test_precision.py``); how each kernel accumulates
inside one operation (float32 accumulators on most backends) is the
backend's, as on the GPUs and accelerators the papers deploy to.
"""
from __future__ import annotations

import copy

import numpy as np

from asclab.errors import ConfigError

PRECISIONS = ("fp32", "fp16")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def at_precision(predictor, precision: str):
    """The predictor (``evaluate.inference.Predictor``) with a copy of its network at ``precision``
    (float16 weights; the predictor casts the features to match and returns float32 logits)."""
    if check_precision(precision) == getattr(predictor, "precision", "fp32"):
        return predictor
    model = copy.deepcopy(predictor.model)
    return predictor.with_network(model.half() if precision == "fp16" else model.float(), precision)


def precision_change(m_fp32, m_low, probs_fp32: np.ndarray, probs_low: np.ndarray, precision: str) -> dict:
    """What running at ``precision`` changed against float32 on the same clips, for metrics.json
    (``m_*``: ``evaluate.metrics`` results with ``accuracy`` and ``macro_accuracy``)."""
    return {
        "precision": precision,
        "fp32_accuracy": float(m_fp32.accuracy),
        "accuracy": float(m_low.accuracy),
        "accuracy_change": float(m_low.accuracy) - float(m_fp32.accuracy),
        "fp32_macro_accuracy": float(m_fp32.macro_accuracy),
        "macro_accuracy": float(m_low.macro_accuracy),
        "macro_accuracy_change": float(m_low.macro_accuracy) - float(m_fp32.macro_accuracy),
        "top1_agreement": float((probs_fp32.argmax(1) == probs_low.argmax(1)).mean()) if len(probs_low) else 1.0,
        "max_abs_prob_diff": float(np.abs(probs_fp32 - probs_low).max()) if len(probs_low) else 0.0,
    }


def format_change(change: dict) -> str:
    return (f"{change['precision']} arithmetic: accuracy {change['accuracy']:.4f} "
            f"({change['accuracy_change']:+.4f} vs fp32 {change['fp32_accuracy']:.4f}), macro accuracy "
            f"{change['macro_accuracy']:.4f} ({change['macro_accuracy_change']:+.4f} vs fp32 "
            f"{change['fp32_macro_accuracy']:.4f}), top-1 agreement {change['top1_agreement']:.4f}, "
            f"max |p16 - p32| {change['max_abs_prob_diff']:.2e}")
