"""``asclab teachers``: train several teacher recipes and write their logits, in one command.

Without folds: each recipe trains into ``OUT/members/NAME`` on the data set's
training split, and ``OUT/teachers.h5`` holds every clip's logits. With folds
(cross-validation, e.g. ESC-10's five or TUT 2017's recording-wise four): for each
fold k the teachers train on the other folds into ``OUT/fold{k}/members/NAME`` and
``OUT/fold{k}/teachers.h5`` is written, so a student of fold k learns only from
teachers that never heard fold k's test clips:

    asclab teachers T1 T2 --data D --out teach --folds 5
    asclab crossval kd_student --data D --out student --set data.teacher_logits=teach/fold{fold}/teachers.h5

Each folder also gets ``ensemble.json`` (``asclab evaluate`` then scores the
ensemble); ``OUT/teachers.json`` lists each fold's member and ensemble accuracy
(argmax of the mean logits on the fold's test clips) and their mean +- std.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from asclab.config import load_config
from asclab.errors import ConfigError
from asclab.io import write_json
from asclab.train.distributed import is_main_process
from asclab.workflows.crossval import crossval_plan
from asclab.workflows.logits import compute_teacher_logits
from asclab.workflows.run_folder import claim_run_folder
from asclab.workflows.train import train_run


def _fold_overrides(recipe_name: str, data_dir, folds: int | None, group_by: str | None,
                    overrides: list[str]) -> tuple[list[str], list]:
    """The folds to train (and the override that fixes recording-wise folds), exactly as
    ``asclab crossval`` chooses them, so each fold's teachers and student share one split."""
    overrides, _, _, chosen = crossval_plan(recipe_name, data_dir, folds=folds, group_by=group_by,
                                            overrides=overrides)
    return overrides, chosen


def train_teacher_set(recipes: Sequence[str], data_dir, out: Path, overrides: list[str], *,
                      cache_dir=None, progress: bool = True, force: bool = False,
                      duration: float | None = None) -> dict:
    """Train each recipe into ``out/members/NAME`` and write ``out/teachers.h5``."""
    runs = []
    for name in recipes:
        run = out / "members" / Path(str(name)).stem
        if (run / "model.ckpt").exists() and not force:
            print(f"{run}: trained already, reusing it")
        else:
            train_run(name, data_dir, run, overrides=overrides, cache_dir=cache_dir, progress=progress, force=force)
        runs.append(run)
    write_json(out / "ensemble.json", {"members": [str(r.relative_to(out) / "model.ckpt") for r in runs]})
    return compute_teacher_logits(runs, data_dir, out / "teachers.h5", duration=duration, progress=progress)


def train_teachers(recipes: Sequence[str], data_dir, out_dir, *, folds: int | None = None,
                   group_by: str | None = None, overrides: list[str] | None = None, cache_dir=None,
                   progress: bool = True, force: bool = False, duration: float | None = None) -> dict:
    """Train the teachers into ``out_dir``, held alone as a training run holds its folder
    (``asclab.workflows.run_folder.claim_run_folder``): every recipe is checked first, ``--out`` must be new,
    empty, writable or an earlier teachers folder (its trained members are reused), a second
    command on it is refused at once, and one that fails before any member's first checkpoint
    in a folder it created leaves nothing behind."""
    if not recipes:
        raise ConfigError("asclab teachers needs at least one teacher recipe")
    for name in recipes:  # every key of every teacher recipe checked before the folder is touched
        load_config(name, overrides)
    with claim_run_folder(out_dir, lock=is_main_process()):
        return _train_teachers_claimed(recipes, data_dir, Path(out_dir), folds=folds, group_by=group_by,
                                       overrides=list(overrides or []), cache_dir=cache_dir, progress=progress,
                                       force=force, duration=duration)


def _train_teachers_claimed(recipes: Sequence[str], data_dir, out: Path, *, folds: int | None,
                            group_by: str | None, overrides: list[str], cache_dir, progress: bool, force: bool,
                            duration: float | None) -> dict:
    t0 = time.time()
    if not folds and group_by is None:
        s = train_teacher_set(recipes, data_dir, out, overrides, cache_dir=cache_dir, progress=progress,
                              force=force, duration=duration)
        summary = {"recipes": list(recipes), "data": str(data_dir), "teachers": s,
                   "total_seconds": round(time.time() - t0, 1)}
        write_json(out / "teachers.json", summary)
        return summary
    overrides, chosen = _fold_overrides(recipes[0], data_dir, folds, group_by, overrides)
    per_fold = []
    for fold in tqdm(chosen, desc="teacher folds", unit="fold", disable=not progress, position=1, leave=True):
        s = train_teacher_set(recipes, data_dir, out / f"fold{fold}",
                              ["train.keep=last"] + overrides + [f"data.test_fold={fold}"],
                              cache_dir=cache_dir, progress=progress, force=force, duration=duration)
        per_fold.append({"fold": fold, **s})
    summary = {"recipes": list(recipes), "data": str(data_dir), "folds": chosen, "overrides": overrides,
               "per_fold": per_fold, "teacher_file": str(out / "fold{fold}" / "teachers.h5")}
    accs = [f.get("test_accuracy_mean_logits") for f in per_fold]
    if all(a is not None for a in accs):
        a = np.array(accs)
        summary["ensemble_accuracy"] = {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0}
        m = np.array([f["test_accuracy_members"] for f in per_fold])  # [folds, members]
        summary["member_accuracy"] = {Path(str(r)).stem: {"mean": float(m[:, j].mean()),
                                                          "std": float(m[:, j].std(ddof=1)) if len(m) > 1 else 0.0}
                                      for j, r in enumerate(recipes)}
    summary["total_seconds"] = round(time.time() - t0, 1)
    write_json(out / "teachers.json", summary)
    return summary
