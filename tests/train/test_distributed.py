"""Data-parallel training: the per-process data split, rank-0 detection, the lr rule,
and a real two-process DDP run (gloo, CPU) against one process with the same global batch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from asclab.errors import ConfigError
from asclab.train import distributed
from asclab.train.distributed import (
    EpochSampler,
    distributed_trainer_kwargs,
    gather_arrays,
    is_main_process,
    lr_factor,
)


def _as_rank(monkeypatch, rank: int, world: int) -> None:
    monkeypatch.setattr(distributed, "process_rank_world", lambda: (rank, world))


def _indices(sampler, monkeypatch, rank, world) -> list[int]:
    _as_rank(monkeypatch, rank, world)
    return list(sampler)


@pytest.mark.parametrize("n,world", [(60, 2), (61, 2), (50, 3), (7, 4)])
def test_training_shares_are_disjoint_and_equal(monkeypatch, n, world):
    s = EpochSampler(n, shuffle=True, seed=3)
    s.set_epoch(2)
    shares = [_indices(s, monkeypatch, r, world) for r in range(world)]
    flat = [i for sh in shares for i in sh]
    assert len(set(flat)) == len(flat) == n - n % world  # no overlap, nothing repeated, remainder dropped
    assert {len(sh) for sh in shares} == {n // world}
    _as_rank(monkeypatch, 0, world)
    assert len(s) == n // world


def test_global_batches_do_not_depend_on_the_number_of_processes(monkeypatch):
    """W processes with batch B read, step by step, the same examples as one process with batch W*B."""
    n, world, b = 48, 2, 4
    s = EpochSampler(n, shuffle=True, seed=0)
    s.set_epoch(1)
    one = _indices(s, monkeypatch, 0, 1)
    shares = [_indices(s, monkeypatch, r, world) for r in range(world)]
    for k in range(n // (world * b)):
        together = sorted(i for sh in shares for i in sh[k * b:(k + 1) * b])
        assert together == sorted(one[k * world * b:(k + 1) * world * b])


def test_evaluation_reads_every_item_exactly_once(monkeypatch):
    for n, world in ((90, 2), (91, 2), (10, 4), (3, 4)):
        s = EpochSampler(n, shuffle=False, even=False)
        shares = [_indices(s, monkeypatch, r, world) for r in range(world)]
        assert sorted(i for sh in shares for i in sh) == list(range(n))  # no padding, no duplicates
        for r in range(world):
            _as_rank(monkeypatch, r, world)
            assert len(s) == len(shares[r])


def test_epochs_reshuffle_and_resume_skips_the_consumed_part(monkeypatch):
    _as_rank(monkeypatch, 0, 1)
    s = EpochSampler(20, shuffle=True, seed=5)
    e0 = list(s)
    s.set_epoch(1)
    e1 = list(s)
    assert sorted(e0) == sorted(e1) == list(range(20)) and e0 != e1
    s.set_epoch(0)
    assert list(s) == e0  # an epoch's order is a function of (seed, epoch) only
    s.resume_at(1, 8)
    s.set_epoch(1)  # Lightning's set_epoch for the same epoch keeps the skip
    assert list(s) == e1[8:]
    assert list(s) == e1  # the skip applies once
    s.resume_at(0, 8)
    s.set_epoch(1)  # another epoch: no skip
    assert list(s) == e1


def test_gather_and_rank_without_a_process_group(monkeypatch):
    a, b = np.arange(5.0), np.arange(3)
    ga, gb = gather_arrays(a, b)
    assert ga is a and gb is b
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert is_main_process()
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("NODE_RANK", "0")
    assert is_main_process()
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not is_main_process()
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert not is_main_process()


def test_learning_rate_rule_and_cli_arguments():
    assert lr_factor(None, 4) == 1.0 and lr_factor("none", 4) == 1.0
    assert lr_factor("linear", 4) == pytest.approx(4.0)
    assert lr_factor("sqrt", 4) == pytest.approx(2.0)
    assert lr_factor("linear", 1) == 1.0
    with pytest.raises(ConfigError, match="scale_lr"):
        lr_factor("cubic", 2)
    assert distributed_trainer_kwargs("4", 2, "ddp", "gpu") == {"devices": 4, "num_nodes": 2, "strategy": "ddp",
                                                               "accelerator": "gpu"}
    assert distributed_trainer_kwargs("auto") == {"devices": "auto"}
    assert distributed_trainer_kwargs("-1") == {"devices": -1}
    assert distributed_trainer_kwargs() == {}


# ----- a real two-process run --------------------------------------------------------------------
RUNNER = '''
"""The asclab CLI with one more model, a small CNN without batch norm (batch norm
statistics are per process under DDP, and torch's SyncBatchNorm needs a GPU)."""
import sys

import torch.nn as nn

from asclab.cli import main
from asclab.models.registry import register_model


class TinyNoBN(nn.Module):
    def __init__(self, num_classes, in_chans):
        super().__init__()
        self.embed_dim = 16
        self.body = nn.Sequential(nn.Conv2d(in_chans, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                                  nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(16, num_classes)

    def embed(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))


@register_model
def tiny_nobn(num_classes=10, in_chans=1, **kwargs):
    return TinyNoBN(num_classes, in_chans)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''

RECIPE = """
name: tiny_ddp
base: quickstart
data: {duration: 0.5}
features: {sample_rate: 16000, n_fft: 512, win_length: 512, hop_length: 256, n_mels: 32}
model: {name: tiny_nobn}
augment: {mix: null}
optim: {name: adam, lr: 0.01}
train: {epochs: 2, batch_size: 8, deterministic: true, seed: 1}
"""


@pytest.mark.slow
def test_two_ddp_processes_match_one_process_with_the_same_global_batch(tmp_path):
    """2 x 4 (gloo, CPU) vs 1 x 8: same global batches, gradients averaged by DDP, no random
    augmentation, so weights agree up to float summation order (tolerance 1e-5) and the
    validation metrics, computed from all processes' predictions, agree."""
    from asclab.data.synth import make_synthetic_dataset

    data = tmp_path / "data"
    make_synthetic_dataset(data, n_per_class_device=1, seconds=0.5, sample_rate=16000, seed=0)
    (tmp_path / "runner.py").write_text(textwrap.dedent(RUNNER))
    (tmp_path / "tiny.yaml").write_text(RECIPE)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    common = [sys.executable, str(tmp_path / "runner.py"), "train", str(tmp_path / "tiny.yaml"), "--data", str(data),
              "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    one = subprocess.run(common + ["--out", str(tmp_path / "one"), "--batch-size", "8"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run(common + ["--out", str(tmp_path / "two"), "--batch-size", "4", "--devices", "2",
                                   "--strategy", "ddp", "--accelerator", "cpu"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "MEMBER: 2/2" in two.stderr  # Lightning started a second process
    assert two.stdout.count("model: ") == 1  # only rank 0 reports (and writes) the results
    a = torch.load(tmp_path / "one" / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "two" / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 2 * (60 // 8)
    diff = max((a["state_dict"][k] - b["state_dict"][k]).abs().max().item() for k in a["state_dict"])
    moved = max((a["state_dict"][k]).abs().max().item() for k in a["state_dict"])
    assert diff < 1e-5 < moved
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert m1["n"] == m2["n"] == 90
    assert abs(m1["macro_accuracy"] - m2["macro_accuracy"]) < 1e-9
    assert m1["log_loss"] == pytest.approx(m2["log_loss"], abs=1e-4)
    # validation during training saw all 90 clips in both runs: gathered, not per process
    import csv
    rows = {}
    for name in ("one", "two"):
        with open(tmp_path / name / "logs" / "metrics.csv") as f:
            rows[name] = [float(r["val_macro_acc"]) for r in csv.DictReader(f) if r.get("val_macro_acc")]
    assert len(rows["one"]) == len(rows["two"]) == 2
    np.testing.assert_allclose(rows["one"], rows["two"], atol=1e-6)


def _gather_worker(rank: int, world: int, store: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        n = 3 + rank  # uneven shares, as evaluation shares may be
        probs, labels = gather_arrays(np.full((n, 2), float(rank)), np.arange(n) + 10 * rank)
        np.savez(f"{out}-{rank}.npz", probs=probs, labels=labels)
    finally:
        torch.distributed.destroy_process_group()


def test_gather_arrays_joins_uneven_shares_of_all_processes(tmp_path):
    torch.multiprocessing.spawn(_gather_worker, args=(2, str(tmp_path / "store"), str(tmp_path / "out")), nprocs=2)
    for rank in range(2):
        got = np.load(tmp_path / f"out-{rank}.npz")
        np.testing.assert_array_equal(got["labels"], [0, 1, 2, 10, 11, 12, 13])
        np.testing.assert_array_equal(got["probs"][:, 0], [0, 0, 0, 1, 1, 1, 1])
