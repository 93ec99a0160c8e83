"""A validation split carved out of the training records, whole recordings at a time.

Choosing weights (``train.keep: best``) or tuning the open-set weight on the
split a result is reported on makes that result look better than it is. The
papers train a fixed number of epochs and the authors' released code keeps the
last model (McDonnell & Gao 2019; Gao & McDonnell 2020, emilywg/DCASE2020-Task1);
McDonnell & Gao 2019 sec. 3.7 tune the task 1c unknown weight "on validation
data". So the only validation data asclab selects on is ``data.validation``:

    data:
      validation: {fraction: 0.1, by: identifier}

``fraction`` of the training clips (about: whole recordings are moved, never
single clips) goes to the validation side, stratified by class, chosen
deterministically from the training seed. ``by: identifier`` groups clips by
recording: the record's ``identifier`` (the TAU ``identifier`` column), else
the part of a TAU file name before the segment (``airport-lisbon-1000-40000-a.wav``
-> ``airport-lisbon-1000``), else the file itself. The paper does not state a
split; 10 % is a choice.
"""
from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from asclab.data.names import parse_tau_name
from asclab.data.records import Record
from asclab.errors import ConfigError, DataError

GROUPINGS = ("identifier",)
KEEP_CHOICES = ("last", "best")


@dataclass(frozen=True)
class ValidationSpec:
    """``data.validation``: the share of training clips held out and how clips are grouped."""

    fraction: float = 0.1
    by: str = "identifier"

    @classmethod
    def from_config(cls, v: Any) -> "ValidationSpec | None":
        """The typed ``data.validation`` block (``asclab.config.ValidationConfig``; None: no split)."""
        if v is None:
            return None
        if not 0.0 < float(v.fraction) < 1.0:
            raise ConfigError(f"data.validation.fraction must be between 0 and 1 (exclusive), got {v.fraction}")
        if v.by not in GROUPINGS:
            raise ConfigError(f"data.validation.by must be one of {', '.join(GROUPINGS)}, got {v.by!r}")
        return cls(float(v.fraction), str(v.by))


def kept_weights(cfg: Any) -> list[str]:
    """``train.keep`` of the typed recipe ``cfg`` and of each workflow stage; ConfigError when
    ``best`` is asked for without ``data.validation`` (it would choose weights on the test split)."""
    train_keep = cfg.train.keep
    stages = (cfg.workflow.stages if cfg.workflow is not None else None) or []
    keeps = [s.keep if s.keep is not None else (s.train or {}).get("keep", train_keep) for s in stages] or [train_keep]
    for k in [train_keep, *keeps]:
        if k not in KEEP_CHOICES:
            raise ConfigError(f"train.keep must be 'last' or 'best', got {k!r}")
    if "best" in keeps and cfg.data.validation is None:
        raise ConfigError("train.keep: best needs a validation split carved from the training data "
                          "(data.validation: {fraction: 0.1, by: identifier}); use train.keep: last otherwise")
    return keeps


def recording_id(rec: Record) -> str:
    """The recording a clip was cut from: ``identifier``, else the TAU file-name part before
    the segment, else the file itself."""
    if rec.identifier:
        return str(rec.identifier)
    name = parse_tau_name(rec.path)
    if name is not None:
        return f"{name.scene}-{name.city}-{name.location}"
    return str(rec.path)


def carve_validation(records: list[Record], spec: ValidationSpec, seed: int = 0) -> tuple[list[Record], list[Record]]:
    """``(train, validation)``: whole recordings to one side, about ``spec.fraction`` of each
    class's clips to validation (a recording counts for its most common label), at least
    one recording per class that has two or more. Deterministic in ``seed``; record order
    is kept on both sides."""
    groups: dict[str, list[Record]] = defaultdict(list)
    for rec in records:
        groups[recording_id(rec)].append(rec)
    by_class: dict[str, list[str]] = defaultdict(list)
    for gid in sorted(groups):
        labels = Counter(str(r.label) for r in groups[gid])
        by_class[sorted(labels, key=lambda c: (-labels[c], c))[0]].append(gid)
    rng = random.Random(f"asclab-validation-{seed}-{spec.fraction}")
    held: set[str] = set()
    for label in sorted(by_class):
        gids = by_class[label]
        if len(gids) < 2:  # a class with one recording stays in training
            continue
        rng.shuffle(gids)
        target = spec.fraction * sum(len(groups[g]) for g in gids)
        taken = 0
        for gid in gids[:-1]:  # never the class's last recording
            if taken and taken + len(groups[gid]) / 2 > target:
                break
            held.add(gid)
            taken += len(groups[gid])
    if not held:
        raise DataError(f"data.validation: cannot carve a validation split from {len(records)} training clips "
                        f"in {len(groups)} recordings (every class has a single recording)")
    train = [r for r in records if recording_id(r) not in held]
    val = [r for r in records if recording_id(r) in held]
    return train, val
