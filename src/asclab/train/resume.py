"""Exact resume of an interrupted run (``asclab train --resume RUN``).

Lightning's ``ckpt_path`` restores the model, optimiser, LR-scheduler position,
loop counters and callback states. What it does not restore, and what this
module adds (read from lightning 2.6's fit/epoch loops and checkpoint code):

- random states: Lightning checkpoints hold none. :class:`ResumeState` saves
  torch (CPU and CUDA), numpy and python states of every process and restores
  them when training restarts, so mixup/FreqMix draws continue as if never
  interrupted;
- the data position: resuming mid-epoch, Lightning keeps its batch counter but
  restarts the dataloader from the beginning, unless the loader is "stateful"
  (``state_dict``/``load_state_dict``, saved under ``loops.fit_loop``).
  :class:`EpochLoader` is: it saves (epoch, batches delivered), and its
  :class:`~asclab.train.distributed.EpochSampler` then skips the consumed part
  of the same epoch order. Lightning 2.6 loads that state too late when
  ``configure_optimizers`` reads ``estimated_stepping_batches`` (ours does), so
  :class:`ResumeState` carries and restores it. Its iterator starts lazily, after Lightning's
  ``set_epoch``, and re-seeds the worker seed generator per epoch, so worker
  seeds do not depend on how many epochs this process has run;
- mid-epoch checkpoints: :class:`ResumeCheckpoint` writes ``last.ckpt`` every
  ``train.checkpoint_every_n_steps`` optimiser steps and after every epoch;
- atomic writes: Lightning writes through an fsspec transaction whose temporary
  file lies in the system temp folder; when that is another file system the
  final move is a copy into the checkpoint path, which a kill can cut short.
  :class:`AtomicCheckpointIO` writes beside the target, fsyncs, and renames.
- ``on_train_epoch_start`` is not called when Lightning resumes mid-epoch;
  :class:`ResumeState` calls the module's hook (frozen parts back in eval mode).

Exactness holds for the same number of processes and ``num_workers=0`` or
workers that draw no random numbers (cached features); ``train.deterministic:
true`` makes the kernels repeatable.
"""
from __future__ import annotations

import csv
import json
import os
import pickle
import random
import warnings
import zipfile
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from torch.utils.data import DataLoader, Dataset

from asclab.errors import CheckpointError
from asclab.io import write_json
from asclab.train.checkpoint import _refusal
from asclab.train.distributed import EpochSampler, mix_seed, process_rank_world

LAST = "last.ckpt"
DONE = "stage_done.json"


# ----- data position ---------------------------------------------------------------------------
class EpochLoader(DataLoader):
    """A DataLoader over an :class:`EpochSampler` whose position is saved in
    Lightning checkpoints (Lightning's ``_Stateful`` protocol)."""

    def __init__(self, dataset: Dataset, batch_size: int, sampler: EpochSampler, *, num_workers: int = 0,
                 drop_last: bool = False, seed: int = 0) -> None:
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                         drop_last=drop_last, generator=torch.Generator(), persistent_workers=num_workers > 0)
        self.seed = int(seed)
        self.delivered = 0  # batches of the current epoch handed out, skipped ones included

    def __iter__(self):
        return self._batches()

    def _batches(self):
        # The body runs at the first next(): after Lightning's set_epoch and load_state_dict.
        sampler: EpochSampler = self.sampler
        _, world = process_rank_world()
        self.delivered = sampler.skip // (world * self.batch_size)
        self.generator.manual_seed(mix_seed(self.seed, sampler.epoch, 1))  # worker base seeds of this epoch
        for batch in super().__iter__():
            self.delivered += 1
            yield batch

    def state_dict(self) -> dict:
        _, world = process_rank_world()
        return {"epoch": self.sampler.epoch, "batches": self.delivered, "batch_size": self.batch_size,
                "world_size": world}

    def load_state_dict(self, state: dict) -> None:
        consumed = int(state["batches"]) * int(state["batch_size"]) * int(state["world_size"])
        _, world = process_rank_world()
        if consumed % (world * self.batch_size):
            raise CheckpointError(f"cannot resume mid-epoch: the checkpoint consumed {consumed} items with global "
                                  f"batches of {int(state['batch_size']) * int(state['world_size'])}; now "
                                  f"{world} x {self.batch_size} (keep the global batch size)")
        self.sampler.resume_at(int(state["epoch"]), consumed)


