"""Scene classification metrics as the DCASE challenges report them (the numbers are computed
in :mod:`asclab.metrics`, shared with training's validation; this module adds the text table)."""
from __future__ import annotations

from asclab.metrics import (Metrics, class_wise_accuracy, compute_metrics, confusion_matrix, log_loss,
                            macro_accuracy, softmax)

__all__ = ["Metrics", "class_wise_accuracy", "compute_metrics", "confusion_matrix", "format_metrics", "log_loss",
           "macro_accuracy", "softmax"]


def format_metrics(m: Metrics) -> str:
    lines = [f"examples {m.n}   accuracy {m.accuracy:.3f}   macro accuracy {m.macro_accuracy:.3f}   "
             f"log loss {m.log_loss:.3f}", "per class:"]
    for name, acc in m.per_class.items():
        lines.append(f"  {name:<24} {'-' if acc is None else f'{acc:.3f}'}")
    if m.per_device:
        lines.append("per device:")
        for name, d in m.per_device.items():
            lines.append(f"  {name:<8} n={d['n']:<6} accuracy {d['accuracy']:.3f}  macro {d['macro_accuracy']:.3f}")
    return "\n".join(lines)
