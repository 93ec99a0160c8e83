"""Cross-validation over a data set's folds (or recording-wise folds): the ``asclab crossval`` workflow."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from asclab.config import (
    load_config,
)
from asclab.data import open_dataset
from asclab.data.open import group_folds_mapping
from asclab.data.tables import write_table
from asclab.errors import AsclabError, ConfigError
from asclab.evaluate.plots import plot_confusion
from asclab.io import write_json
from asclab.train.distributed import is_main_process
from asclab.workflows.run_folder import claim_run_folder
from asclab.workflows.train import train_run


def _fold_over_seeds(runs: list[dict]) -> dict:
    """One fold's figures over its seeds: the means, each seed's accuracy and the spread."""
    fold = {"fold": runs[0]["fold"], "seeds": [r["seed"] for r in runs]}
    for key in ("accuracy", "macro_accuracy", "log_loss"):
        ms = _mean_std([r[key] for r in runs])
        fold[key] = ms["mean"]
        if key != "log_loss":
            fold[key + "_seed_std"] = ms["std"]
    fold["per_seed_accuracy"] = [r["accuracy"] for r in runs]
    fold["train_seconds"] = float(sum(r["train_seconds"] for r in runs))
    fold["n_test"], fold["test_recordings"] = runs[0]["n_test"], runs[0]["test_recordings"]
    fold["confusion"] = np.sum([np.array(r["confusion"]) for r in runs], axis=0).tolist()
    return fold


def crossval_plan(recipe_name: str | Path | dict, data_dir: str | Path, *, folds: int | None = None,
                  group_by: str | None = None, overrides: list[str] | None = None):
    """The folds ``crossval`` trains: ``(overrides, config, index, chosen_folds)``, where
    ``overrides`` gains ``data.group_folds`` for recording-wise folds (``group_by``, or a data
    set without folds and ``folds`` given) so each fold's run recipe reproduces its split."""
    overrides = list(overrides or [])
    _, cfg = load_config(recipe_name, overrides)
    if group_by is None and cfg.data.group_folds is None and folds:
        probe = open_dataset(data_dir, class_map=cfg.data.class_map)
        if not any(r.fold is not None for r in probe.records):
            group_by = "identifier"  # no predefined folds: recording-wise ones
            print(f"{data_dir}: no predefined folds; assigning {folds} folds by {group_by}")
    if group_by is not None:
        k = folds or (cfg.data.group_folds.folds if cfg.data.group_folds is not None else None)
        if not k:
            raise ConfigError(f"--group-by {group_by} needs the number of folds: --folds K")
        overrides.append(f"data.group_folds={{folds: {int(k)}, by: {group_by}}}")
        _, cfg = load_config(recipe_name, overrides)
    index = open_dataset(data_dir, class_map=cfg.data.class_map, group_folds=group_folds_mapping(cfg.data.group_folds))
    available = sorted({r.fold for r in index.records if r.fold is not None})
    if not available:
        raise AsclabError(f"{data_dir}: the data set defines no folds (a fold column or a file-name pattern); "
                          "--folds K --group-by identifier assigns K recording-wise folds")
    if folds and folds > len(available):
        raise AsclabError(f"{data_dir}: asked for {folds} folds, the data set has {len(available)}")
    return overrides, cfg, index, (available[:folds] if folds else available)


def crossval(recipe_name: str | Path, data_dir: str | Path, out_dir: str | Path, *, folds: int | None = None,
             overrides: list[str] | None = None, cache_dir: Path | None = None, progress: bool = True,
             force: bool = False, group_by: str | None = None, seeds: list[int] | None = None) -> dict:
    """Train and evaluate on each fold; write per-fold and mean +- std metrics, a summed
    confusion matrix, the fold of every clip (``folds.tsv``) and the total time.

    The folds are the data set's own (ESC-10's five, TUT's official four), or, with
    ``group_by`` (e.g. "identifier"), or when the data set has none and ``folds`` is
    given, ``folds`` recording-wise folds (``asclab.data.group_folds``, recorded in each
    fold's recipe as ``data.group_folds``). The ``out_dir`` is held alone, as a training run
    holds its folder (``asclab.workflows.run_folder.claim_run_folder``).

    ``seeds`` (e.g. [0, 1, 2]): train each fold once per seed (``train.seed``) into
    ``fold{k}/seed{s}``; a fold's figures are the mean over its seeds, ``per_run`` keeps
    every run and ``seed_std`` the mean over folds of the spread between seeds. On small
    test folds the spread is large (TUT 2017, 82 clips: see results/kd/v2/seeds), so one
    seed per fold can rank two systems either way."""
    if seeds is not None and (not seeds or len(set(seeds)) != len(seeds) or any(int(x) < 0 for x in seeds)):
        raise ConfigError(f"--seeds must be distinct non-negative integers, got {seeds!r}")
    load_config(recipe_name, overrides)  # every recipe key checked before the folder is touched
    with claim_run_folder(out_dir, lock=is_main_process()):
        return _crossval_claimed(recipe_name, data_dir, out_dir, folds=folds, overrides=overrides,
                                 cache_dir=cache_dir, progress=progress, force=force, group_by=group_by,
                                 seeds=seeds)


