"""One training phase with Lightning: the stage's trainer (progress bar, best/last and resume
checkpoints, CSV log, weight averaging), its loaders, and the weights it leaves in the module.
Not from a paper; the multi-stage workflow around it is ``asclab.train.fit``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from torch.utils.data import DataLoader, Dataset

from asclab.config import plain
from asclab.io import atomic_path
from asclab.train.averaging import build_averaging
from asclab.train.data import make_loader
from asclab.train.distributed import lr_factor
from asclab.train.loggers import stage_loggers
from asclab.train.precision import resolve_precision
from asclab.train.resume import AtomicCheckpointIO, ResumeCheckpoint, ResumeState
from asclab.train.stages import StageContext


@dataclass
class PhaseResult:
    weights: Path  # the file of the weights the module now holds (last, best or averaged)
    best: Path | None  # the best epoch's checkpoint when it was loaded (train.keep: best)
    is_main: bool  # the process that writes results (global rank 0 under DDP)


def train_phase(module: L.LightningModule, ctx: StageContext, train_ds: Dataset, val_ds: Dataset | None,
                stage_dir: Path, ckpt_path: Path | None, *, progress: bool = True,
                trainer_kwargs: dict | None = None) -> PhaseResult:
    """Train ``module`` for one phase on ``train_ds`` (validating on ``val_ds``) into ``stage_dir``,
    continuing from ``ckpt_path`` when given; the module keeps the weights the phase keeps."""
    scfg, seed = ctx.config, ctx.seed
    bs = scfg.train.batch_size  # per process (docs/distributed.md)
    nw = scfg.train.num_workers
    # train.keep: best (only with data.validation, checked by kept_weights) saves the best epoch
    keep = ctx.stage.keep or scfg.train.keep
    ckpt = (ModelCheckpoint(dirpath=stage_dir / "checkpoints", filename="best", monitor="val_macro_acc",
                            mode="max", save_last=False, save_top_k=1)
            if val_ds is not None and keep == "best" else None)
    resume_state = ResumeState(seed)
    callbacks = ([ckpt] if ckpt is not None else []) + [
        ResumeCheckpoint(stage_dir / "checkpoints", scfg.train.checkpoint_every_n_steps),
        resume_state] + ([TQDMProgressBar(refresh_rate=5)] if progress else [])
    # train.average_last / average_best: k (train/averaging.py); best-k only on data.validation
    averager = build_averaging(ctx.recipe["train"], has_validation=scfg.data.validation is not None)
    if averager is not None:
        callbacks.append(averager)
    kwargs = dict(max_epochs=scfg.train.epochs, accelerator="cpu" if not torch.cuda.is_available() else "auto",
                  devices=1, logger=stage_loggers(stage_dir, scfg.train.logger),
                  callbacks=callbacks, plugins=[AtomicCheckpointIO()], use_distributed_sampler=False,
                  sync_batchnorm=scfg.train.sync_batchnorm,
                  enable_progress_bar=progress,
                  enable_model_summary=False, log_every_n_steps=5,
                  deterministic=scfg.train.deterministic,
                  precision=resolve_precision(scfg.train.precision, plain(scfg.model),
                                              cuda=torch.cuda.is_available(),
                                              quantising=getattr(ctx.stage, "qat", None) is not None),
                  check_val_every_n_epoch=scfg.train.val_every,
                  num_sanity_val_steps=0)
    kwargs.update(trainer_kwargs or {})
    trainer = L.Trainer(**kwargs)
    world = trainer.world_size
    module.lr_scale = lr_factor(scfg.train.scale_lr, world)  # configure_optimizers scales optim.lr by it
    # train.drop_last: null drops the last incomplete batch when a full one exists (BatchNorm on
    # a tiny batch); false keeps it, as the DCASE 2024 baseline's DataLoader does.
    drop_last = scfg.train.drop_last
    train_loader = make_loader(train_ds, bs, shuffle=True, num_workers=nw, seed=seed,
                               drop_last=(len(train_ds) // world > bs) if drop_last is None else bool(drop_last))
    val_loader = make_loader(val_ds, bs, shuffle=False, num_workers=nw) if val_ds is not None else None
    resume_state.loader = train_loader
    trainer.fit(module, train_loader, val_loader, ckpt_path=str(ckpt_path) if ckpt_path else None,
                weights_only=True)  # a checkpoint is data; loading it runs no code
    is_main = trainer.is_global_zero
    weights = stage_dir / "checkpoints" / "last.ckpt"
    best = Path(ckpt.best_model_path) if ckpt is not None and ckpt.best_model_path else None
    if averager is not None and averager.apply(module, DataLoader(train_ds, batch_size=bs)):
        weights = stage_dir / "checkpoints" / "averaged.ckpt"  # the average replaces best/last
        if is_main:
            with atomic_path(weights) as tmp:
                torch.save({"state_dict": module.state_dict()}, tmp)
        return PhaseResult(weights, None, is_main)
    if best is not None and best.exists() and keep == "best":
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state, strict=False)
        return PhaseResult(best, best, is_main)
    return PhaseResult(weights, None, is_main)
