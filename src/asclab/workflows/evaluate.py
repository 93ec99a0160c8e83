"""Evaluate a model file (or ensemble run) on a data set: the ``asclab evaluate`` workflow (metrics,
plots, fp16 change, device models against the general model)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from asclab.config import DataConfig, typed_block
from asclab.data import open_dataset
from asclab.data.open import open_data
from asclab.data.records import Record
from asclab.data.tables import where
from asclab.errors import AsclabError, ConfigError
from asclab.evaluate.device_models import device_comparison, format_comparison
from asclab.evaluate.inference import Predictor, classify_records
from asclab.evaluate.metrics import compute_metrics, format_metrics
from asclab.evaluate.openset import decide
from asclab.evaluate.plots import plot_confusion, plot_per_device
from asclab.evaluate.precision import at_precision, format_change, precision_change
from asclab.evaluate.torch_backend import inference_settings, tta_augment_mapping
from asclab.io import write_json
from asclab.models.device_container import is_device_container
from asclab.train.checkpoint import resolve_checkpoint

__all__ = ["ensemble_members", "evaluate_run", "general_vs_specific", "inference_settings", "tta_augment_mapping"]


def ensemble_members(path: str | Path) -> list[Path]:
    """The member checkpoints of an ensemble run folder, or [] for a single model."""
    p = Path(path)
    spec = p / "ensemble.json" if p.is_dir() else None
    if spec is None or not spec.exists():
        return []
    try:
        members = json.loads(spec.read_text())["members"]
    except (ValueError, KeyError) as exc:
        raise AsclabError(f"{spec}: malformed ensemble description ({exc})") from None
    return [p / m for m in members]


def evaluate_run(ckpt: str | Path, data_dir: str | Path | None = None, *, records: list[Record] | None = None,
                 out_dir: str | Path | None = None, split: str = "test", tta: int | None = None,
                 ensemble: list[str | Path] | None = None, progress: bool = True, batch_size: int = 16,
                 on_error: str = "raise", precision: str | None = None) -> dict:
    """Metrics (accuracy, macro class-wise accuracy, per class and per device,
    log loss), a confusion-matrix PNG and metrics.json in the run folder.
    ``precision``: run the network in ``fp16`` (or ``fp32``) arithmetic instead of the model
    file's own; with fp16 the same clips also go through the fp32 network and metrics.json's
    ``precision`` block reports the change (``asclab.evaluate.precision``)."""
    members = ensemble_members(ckpt)
    if members:
        ckpt, ensemble = members[0], members[1:] + list(ensemble or [])
    ckpt_path = resolve_checkpoint(ckpt)
    predictors = [Predictor.load(ckpt_path)] + [Predictor.load(p) for p in (ensemble or [])]
    reference = None  # the fp32 networks an fp16 evaluation is compared against
    if precision is not None:
        reference = [at_precision(p, "fp32") for p in predictors] if precision == "fp16" else None
        predictors = [at_precision(p, precision) for p in predictors]
    pred = predictors[0]
    recipe = pred.meta.recipe or {}
    if records is None:
        if data_dir is None:
            raise ConfigError("evaluate needs --data DIR")
        index = open_data(data_dir, typed_block(DataConfig, recipe, "data")) if recipe else open_dataset(data_dir)
        records = list(index.test if split == "test" else index.train)
    labelled = [r for r in records if r.label is not None]
    if not labelled:
        source = f"{data_dir}: the {split} split" if data_dir is not None else "the records given"
        raise AsclabError(f"{source} holds no labelled records; there is nothing to evaluate")
    unknown = sorted({r.label for r in labelled} - set(pred.classes))
    if unknown:
        first = next(r for r in labelled if r.label not in pred.classes)
        at = where(first.extra.get("source", first.path), first.extra.get("row")) if first.extra else f"{first.path}: "
        raise AsclabError(f"{at}label {first.label!r} of {first.extra.get('filename', first.path)} is not one of the "
                          f"model's classes ({len(unknown)} unknown label(s) in all: {', '.join(unknown[:5])})")
    file_tta, tta_augment = pred.tta_settings()  # the model file's inference.tta and tta_augment
    n_tta = file_tta if tta is None else tta
    skipped: list = []
    probs = classify_records(predictors, labelled, batch_size=batch_size, tta=n_tta, tta_augment=tta_augment,
                             progress=progress, on_error=on_error, skipped=skipped).probs
    ok = ~np.isnan(probs).any(axis=1)
    kept = [r for r, k in zip(labelled, ok) if k]
    y = np.array([pred.classes.index(r.label) for r in kept])
    probs = probs[ok]
    rule = pred.openset  # the model file's rule (weight as tuned), asclab.evaluate.openset
    y_pred = decide(probs, pred.classes, rule) if rule is not None and rule.index(pred.classes) is not None else None
    m = compute_metrics(probs, y, pred.classes, devices=[r.device for r in kept], y_pred=y_pred)
    result = m.to_dict()
    result.update({"checkpoint": str(ckpt_path), "tta": n_tta, "ensemble_size": len(predictors),
                   "openset": rule.to_dict() if y_pred is not None else None,
                   "skipped": [{"file": f, "reason": why} for f, why in skipped],
                   "precision": {"precision": pred.precision}})
    if reference is not None:  # the same clips through the fp32 network(s)
        p32 = classify_records(reference, kept, batch_size=batch_size, tta=n_tta, tta_augment=tta_augment,
                               progress=progress).probs
        y32 = decide(p32, pred.classes, rule) if y_pred is not None else None
        m32 = compute_metrics(p32, y, pred.classes, y_pred=y32)
        result["precision"] = precision_change(m32, m, p32, probs, pred.precision)
    compared = general_vs_specific(pred, kept, y, m, batch_size, progress) if len(predictors) == 1 else None
    if compared is not None:  # DCASE 2025: each device's model against the general model
        result["device_specific"] = compared
    if out_dir is None:
        out_dir = Path(members[0]).parents[2] if members else ckpt_path.parent
    out_dir = Path(out_dir)
    write_json(out_dir / "metrics.json", result)
    plot_confusion(m.confusion, pred.classes, out_dir / "confusion.png",
                   title=f"macro accuracy {m.macro_accuracy:.3f}")
    if m.per_device:
        plot_per_device(m.per_device, out_dir / "per_device.png")
    result["text"] = format_metrics(m)
    if reference is not None:
        result["text"] += "\n" + format_change(result["precision"])
    if compared is not None:

        result["text"] += "\n" + format_comparison(compared)
    return result


def general_vs_specific(pred: Predictor, records: list[Record], y: np.ndarray, specific, batch_size: int,
                        progress: bool) -> dict | None:
    """For a device container: per-device accuracy of the general model on the same clips
    beside the device models' (``asclab.evaluate.device_models``); None for other models."""
    if not is_device_container(pred.model):
        return None
    probs = pred.for_device(None).classify_records(records, batch_size=batch_size, progress=progress).probs
    general = compute_metrics(probs, y, pred.classes, devices=[r.device for r in records])
    return device_comparison(general, specific, pred.model.devices)
