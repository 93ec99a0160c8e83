"""``asclab logits``: every clip's logits from each teacher run, and their mean.

Inference is deterministic (eval mode, no augmentation, no test-time
augmentation) at the student's clip length (``duration``; default the first
member's): a clip is cropped or padded to it as training does. For data sets of
1-s segments (TAU 2022 Mobile) every segment is a file, hence a row. The mean is
taken over the members' logits (not their probabilities), as the CPJKU 2023
ensembles were; the file keeps every member's logits too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from asclab.config import DataConfig, dump_recipe, typed_block
from asclab.data.open import open_data
from asclab.data.records import Record
from asclab.data.teacher_file import TeacherFile, clip_key, file_sha256
from asclab.errors import AsclabError
from asclab.evaluate.inference import Predictor, classify_records
from asclab.train.checkpoint import resolve_checkpoint
from asclab.workflows.evaluate import ensemble_members


def member_checkpoints(runs: Sequence[str | Path]) -> list[Path]:
    """Model files of the given runs; an ensemble run folder contributes each member."""
    out: list[Path] = []
    for run in runs:
        members = ensemble_members(run)
        if members:
            out.extend(resolve_checkpoint(m) for m in members)
        else:
            out.append(resolve_checkpoint(run))
    if not out:
        raise AsclabError("asclab logits needs at least one teacher run")
    return out


def member_logits(predictor: Predictor, records: Sequence[Record], duration: float | None, batch_size: int = 32,
                  progress: bool = True, desc: str = "logits") -> np.ndarray:
    """Logits ``[N, K]`` (float32) of the general model (a device container's base) for each clip,
    ``duration`` seconds of it (``Predictor.classify_records``)."""
    general = predictor.for_device(None)
    return classify_records(general, records, batch_size=batch_size, progress=progress, duration=duration,
                            desc=desc).logits[0]


def compute_teacher_logits(runs: Sequence[str | Path], data_dir: str | Path, out: str | Path, *,
                           duration: float | None = None, batch_size: int = 32, hashes: bool = True,
                           progress: bool = True) -> dict:
    """Write the teacher file ``out`` for every labelled training and test clip of ``data_dir``
    (the split of the first member's recipe, e.g. its ``data.test_fold``)."""
    ckpts = member_checkpoints(runs)
    predictors = [Predictor.load(c) for c in ckpts]
    first = predictors[0]
    for c, p in zip(ckpts[1:], predictors[1:]):
        if p.classes != first.classes:
            raise AsclabError(f"{c}: its classes differ from those of {ckpts[0]}")
    recipe = first.meta.recipe or {}
    index = open_data(data_dir, typed_block(DataConfig, recipe, "data"))
    if index.classes != first.classes:
        raise AsclabError(f"{data_dir}: the data set's classes differ from the teachers' ({ckpts[0]})")
    records = [r for r in list(index.train) + list(index.test) if r.label is not None]
    if not records:
        raise AsclabError(f"{data_dir}: no labelled clips to compute logits for")
    dur = duration if duration is not None else first.duration
    logits = np.stack([member_logits(p, records, dur, batch_size, progress, desc=f"member {i + 1}/{len(ckpts)}")
                       for i, p in enumerate(predictors)])
    members = [{"run": str(c), "recipe_name": (p.meta.recipe or {}).get("name"),
                "recipe": dump_recipe(p.meta.recipe or {})} for c, p in zip(ckpts, predictors)]
    tf = TeacherFile(keys=[clip_key(r.path, index.root) for r in records], classes=list(first.classes),
                     logits=logits, hashes=[file_sha256(r.path) for r in records] if hashes else [],
                     splits=[r.split or "" for r in records], members=members, duration=dur,
                     data=str(data_dir))
    tf.write(out)
    return {"out": str(out), "clips": len(records), "members": [str(c) for c in ckpts],
            "classes": tf.classes, "duration": dur, **split_accuracy(tf, records, index.classes)}


def split_accuracy(tf: TeacherFile, records: Sequence[Record], classes: Sequence[str]) -> dict:
    """Accuracy of the mean logits (and of each member) on the test clips of the file, and what a
    student is taught on the training clips: the mean logits' accuracy there and their mean top
    probability at T = 1 and T = 2 (a teacher that is wrong or flat on the clips it trained on
    passes that on at the CPJKU label weight 0.02)."""
    out: dict = {}
    y_all = np.array([list(classes).index(r.label) for r in records])
    for split in ("train", "test"):
        idx = np.array([i for i, r in enumerate(records) if r.split == split], dtype=np.int64)
        if not len(idx):
            continue
        y, mean = y_all[idx], tf.mean[idx]
        out[f"{split}_accuracy_mean_logits"] = float((mean.argmax(1) == y).mean())
        if split == "test":
            out["test_accuracy_members"] = [float((m[idx].argmax(1) == y).mean()) for m in tf.logits]
            out["n_test"] = len(idx)
        else:
            out["train_top_probability"] = {f"T{t}": round(float(_softmax(mean / t).max(1).mean()), 4) for t in (1, 2)}
            out["n_train"] = len(idx)
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
