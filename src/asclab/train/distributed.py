"""Data-parallel training on Lightning's DDP: who is rank 0, how data are split,
how validation outputs are gathered, how the learning rate follows the world size.

Conventions (docs/distributed.md): ``train.batch_size`` is per process, so the
global batch is devices x nodes x batch_size; the learning rate is the recipe's
unless ``train.scale_lr`` is ``linear`` (x world size, Goyal et al. 2017) or
``sqrt``. Every process draws the same epoch permutation and takes every
world-size-th index of it, so one process with batch G and W processes with
batch G/W see the same global batches (:class:`EpochSampler`).
"""
from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from asclab.errors import ConfigError

# Environment variables that launchers set; a non-zero value means "not the main process".
_RANK_VARIABLES = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK")


def process_rank_world() -> tuple[int, int]:
    """(global rank, world size) of this process; (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """True in the process that writes results (global rank 0).

    Before the process group exists (the run's set-up) this reads what the
    launchers set: torchrun's ``RANK``/``LOCAL_RANK``/``GROUP_RANK``, SLURM's
    ``SLURM_PROCID``, Lightning's ``LOCAL_RANK``/``NODE_RANK`` for the processes
    it starts itself.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    for name in _RANK_VARIABLES:
        value = os.environ.get(name, "0").strip() or "0"
        if value.isdigit() and int(value) != 0:
            return False
    return True


def mix_seed(*values: int) -> int:
    """A 63-bit seed from several integers (e.g. seed and epoch), well mixed."""
    return int(np.random.SeedSequence([abs(int(v)) for v in values]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class EpochSampler(Sampler[int]):
    """The indices one process reads in one epoch.

    The epoch's order (a permutation seeded by ``(seed, epoch)`` when
    ``shuffle``, else 0..n-1) is the same in every process; process ``r`` of
    ``W`` takes positions ``r, r + W, r + 2W, ...``. Consecutive per-process
    batches of size B therefore make up global batches of size W*B that are the
    same whatever W is. With ``even`` (training) the order is cut to a multiple
    of W so all processes take the same number of steps (DDP needs it); without
    (evaluation) every index is read exactly once, nothing is padded or repeated,
    and processes may differ by one item.

    Rank and world size are read when iterating (the process group exists only
    once the trainer has started). ``resume_at(epoch, consumed)`` makes the next
    iteration skip the first ``consumed`` items of the epoch's global order
    (exact resume, ``asclab.train.resume``).
    """

    def __init__(self, n: int, *, shuffle: bool, seed: int = 0, even: bool = True) -> None:
        self.n, self.shuffle, self.seed, self.even = int(n), bool(shuffle), int(seed), bool(even)
        self.epoch = 0
        self.skip = 0  # global items of self.epoch already consumed

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at every epoch start."""
        if int(epoch) != self.epoch:
            self.skip = 0
        self.epoch = int(epoch)

    def resume_at(self, epoch: int, consumed: int) -> None:
        self.epoch, self.skip = int(epoch), int(consumed)

    def order(self) -> torch.Tensor:
        """The epoch's global order."""
        if not self.shuffle:
            return torch.arange(self.n)
        g = torch.Generator()
        g.manual_seed(mix_seed(self.seed, self.epoch))
        return torch.randperm(self.n, generator=g)

    def _mine(self) -> torch.Tensor:
        rank, world = process_rank_world()
        idx = self.order()
        if self.even:
            idx = idx[: self.n - self.n % world]
        return idx[rank::world]

    def __iter__(self):
        _, world = process_rank_world()
        skip, self.skip = self.skip, 0
        if skip % world:
            raise ConfigError(f"cannot resume: {skip} items consumed is not a multiple of {world} processes")
        return iter(self._mine()[skip // world :].tolist())

    def __len__(self) -> int:
        rank, world = process_rank_world()
        if self.even:
            return self.n // world
        return len(range(rank, self.n, world))


def gather_arrays(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Concatenate each array over all processes (rank order); unchanged in one process.

    For validation outputs, whose per-process lengths may differ by one
    (:class:`EpochSampler` with ``even=False``); uses ``all_gather_object``.
    """
    rank, world = process_rank_world()
    if world == 1:
        return arrays
    gathered: list = [None] * world
    dist.all_gather_object(gathered, [np.asarray(a) for a in arrays])
    return tuple(np.concatenate([g[i] for g in gathered]) for i in range(len(arrays)))


def lr_factor(rule: str | None, world_size: int) -> float:
    """The factor ``optim.lr`` is scaled by for ``world_size`` processes per ``train.scale_lr``:
    ``none`` (default; 1), ``linear`` (x W) or ``sqrt`` (x sqrt W)."""
    rule = str(rule or "none").lower()
    factors = {"none": 1.0, "linear": float(world_size), "sqrt": math.sqrt(world_size)}
    if rule not in factors:
        raise ConfigError(f"train.scale_lr must be one of {', '.join(factors)}, got {rule!r}")
    return factors[rule]


def distributed_trainer_kwargs(devices: int | str | None = None, num_nodes: int | None = None,
                               strategy: str | None = None, accelerator: str | None = None) -> dict:
    """Trainer arguments from the command line's ``--devices/--num-nodes/--strategy/--accelerator``
    (only those given). ``devices`` may be a count, ``auto`` or ``-1`` (all)."""
    out: dict = {}
    if devices is not None:
        text = str(devices)
        out["devices"] = int(text) if text.lstrip("-").isdigit() else text
    if num_nodes is not None:
        if int(num_nodes) < 1:
            raise ConfigError(f"--num-nodes must be at least 1, got {num_nodes}")
        out["num_nodes"] = int(num_nodes)
    if strategy is not None:
        out["strategy"] = strategy
    if accelerator is not None:
        out["accelerator"] = accelerator
    return out
