"""Train one recipe: one seed for everything, then the workflow's stages as a loop over phases
over the same module. What a stage does (ArcFace, pruning, QAT, device-specific fine-tuning,
balanced records...) is its parts' (``asclab.train.stages``); one phase's Lightning training is
``asclab.train.phase``; an interrupted run resumes at the phase it stopped in."""
from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch

from asclab.config import RecipeConfig, as_config
from asclab.data.records import Record
from asclab.data.teacher_targets import TeacherLogits
from asclab.data.validation import kept_weights
from asclab.errors import ConfigError
from asclab.train.data import device_list, make_dataset, needs_waveforms, readable_records, select_training_records
from asclab.train.distributed import is_main_process
from asclab.train.module import ASCModule
from asclab.train.phase import train_phase
from asclab.train.resume import (keep_log_before_resume, mark_stage_done, merge_resumed_log, resume_checkpoint,
                                 stage_done, start_fresh)
from asclab.train.stages import RunContext, plan_phases, prepare_phase, stage_context, stage_parts

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
        teachers: TeacherLogits | None = None, config: RecipeConfig | None = None) -> FitResult:
    """Train every stage of ``recipe`` into ``out_dir``. ``teachers``: the clips' teacher
    logits for the distillation loss (``asclab.data.teacher_targets``). ``resume``: continue an interrupted
    run there (finished stages are skipped, the current one continues from its
    ``checkpoints/last.ckpt``, see ``asclab.train.resume``). ``config``: the recipe's typed
    configuration (``asclab.config.load_config``; parsed from ``recipe`` when not given)."""
    t0 = time.time()
    out_dir = Path(out_dir)
    cfg = config if config is not None else as_config(recipe)
    kept_weights(cfg)  # train.keep: best needs data.validation; the caller passes that split as val_records
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

    def dataset(recs: list[Record], c: RecipeConfig):
        ds = make_dataset(recs, c, classes, devices, waves, cache_dir, progress)
        return teachers.wrap(ds, recs) if teachers is not None else ds  # each item gains its teacher logits

    train_ds = dataset(records, cfg)
    val_ds = make_dataset(list(val_records), cfg, classes, devices, False, cache_dir, progress) if val_records else None
    class_counts = [sum(r.label == c for r in records) for c in classes]
    module = ASCModule(recipe, classes, devices, class_counts, config=cfg)
    run = RunContext(recipe, cfg, list(train_records), records, list(val_records), dataset)
    parts = stage_parts()  # this run's parts (they keep state across phases)
    phases = plan_phases(run, parts)
    best_path, resuming, is_main = None, resume, is_main_process()
    for i, phase in enumerate(phases):
        ctx = stage_context(run, phase, i)
        active = [p for p in parts if p.active(phase)]
        prepare_phase(module, active, ctx)
        stage_dir = out_dir if len(phases) == 1 else out_dir / "stages" / f"{i + 1}_{phase.name or 'stage'}"
        ckpt_path = None
        if resuming:  # stages finished before the interruption only contribute their final weights
            done = stage_done(stage_dir)
            if done is not None:
                module.load_state_dict(torch.load(done["weights"], map_location="cpu", weights_only=True)["state_dict"],
                                       strict=False)
                best_path = Path(done["best"]) if done.get("best") else best_path
                for part in active:
                    part.restore(module, ctx)
                continue
            ckpt_path, resuming = resume_checkpoint(stage_dir), False
            if ckpt_path is not None and is_main:
                keep_log_before_resume(stage_dir)
        elif is_main:
            start_fresh(stage_dir)  # an earlier run's last.ckpt / done mark must not be resumed later
        stage_ds, stage_val = train_ds, val_ds
        for part in active:
            stage_ds, stage_val = part.datasets(stage_ds, stage_val, ctx)
        result = train_phase(module, ctx, stage_ds, stage_val, stage_dir, ckpt_path, progress=progress,
                             trainer_kwargs=trainer_kwargs)
        is_main, best_path = result.is_main, result.best or best_path
        for part in active:
            part.finish(module, ctx)
        if is_main:
            merge_resumed_log(stage_dir)
            mark_stage_done(stage_dir, {"weights": str(result.weights), "best": str(best_path) if best_path else None})
    for part in parts:
        part.end(module, run)
    return FitResult(module, classes, devices, records, list(val_records), best_path, time.time() - t0,
                     [p.raw for p in phases], is_main, run.logs.get("pruning", []), skipped)