# ----- random states -------------------------------------------------------------------------------
def collect_random_states() -> dict:
    """torch (CPU, CUDA), numpy and python random states, as types ``torch.load(weights_only=True)`` reads."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }


def set_random_states(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate(state["python"])


class ResumeState(L.Callback):
    """What a Lightning checkpoint lacks for an exact resume: the random states of
    every process and the training loader's position.

    The position is restored here, in the callback's ``load_state_dict``, because
    Lightning applies a stateful loader's saved state only if the loader is
    created after the loops are restored; ``configure_optimizers`` asking for
    ``trainer.estimated_stepping_batches`` creates it before (lightning 2.6).
    Random states are restored at ``on_train_start``. In a fresh multi-process
    run, process r re-seeds with ``(seed, r)`` so augmentation draws differ
    between processes (one process keeps ``seed``).
    """

    def __init__(self, seed: int, loader: EpochLoader | None = None) -> None:
        self.seed = int(seed)
        self.loader = loader
        self._pending: list[dict] | None = None

    def state_dict(self) -> dict:
        mine = collect_random_states()
        rank, world = process_rank_world()
        states = [mine]
        if world > 1:  # every rank takes part in a save (Trainer.save_checkpoint); rank 0 writes
            states = [None] * world
            torch.distributed.all_gather_object(states, mine)
        return {"random": states, "data": self.loader.state_dict() if self.loader is not None else None}

    def load_state_dict(self, state_dict: dict) -> None:
        self._pending = list(state_dict.get("random") or [])
        if self.loader is not None and state_dict.get("data"):
            self.loader.load_state_dict(state_dict["data"])

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is None:
            if trainer.world_size > 1:
                L.seed_everything(mix_seed(self.seed, trainer.global_rank) % (2**32), workers=True, verbose=False)
            return
        states, self._pending = self._pending, None
        if len(states) == trainer.world_size:
            set_random_states(states[trainer.global_rank])
        else:
            warnings.warn(f"resuming with {trainer.world_size} processes a run saved with {len(states)}: random "
                          "streams restart from the seed, the run is not bit-exact", stacklevel=2)
        if trainer.fit_loop.restarting and hasattr(pl_module, "on_train_epoch_start"):
            pl_module.on_train_epoch_start()  # Lightning skips it when resuming mid-epoch


# ----- checkpoints ---------------------------------------------------------------------------------
class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file beside the target, fsync, ``os.replace``:
    a checkpoint path holds the old or the new checkpoint, never part of one."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        try:  # make the rename durable too
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass


class ResumeCheckpoint(L.Callback):
    """Writes ``<dirpath>/last.ckpt`` every ``every_n_steps`` optimiser steps
    (skipping an epoch's last batch: the epoch-end save follows) and at the end
    of every training epoch, after validation, so the best-model bookkeeping of
    the ``best.ckpt`` callback is part of it."""

    def __init__(self, dirpath: str | os.PathLike, every_n_steps: int | None = None) -> None:
        self.path = Path(dirpath) / LAST
        self.every = int(every_n_steps or 0)
        if self.every < 0:
            raise CheckpointError(f"train.checkpoint_every_n_steps must be positive, got {every_n_steps}")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self.every or trainer.global_step == 0 or trainer.global_step % self.every:
            return
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return
        trainer.save_checkpoint(self.path, weights_only=False)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)


def check_checkpoint(path: str | os.PathLike) -> Path:
    """Raise ``CheckpointError`` unless ``path`` is a whole torch zip file (CRCs checked)."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint not found")
    try:
        with zipfile.ZipFile(p) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{p}: damaged checkpoint ({exc}); resume from an earlier copy or start again") from None
    if bad is not None:
        raise CheckpointError(f"{p}: damaged checkpoint (member {bad} fails its CRC)")
    try:  # what Lightning will load with weights_only=True: refuse it here, in one line
        torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{p}: {_refusal(str(exc))}") from None
    except Exception as exc:  # zip members that are not a torch checkpoint
        raise CheckpointError(f"{p}: damaged checkpoint ({type(exc).__name__}); resume from an earlier copy "
                              "or start again") from None
    return p


# ----- stages of a run -------------------------------------------------------------------------------
def mark_stage_done(stage_dir: Path, info: dict) -> None:
    write_json(Path(stage_dir) / DONE, info)


def stage_done(stage_dir: Path) -> dict | None:
    try:
        return json.loads((Path(stage_dir) / DONE).read_text())
    except (OSError, ValueError):
        return None


def start_fresh(stage_dir: Path) -> None:
    """Forget an earlier run's resume state in ``stage_dir`` (a fresh run there)."""
    (Path(stage_dir) / DONE).unlink(missing_ok=True)
    (Path(stage_dir) / "checkpoints" / LAST).unlink(missing_ok=True)


def resume_checkpoint(stage_dir: Path) -> Path | None:
    """The stage's ``checkpoints/last.ckpt`` (checked) or None if it has none."""
    p = Path(stage_dir) / "checkpoints" / LAST
    return check_checkpoint(p) if p.exists() else None


def keep_log_before_resume(stage_dir: Path) -> Path | None:
    """Move ``logs/metrics.csv`` aside (Lightning's CSV logger deletes it when it
    starts) so :func:`merge_resumed_log` can put it back in front."""
    log = Path(stage_dir) / "logs" / "metrics.csv"
    if not log.exists():
        return None
    n = 1
    while (log.parent / f"metrics.part{n}.csv").exists():
        n += 1
    kept = log.parent / f"metrics.part{n}.csv"
    os.replace(log, kept)
    return kept


def merge_resumed_log(stage_dir: Path) -> None:
    """Rebuild ``logs/metrics.csv`` from the parts kept at each resume and the
    current log: each later file replaces the rows of the earlier ones from its
    first step on (steps replayed after a resume are logged once)."""
    logs = Path(stage_dir) / "logs"
    parts = sorted(logs.glob("metrics.part*.csv"), key=lambda p: int(p.stem.split("part")[1]))
    if not parts:
        return
    current = logs / "metrics.csv"
    rows: list[dict] = []
    for path in parts + ([current] if current.exists() else []):
        with open(path, newline="") as f:
            new = list(csv.DictReader(f))
        if new:
            first = min(_step(r) for r in new)
            rows = [r for r in rows if _step(r) < first] + new
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    tmp = logs / ".metrics.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, current)
    for part in parts:
        part.unlink()


def _step(row: dict) -> int:
    try:
        return int(float(row.get("step") or 0))
    except ValueError:
        return 0