def _mean_std(vals) -> dict:
    vals = np.asarray(vals, dtype=float)
    return {"mean": float(vals.mean()), "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0}


def _crossval_claimed(recipe_name: str | Path, data_dir: str | Path, out_dir: str | Path, *, folds: int | None,
                      overrides: list[str] | None, cache_dir: Path | None, progress: bool, force: bool,
                      group_by: str | None, seeds: list[int] | None = None) -> dict:
    t0 = time.time()
    overrides, cfg, index, chosen = crossval_plan(recipe_name, data_dir, folds=folds, group_by=group_by,
                                                     overrides=overrides)
    out = Path(out_dir)
    runs = []
    plan = [(fold, seed) for fold in chosen for seed in (seeds or [None])]
    fold_bar = tqdm(plan, desc="crossval folds", unit="run", disable=not progress, position=1, leave=True)
    for fold, seed in fold_bar:
        fold_bar.set_postfix_str(f"fold {fold} of {chosen[-1]}" + ("" if seed is None else f", seed {seed}"))
        # The held-out fold is the test set: keep the last epoch's weights rather than
        # the epoch that scored best on it, so the estimate is not chosen on the test data.
        run_dir = out / f"fold{fold}" if seed is None else out / f"fold{fold}" / f"seed{seed}"
        s = train_run(recipe_name, data_dir, run_dir, overrides=["train.keep=last"] + overrides +
                      [f"data.test_fold={fold}"] + ([] if seed is None else [f"train.seed={int(seed)}"]),
                      cache_dir=cache_dir, progress=progress, force=force)
        m = s["metrics"]
        runs.append({"fold": fold, **({} if seed is None else {"seed": int(seed)}),
                     "accuracy": m["accuracy"], "macro_accuracy": m["macro_accuracy"],
                     "log_loss": m["log_loss"], "train_seconds": s["train_seconds"], "n_test": m["n"],
                     "test_recordings": len({r.identifier for r in index.records
                                             if r.fold == fold and r.identifier is not None}),
                     "confusion": m["confusion"]})
    fold_bar.close()
    classes = index.classes
    results = runs if seeds is None else [_fold_over_seeds([r for r in runs if r["fold"] == f]) for f in chosen]
    total_cm = np.sum([np.array(r["confusion"]) for r in runs], axis=0)
    summary = {"recipe": cfg.name, "data": str(data_dir), "folds": chosen, "per_fold": results,
               "group_folds": group_folds_mapping(cfg.data.group_folds)}
    for key in ("accuracy", "macro_accuracy", "log_loss"):
        summary[key] = _mean_std([r[key] for r in results])
    if seeds is not None:
        summary["seeds"] = [int(x) for x in seeds]
        summary["per_run"] = runs
        summary["seed_std"] = {key: float(np.mean([r[key + "_seed_std"] for r in results]))
                               for key in ("accuracy", "macro_accuracy")}
    summary["confusion"] = total_cm.tolist()
    summary["classes"] = classes
    summary["total_seconds"] = round(time.time() - t0, 1)
    first = out / f"fold{chosen[0]}" if seeds is None else out / f"fold{chosen[0]}" / f"seed{int(seeds[0])}"
    summary["complexity"] = json.loads((first / "complexity.json").read_text())
    write_json(out / "crossval.json", summary)
    write_table(out / "folds.tsv", ("filename", "label", "identifier", "fold"),
                [(r.extra.get("filename", r.path), r.label, r.identifier, r.fold) for r in index.records
                 if r.fold in chosen])
    plot_confusion(total_cm, classes, out / "confusion_sum.png",
                   title=f"{len(chosen)}-fold summed, accuracy {summary['accuracy']['mean']:.3f}")
    return summary
