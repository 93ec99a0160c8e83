"""Train one recipe with Lightning: progress bar, best/last checkpoints, a CSV
log, one seed for everything; multi-stage workflows (ArcFace, pruning and
fine-tuning, retraining) run as a sequence of stages over the same module."""
from __future__ import annotations

import copy
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar

from asclab.compress.complexity import complexity_report, default_input_shape
from asclab.compress.prune import finalize_pruning
from asclab.compress.qat import convert_int8
from asclab.config import as_config
from asclab.data.records import Record
from asclab.data.validation import kept_weights
from asclab.config import RecipeConfig
from asclab.errors import ConfigError
from asclab.io import atomic_path
from asclab.train.device_specific import DeviceTuning, expand_device_stages, restrict_to_device
from asclab.train.data import device_list, readable_records, make_dataset, make_loader, needs_waveforms, select_training_records
from asclab.train.distributed import is_main_process, scale_lr
from asclab.train.averaging import build_averaging
from asclab.train.loggers import stage_loggers
from asclab.train.module import ASCModule
from asclab.train.resume import (AtomicCheckpointIO, ResumeCheckpoint, ResumeState, keep_log_before_resume,
                                 mark_stage_done, merge_resumed_log, resume_checkpoint, stage_done, start_fresh)
from asclab.train.stages import apply_stage, stage_list, stage_records

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
    is_main: bool = True  # the process that writes results (global rank 0 under DDP)
    pruning: list[dict] = field(default_factory=list)  # complexity before/after each pruning stage
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason) left out with on_error=skip


