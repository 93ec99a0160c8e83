"""Plots people would rather look at than read: confusion matrix, per-device
accuracy and training curves (matplotlib, Agg backend, written atomically)."""
from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def plot_confusion(confusion, classes: list[str], path: Path, title: str = "") -> Path:
    """Row-normalised (recall mode, as in McDonnell & Gao 2019 Fig. 1) confusion matrix."""
    cm = np.asarray(confusion, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    k = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * k, 0.8 + 0.55 * k))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix (row-normalised)")
    return _save(fig, path)


def plot_per_device(per_device: dict, path: Path, title: str = "") -> Path:
    names = list(per_device)
    vals = [per_device[n]["macro_accuracy"] for n in names]
    fig, ax = plt.subplots(figsize=(1.5 + 0.5 * len(names), 3))
    ax.bar(names, vals, color="tab:blue")
    ax.set_ylim(0, 1)
    ax.set_ylabel("macro accuracy")
    ax.set_title(title or "accuracy per recording device")
    return _save(fig, path)


def plot_training_curves(metrics_csv: Path, path: Path) -> Path | None:
    """Loss and validation accuracy per epoch from Lightning's CSV log."""
    metrics_csv = Path(metrics_csv)
    if not metrics_csv.exists():
        return None
    with metrics_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        epoch = row.get("epoch")
        for key in ("train_loss_epoch", "val_loss", "val_macro_acc"):
            if row.get(key) not in (None, "") and epoch not in (None, ""):
                series.setdefault(key, []).append((float(epoch), float(row[key])))
    if not series:
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3))
    for key in ("train_loss_epoch", "val_loss"):
        if key in series:
            x, y = zip(*series[key])
            a1.plot(x, y, label=key)
    a1.set_xlabel("epoch")
    a1.legend()
    if "val_macro_acc" in series:
        x, y = zip(*series["val_macro_acc"])
        a2.plot(x, y, color="tab:green")
    a2.set_xlabel("epoch")
    a2.set_ylabel("validation macro accuracy")
    return _save(fig, path)
