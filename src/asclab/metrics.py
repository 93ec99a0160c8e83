"""Scene classification metrics as the DCASE challenges report them, in plain numpy.

The ranking metric since 2019 is the macro-averaged class-wise accuracy
("balanced accuracy", McDonnell & Gao 2019 sec. 4); the multi-class log loss
is the secondary metric since 2020. Classes with no test example are left out
of the macro average and reported as None.

A utility below every layer: training's validation metrics and ``asclab.evaluate``
(which re-exports these names from ``asclab.evaluate.metrics``) compute them here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def class_wise_accuracy(cm: np.ndarray) -> list[float | None]:
    totals = cm.sum(axis=1)
    return [float(cm[i, i] / totals[i]) if totals[i] else None for i in range(len(cm))]


def macro_accuracy(cm: np.ndarray) -> float:
    accs = [a for a in class_wise_accuracy(cm) if a is not None]
    return float(np.mean(accs)) if accs else float("nan")


def log_loss(probs: np.ndarray, y_true: np.ndarray, eps: float = 1e-15) -> float:
    """Mean negative log probability of the true class (probabilities clipped to [eps, 1-eps])."""
    p = np.clip(probs[np.arange(len(y_true)), np.asarray(y_true, int)], eps, 1 - eps)
    return float(-np.mean(np.log(p)))


@dataclass
class Metrics:
    accuracy: float
    macro_accuracy: float
    log_loss: float
    per_class: dict[str, float | None]
    per_device: dict[str, dict]
    confusion: list[list[int]]
    n: int

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "macro_accuracy": self.macro_accuracy,
            "log_loss": self.log_loss,
            "per_class_accuracy": self.per_class,
            "per_device": self.per_device,
            "confusion": self.confusion,
        }


def compute_metrics(probs: np.ndarray, y_true: np.ndarray, classes: list[str],
                    devices: list[str | None] | None = None, y_pred: np.ndarray | None = None) -> Metrics:
    """All metrics from class probabilities (N, K) and integer true labels (N,).

    ``y_pred`` overrides the argmax decision (e.g. the open-set rule)."""
    probs = np.asarray(probs, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=int)
    if len(y_true) == 0:
        raise ValueError("no labelled examples to evaluate")
    y_pred = probs.argmax(axis=1) if y_pred is None else np.asarray(y_pred, dtype=int)
    k = len(classes)
    cm = confusion_matrix(y_true, y_pred, k)
    per_device: dict[str, dict] = {}
    if devices is not None:
        dev = np.array([d if d is not None else "unknown" for d in devices], dtype=object)
        for name in sorted(set(dev)):
            sel = dev == name
            dcm = confusion_matrix(y_true[sel], y_pred[sel], k)
            per_device[str(name)] = {
                "n": int(sel.sum()),
                "accuracy": float((y_true[sel] == y_pred[sel]).mean()),
                "macro_accuracy": macro_accuracy(dcm),
            }
    return Metrics(
        accuracy=float((y_true == y_pred).mean()),
        macro_accuracy=macro_accuracy(cm),
        log_loss=log_loss(probs, y_true),
        per_class=dict(zip(classes, class_wise_accuracy(cm))),
        per_device=per_device,
        confusion=cm.tolist(),
        n=int(len(y_true)),
    )
