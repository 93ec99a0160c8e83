"""Teacher logits for training: looked up per clip by key, checked, attached to batches.

A recipe names its teacher file with ``data.teacher_logits: PATH``; ``{fold}`` in the
path is replaced by ``data.test_fold``, so a cross-validation student reads the
logits of teachers trained on its own training folds (never on its test fold).
``data.teacher_verify: true`` also re-hashes every training file against the
hash recorded in the teacher file. Every item of a wrapped data set gains
``"teacher"``: the mean teacher logits of its clip (a random crop of a clip uses
the whole clip's logits, as in the CPJKU 2023 system).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from asclab.data.records import Record
from asclab.data.teacher_file import TeacherFile, clip_key, file_sha256
from asclab.errors import ConfigError, DataError


def teacher_path(d: Any) -> Path | None:
    """The typed ``data`` block's teacher file, ``{fold}`` replaced by ``data.test_fold``."""
    if not d.teacher_logits:
        return None
    text = str(d.teacher_logits)
    if "{fold}" in text:
        if d.test_fold is None:
            raise ConfigError(f"data.teacher_logits {text!r} names {{fold}} but data.test_fold is not set")
        text = text.replace("{fold}", str(d.test_fold))
    return Path(text)


def uses_teacher(cfg: Any) -> bool:
    """Whether the typed recipe's loss (or a workflow stage's) is the distillation loss."""
    stages = (cfg.workflow.stages if cfg.workflow is not None else None) or []
    return cfg.loss.name == "kd" or any((s.loss or {}).get("name") == "kd" for s in stages)


@dataclass
class TeacherLogits:
    """A teacher file bound to a data folder (clip keys are relative to it)."""

    file: TeacherFile
    root: Path

    @classmethod
    def for_recipe(cls, cfg: Any, root: str | Path, classes: Sequence[str],
                   train_records: Sequence[Record]) -> "TeacherLogits | None":
        """The typed recipe's teacher file, refused if its class order differs or a training clip lacks logits."""
        path = teacher_path(cfg.data)
        if path is None:
            if uses_teacher(cfg):
                raise ConfigError("loss kd needs data.teacher_logits: a teacher file made by "
                                  "'asclab logits RUN ... --out teachers.h5' or 'asclab teachers'")
            return None
        tl = cls(TeacherFile.read(path), Path(root))
        tl.file.check_classes(classes)
        tl.logits_for(train_records)
        if cfg.data.teacher_verify:
            tl.verify(train_records)
        return tl

    def keys(self, records: Sequence[Record]) -> list[str]:
        return [clip_key(r.path, self.root) for r in records]

    def logits_for(self, records: Sequence[Record]) -> np.ndarray:
        return self.file.lookup(self.keys(records))

    def verify(self, records: Sequence[Record]) -> None:
        """Each file's bytes against the recorded hash (a re-encoded or replaced clip is refused)."""
        for rec, key in zip(records, self.keys(records)):
            want = self.file.hashes[self.file.row(key)]
            if want and file_sha256(rec.path) != want:
                raise DataError(f"{self.file.where}: clip {key!r} has changed since its logits were computed "
                                "(sha256 differs)")

    def wrap(self, dataset: Dataset, records: Sequence[Record]) -> "WithTeacherLogits":
        # a waveform data set may have dropped unreadable files: its own record list is the truth
        return WithTeacherLogits(dataset, self.logits_for(getattr(dataset, "records", records)))


class WithTeacherLogits(Dataset):
    """``dataset[i]`` plus ``"teacher"``: FloatTensor[K], the clip's mean teacher logits."""

    def __init__(self, dataset: Dataset, logits: np.ndarray) -> None:
        if len(logits) != len(dataset):
            raise DataError(f"teacher logits for {len(logits)} clips but the data set has {len(dataset)}")
        self.dataset, self.logits = dataset, torch.as_tensor(np.asarray(logits, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.dataset[i])
        item["teacher"] = self.logits[i]
        return item

    def __getattr__(self, name: str):  # records, labels(), cache ... of the wrapped data set
        if name in ("dataset", "logits"):
            raise AttributeError(name)
        return getattr(self.dataset, name)
