"""Train one recipe with Lightning: progress bar, best/last checkpoints, a CSV
log, one seed for everything; multi-stage workflows (ArcFace, pruning and
fine-tuning, retraining) run as a sequence of stages over the same module."""
from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger

from asclab.compress.prune import finalize_pruning
from asclab.config import deep_merge
from asclab.data.records import Record
from asclab.errors import ConfigError
from asclab.train.data import device_list, make_dataset, make_loader, needs_waveforms, select_training_records
from asclab.train.module import ASCModule
from asclab.train.stages import apply_stage, stage_list

warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*on_epoch=True.*")


@dataclass
class FitResult:
    module: ASCModule
    classes: list[str]
    devices: list[str]
    train_records: list[Record]
    val_records: list[Record]
    best_path: Path | None
    seconds: float
    stages: list[dict] = field(default_factory=list)


def fit(recipe: dict, train_records: list[Record], val_records: list[Record], classes: list[str],
        out_dir: Path, *, cache_dir: Path | None = None, progress: bool = True,
        trainer_kwargs: dict | None = None, resume_from: Path | None = None) -> FitResult:
    t0 = time.time()
    out_dir = Path(out_dir)
    # Denormal floats in early training made CPU steps 5x slower here (benchmarks/bench_train.py).
    torch.set_flush_denormal(True)
    seed = int(recipe["train"].get("seed", 0))
    L.seed_everything(seed, workers=True, verbose=False)
    major = recipe["data"].get("major_device")
    devices = device_list(list(train_records) + list(val_records), major)
    records = select_training_records(list(train_records), recipe, seed)
    if not records:
        raise ConfigError("no training records: check the data folder and the recipe's split")
    waves = needs_waveforms(recipe)
    train_ds = make_dataset(records, recipe, classes, devices, waves, cache_dir, progress)
    val_ds = make_dataset(list(val_records), recipe, classes, devices, False, cache_dir, progress) if val_records else None
    class_counts = [sum(r.label == c for r in records) for c in classes]
    module = ASCModule(recipe, classes, devices, class_counts)
    stages = stage_list(recipe)
    best_path = None
    for i, stage in enumerate(stages):
        srecipe = apply_stage(module, recipe, stage)
        if stage.get("records") == "balanced" and not recipe["data"].get("balance"):
            raise ConfigError(f"stage {stage.get('name')!r} asks for balanced data but data.balance is not set")
        stage_ds = train_ds
        if stage.get("balance"):
            bal_recipe = deep_merge(srecipe, {"data": {"balance": stage["balance"]}})
            stage_ds = make_dataset(select_training_records(list(train_records), bal_recipe, seed + i),
                                    srecipe, classes, devices, waves, cache_dir, progress)
        bs = int(srecipe["train"]["batch_size"])
        nw = int(srecipe["train"].get("num_workers", 0))
        train_loader = make_loader(stage_ds, bs, shuffle=True, num_workers=nw, seed=seed + i,
                                   drop_last=len(stage_ds) > bs)
        val_loader = make_loader(val_ds, bs, shuffle=False, num_workers=nw) if val_ds is not None else None
        stage_dir = out_dir if len(stages) == 1 else out_dir / "stages" / f"{i + 1}_{stage.get('name', 'stage')}"
        ckpt = ModelCheckpoint(dirpath=stage_dir / "checkpoints", filename="best",
                               monitor="val_macro_acc" if val_loader is not None else None,
                               mode="max", save_last=True, save_top_k=1 if val_loader is not None else 0)
        kwargs = dict(max_epochs=int(srecipe["train"]["epochs"]), accelerator="cpu" if not torch.cuda.is_available() else "auto",
                      devices=1, logger=CSVLogger(str(stage_dir), name="", version="logs"),
                      callbacks=[ckpt] + ([TQDMProgressBar(refresh_rate=5)] if progress else []),
                      enable_progress_bar=progress,
                      enable_model_summary=False, log_every_n_steps=5,
                      deterministic=bool(srecipe["train"].get("deterministic", False)),
                      precision=srecipe["train"].get("precision", "32-true"),
                      check_val_every_n_epoch=int(srecipe["train"].get("val_every", 1)),
                      num_sanity_val_steps=0)
        kwargs.update(trainer_kwargs or {})
        trainer = L.Trainer(**kwargs)
        trainer.fit(module, train_loader, val_loader, ckpt_path=str(resume_from) if (resume_from and i == 0) else None)
        best = Path(ckpt.best_model_path) if ckpt.best_model_path else None
        if best is not None and best.exists() and stage.get("keep", "best") == "best":
            state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(state, strict=False)
            best_path = best
        if stage.get("prune"):
            finalize_pruning(module.model)
    return FitResult(module, classes, devices, records, list(val_records), best_path, time.time() - t0, stages)
