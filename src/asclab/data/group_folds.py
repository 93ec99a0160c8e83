"""Group-wise K-fold assignment: whole recordings go to one fold.

Clips cut from one recording share its sound; splitting them across train and
test measures memory of the recording, not recognition of the scene (the TUT
2016/2017 and TAU setups keep a recording on one side for that reason). Here
each group (by default the ``identifier``: the recording, or TAU's
``city-location``) is placed whole in one of K folds, stratified by class as
far as groups allow: groups are taken largest first (ties in a seeded random
order) and each goes to the fold holding the fewest clips of its classes, then
the fewest clips in all, then the lowest number. The result depends only on
the records, K and the seed. Not a paper method: the official TUT folds
(``evaluation_setup/``) are built the same way by hand.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace
from typing import Mapping

import numpy as np

from asclab.data.records import Record
from asclab.data.validation import recording_id
from asclab.errors import ConfigError, DataError

GROUP_KEYS = ("identifier", "city")


def group_of(rec: Record, by: str) -> str:
    """The group of a record: for ``identifier`` the recording (``validation.recording_id``:
    the identifier, else the TAU file-name part before the segment, else the file), the
    same grouping ``data.validation`` uses; for ``city`` the city, which must be known."""
    if by == "identifier":
        return recording_id(rec)
    value = getattr(rec, by)
    if value is None:
        where = rec.extra.get("source", rec.path)
        row = rec.extra.get("row")
        raise DataError(f"{where}: " + (f"row {row}: " if row is not None else "")
                        + f"{rec.extra.get('filename', rec.path)} has no {by}; cannot group folds by {by}")
    return str(value)


def assign_group_folds(records: list[Record], k: int, *, by: str = "identifier", seed: int = 0) -> list[Record]:
    """The records with ``fold`` set to 1..k, each group whole in one fold (other fields unchanged)."""
    if by not in GROUP_KEYS:
        raise ConfigError(f"group folds by {by!r}: choose one of {', '.join(GROUP_KEYS)}")
    if not isinstance(k, int) or isinstance(k, bool) or k < 2:
        raise ConfigError(f"group folds: the number of folds must be an integer >= 2, not {k!r}")
    groups: dict[str, Counter] = defaultdict(Counter)
    for rec in records:
        groups[group_of(rec, by)][rec.label] += 1
    if len(groups) < k:
        raise DataError(f"{k} folds by {by} need at least {k} groups; the data set has {len(groups)}")
    names = sorted(groups)
    rank = dict(zip(names, np.random.default_rng(seed).permutation(len(names)).tolist()))
    order = sorted(names, key=lambda g: (-sum(groups[g].values()), rank[g]))
    per_class = [Counter() for _ in range(k)]
    totals = [0] * k
    fold_of: dict[str, int] = {}
    for g in order:
        counts = groups[g]
        best = min(range(k), key=lambda f: (sum(per_class[f][c] * n for c, n in counts.items()), totals[f], f))
        fold_of[g] = best + 1
        per_class[best].update(counts)
        totals[best] += sum(counts.values())
    return [replace(rec, fold=fold_of[group_of(rec, by)]) for rec in records]


def group_folds_from_config(cfg: Mapping | None) -> tuple[int, str, int] | None:
    """``data.group_folds`` (``{folds: K, by: identifier, seed: 0}``) -> (K, by, seed), or None."""
    if cfg is None:
        return None
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"data.group_folds must be a mapping like {{folds: 4, by: identifier}}, not {cfg!r}")
    unknown = set(cfg) - {"folds", "by", "seed"}
    if unknown:
        raise ConfigError(f"data.group_folds: unknown key(s) {', '.join(sorted(unknown))} (known: folds, by, seed)")
    if "folds" not in cfg:
        raise ConfigError("data.group_folds.folds is required (the number of folds K)")
    return cfg["folds"], str(cfg.get("by") or "identifier"), int(cfg.get("seed") or 0)