def fit(recipe: dict, train_records: list[Record], val_records: list[Record], classes: list[str],
        out_dir: Path, *, cache_dir: Path | None = None, progress: bool = True,
        trainer_kwargs: dict | None = None, resume: bool = False,
        teachers: "TeacherLogits | None" = None, config: RecipeConfig | None = None) -> FitResult:
    """Train every stage of ``recipe`` into ``out_dir``. ``teachers``: the clips' teacher
    logits for the distillation loss (``asclab.distill.targets``). ``resume``: continue an interrupted
    run there (finished stages are skipped, the current one continues from its
    ``checkpoints/last.ckpt``, see ``asclab.train.resume``). ``config``: the recipe's typed
    configuration (``asclab.config.load_config``; parsed from ``recipe`` when not given)."""
    t0 = time.time()
    out_dir = Path(out_dir)
    cfg = config if config is not None else as_config(recipe)
    kept_weights(recipe)  # train.keep: best needs data.validation; the caller passes that split as val_records
    # Denormal floats: flushing them made the quickstart's first steps on real cached features
    # 5x faster on this CPU (1.5-2.3 s -> 0.25 s per batch); bench_train.py sees little effect
    # in steady-state steps on random inputs.
    torch.set_flush_denormal(True)
    seed = cfg.train.seed
    L.seed_everything(seed, workers=True, verbose=False)
    devices = device_list(list(train_records) + list(val_records), cfg.data.major_device)
    skipped: list[tuple[str, str]] = []
    if cfg.data.on_error == "skip":  # unreadable audio: counted, reported, left out
        duration, rate = cfg.data.duration, cfg.data.expect_rate
        train_records, bad_train = readable_records(list(train_records), duration, rate)
        val_records, bad_val = readable_records(list(val_records), duration, rate)
        skipped = bad_train + bad_val
        for path, why in skipped:
            print(f"skipped {why}", file=sys.stderr)
    records = select_training_records(list(train_records), cfg, seed)
    if not records:
        raise ConfigError("no training records: check the data folder and the recipe's split")
    waves = needs_waveforms(cfg)
    train_ds = make_dataset(records, cfg, classes, devices, waves, cache_dir, progress)
    if teachers is not None:  # each item gains its clip's teacher logits, looked up by file name
        train_ds = teachers.wrap(train_ds, records)
    val_ds = make_dataset(list(val_records), cfg, classes, devices, False, cache_dir, progress) if val_records else None
    class_counts = [sum(r.label == c for r in records) for c in classes]
    module = ASCModule(recipe, classes, devices, class_counts, config=cfg)
    stages = expand_device_stages(stage_list(recipe), records)  # device_specific: one stage per device
    tuning = DeviceTuning()
    best_path = None
    resuming, is_main = resume, is_main_process()
    shape = default_input_shape(cfg.features, 1.0)
    pruning_log: list[dict] = []
    for i, stage in enumerate(stages):
        if stage.get("prune"):  # QTI 2020 sec. 5: the complexity check before and after pruning
            pruning_log.append({"stage": stage.get("name"), "when": "before pruning",
                                **complexity_report(module.model, shape)})
        srecipe = apply_stage(module, recipe, stage)
        scfg = as_config(srecipe)  # the stage's typed configuration (its train block merged in)
        tuning.begin(module, stage)  # a device's stage starts again from the general weights
        stage_dir = out_dir if len(stages) == 1 else out_dir / "stages" / f"{i + 1}_{stage.get('name', 'stage')}"
        ckpt_path = None
        if resuming:  # stages finished before the interruption only contribute their final weights
            done = stage_done(stage_dir)
            if done is not None:
                module.load_state_dict(torch.load(done["weights"], map_location="cpu", weights_only=True)["state_dict"],
                                       strict=False)
                best_path = Path(done["best"]) if done.get("best") else best_path
                if stage.get("prune"):
                    finalize_pruning(module.model)
                if stage.get("qat") is not None:
                    module.model = convert_int8(module.model)
                tuning.finish(module, stage)
                continue
            ckpt_path, resuming = resume_checkpoint(stage_dir), False
            if ckpt_path is not None and is_main:
                keep_log_before_resume(stage_dir)
        elif is_main:
            start_fresh(stage_dir)  # an earlier run's last.ckpt / done mark must not be resumed later
        stage_ds = train_ds
        own_records = stage_records(list(train_records), srecipe, stage, seed + i)  # full_split / balance
        if own_records is not None:
            stage_ds = make_dataset(own_records, scfg, classes, devices, waves, cache_dir, progress)
            if teachers is not None:
                stage_ds = teachers.wrap(stage_ds, own_records)
        stage_ds = restrict_to_device(stage_ds, records, stage)  # a device's stage: its clips only
        stage_val = restrict_to_device(val_ds, list(val_records), stage)
        bs = scfg.train.batch_size  # per process (docs/distributed.md)
        nw = scfg.train.num_workers
        # train.keep: best (only with data.validation, checked by kept_weights) saves the best epoch
        keep = stage.get("keep", scfg.train.keep)
        ckpt = (ModelCheckpoint(dirpath=stage_dir / "checkpoints", filename="best", monitor="val_macro_acc",
                                mode="max", save_last=False, save_top_k=1)
                if stage_val is not None and keep == "best" else None)
        resume_state = ResumeState(seed + i)
        callbacks = ([ckpt] if ckpt is not None else []) + [
            ResumeCheckpoint(stage_dir / "checkpoints", scfg.train.checkpoint_every_n_steps),
            resume_state] + ([TQDMProgressBar(refresh_rate=5)] if progress else [])
        # train.average_last / average_best: k (train/averaging.py); best-k only on data.validation
        averager = build_averaging(srecipe["train"], has_validation=scfg.data.validation is not None)
        if averager is not None:
            callbacks.append(averager)
        kwargs = dict(max_epochs=scfg.train.epochs, accelerator="cpu" if not torch.cuda.is_available() else "auto",
                      devices=1, logger=stage_loggers(stage_dir, scfg.train.logger),
                      callbacks=callbacks, plugins=[AtomicCheckpointIO()], use_distributed_sampler=False,
                      sync_batchnorm=scfg.train.sync_batchnorm,
                      enable_progress_bar=progress,
                      enable_model_summary=False, log_every_n_steps=5,
                      deterministic=scfg.train.deterministic,
                      precision=scfg.train.precision,
                      check_val_every_n_epoch=scfg.train.val_every,
                      num_sanity_val_steps=0)
        kwargs.update(trainer_kwargs or {})
        trainer = L.Trainer(**kwargs)
        world = trainer.world_size
        module.stage_recipe = scale_lr(srecipe, world)  # what configure_optimizers reads
        # train.drop_last: null drops the last incomplete batch when a full one exists (BatchNorm on
        # a tiny batch); false keeps it, as the DCASE 2024 baseline's DataLoader does.
        drop_last = scfg.train.drop_last
        train_loader = make_loader(stage_ds, bs, shuffle=True, num_workers=nw, seed=seed + i,
                                   drop_last=(len(stage_ds) // world > bs) if drop_last is None else bool(drop_last))
        val_loader = make_loader(stage_val, bs, shuffle=False, num_workers=nw) if stage_val is not None else None
        resume_state.loader = train_loader
        trainer.fit(module, train_loader, val_loader, ckpt_path=str(ckpt_path) if ckpt_path else None,
                    weights_only=True)  # a checkpoint is data; loading it runs no code
        is_main = trainer.is_global_zero
        weights = stage_dir / "checkpoints" / "last.ckpt"
        best = Path(ckpt.best_model_path) if ckpt is not None and ckpt.best_model_path else None
        if averager is not None and averager.apply(module, DataLoader(stage_ds, batch_size=bs)):
            weights = stage_dir / "checkpoints" / "averaged.ckpt"  # the average replaces best/last
            if is_main:
                with atomic_path(weights) as tmp:
                    torch.save({"state_dict": module.state_dict()}, tmp)
        elif best is not None and best.exists() and keep == "best":
            state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(state, strict=False)
            best_path = weights = best
        if stage.get("prune"):
            finalize_pruning(module.model)
            pruning_log.append({"stage": stage.get("name"), "when": "after pruning and fine-tuning",
                                **complexity_report(module.model, shape)})
        if stage.get("qat") is not None:  # asclab.compress.qat: the fake-quantised model becomes int8
            module.model = convert_int8(module.model)
        if is_main:
            merge_resumed_log(stage_dir)
            mark_stage_done(stage_dir, {"weights": str(weights), "best": str(best_path) if best_path else None})
        tuning.finish(module, stage)
    container = tuning.container(module.model)  # DCASE 2025: the general model + one model per device
    if container is not None:
        module.model = container
    return FitResult(module, classes, devices, records, list(val_records), best_path, time.time() - t0, stages,
                     is_main, pruning_log, skipped)
