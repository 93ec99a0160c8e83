"""Exact resume: loader position, random states, atomic checkpoints, and a run killed
with SIGKILL mid-epoch that resumes to the weights of an uninterrupted run."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from asclab.cli import main
from asclab.errors import CheckpointError
from asclab.train import resume
from asclab.train.data import make_loader
from asclab.train.resume import (AtomicCheckpointIO, check_checkpoint, collect_random_states, merge_resumed_log,
                                 set_random_states)


def _batches(loader) -> list[list[int]]:
    return [b.tolist() for b in loader]


def test_loader_position_survives_a_restart():
    data = list(range(22))
    ref = make_loader(data, 4, shuffle=True, seed=3, drop_last=True)
    ref.sampler.set_epoch(1)
    epoch1 = _batches(ref)
    flat = [i for b in epoch1 for i in b]
    assert len(epoch1) == 5 and len(set(flat)) == 20 and flat != sorted(flat)  # shuffled, 2 dropped
    first = make_loader(data, 4, shuffle=True, seed=3, drop_last=True)
    first.sampler.set_epoch(1)
    it = iter(first)
    taken = [next(it).tolist() for _ in range(2)]
    state = first.state_dict()
    assert taken == epoch1[:2] and state["epoch"] == 1 and state["batches"] == 2
    again = make_loader(data, 4, shuffle=True, seed=3, drop_last=True)  # a new process
    again.load_state_dict(state)
    again.sampler.set_epoch(1)  # what Lightning does at the epoch start
    assert _batches(again) == epoch1[2:]
    assert again.state_dict()["batches"] == 5
    again.sampler.set_epoch(2)
    epoch2 = _batches(again)
    assert len(epoch2) == 5 and epoch2 != epoch1


def test_loader_refuses_a_changed_global_batch():
    a = make_loader(list(range(40)), 4, shuffle=True)
    b = make_loader(list(range(40)), 6, shuffle=True)
    with pytest.raises(CheckpointError, match="global batch"):
        b.load_state_dict({**a.state_dict(), "batches": 1})


def test_random_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    import random

    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    torch.save({"s": collect_random_states()}, tmp_path / "s.pt")
    draws = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn())
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    set_random_states(torch.load(tmp_path / "s.pt", weights_only=True)["s"])
    again = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn())
    assert torch.equal(draws[0], again[0]) and np.array_equal(draws[1], again[1])
    assert draws[2:] == again[2:]


def test_atomic_checkpoint_write_keeps_the_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "ck" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)
    assert torch.load(path, weights_only=True)["step"] == 1

    def dies_halfway(obj, f):
        f.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt  # e.g. Ctrl-C (a SIGKILL leaves only the temporary file behind)

    monkeypatch.setattr(resume.torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]
    assert check_checkpoint(path) == path
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged"):
        check_checkpoint(path)


def test_logs_of_the_interrupted_part_are_merged(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()

    def write(path, steps, loss):
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["step", "train_loss"])
            w.writeheader()
            w.writerows({"step": s, "train_loss": loss} for s in steps)

    write(logs / "metrics.csv", range(0, 9), 1.0)  # killed at step 8, last checkpoint at step 5
    assert resume.keep_log_before_resume(tmp_path) == logs / "metrics.part1.csv"
    write(logs / "metrics.csv", range(5, 12), 2.0)  # the resumed run repeats steps 5-8
    merge_resumed_log(tmp_path)
    with open(logs / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(12))
    assert [r["train_loss"] for r in rows] == ["1.0"] * 5 + ["2.0"] * 7
    assert sorted(p.name for p in logs.iterdir()) == ["metrics.csv"]


def test_resume_command_line_errors(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert main(["train", "quickstart", "--resume", str(tmp_path)]) == 2
    assert "own recipe.yaml" in capsys.readouterr().err
    assert main(["train", "quickstart", "--data", str(tmp_path)]) == 2
    assert "--out" in capsys.readouterr().err


# ----- kill and resume --------------------------------------------------------------------------
RECIPE = """
name: tiny_resume
base: quickstart
data: {duration: 0.5}
features: {sample_rate: 16000, n_fft: 512, win_length: 512, hop_length: 256, n_mels: 32}
model: {name: cp_mobile, base_channels: 8, blocks_per_stage: [1, 1, 1]}
augment: {mix: {name: mixup, alpha: 0.3}}
train: {epochs: 3, batch_size: 8, deterministic: true, checkpoint_every_n_steps: 2, seed: 4}
"""


@pytest.mark.slow
def test_run_killed_mid_epoch_resumes_to_the_uninterrupted_weights(tmp_path):
    """SIGKILL after the first mid-epoch checkpoint, then ``--resume``: model, BN statistics,
    optimiser state and final metrics equal those of an uninterrupted run bit for bit
    (mixup draws, data order and LR schedule continue where they stopped)."""
    from asclab.data.synth import make_synthetic_dataset

    data = tmp_path / "data"
    make_synthetic_dataset(data, n_per_class_device=1, seconds=0.5, sample_rate=16000, seed=0)
    (tmp_path / "tiny.yaml").write_text(RECIPE)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cli = [sys.executable, "-m", "asclab.cli"]

    def train(out):
        return cli + ["train", str(tmp_path / "tiny.yaml"), "--data", str(data), "--out", str(tmp_path / out),
                      "--cache-dir", str(tmp_path / "cache"), "--quiet"]

    # build the feature cache once, so both runs start training at once
    subprocess.run(cli + ["features", str(data), "--recipe", str(tmp_path / "tiny.yaml"), "--cache-dir",
                          str(tmp_path / "cache"), "--quiet"], env=env, check=True, capture_output=True, timeout=120)
    ref = subprocess.Popen(train("ref"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    victim = subprocess.Popen(train("run"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while not last.exists():
        assert victim.poll() is None, "the run ended before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed = torch.load(last, weights_only=True)
    position = killed["callbacks"]["ResumeState"]["data"]
    assert 0 < position["batches"] < 60 // 8, position  # the checkpoint it resumes from is mid-epoch
    assert not (tmp_path / "run" / "model.ckpt").exists()
    assert ref.wait(timeout=300) == 0, ref.stderr.read()[-3000:]

    again = subprocess.run(cli + ["train", "--resume", str(tmp_path / "run"), "--quiet"], env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    a = torch.load(tmp_path / "ref" / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert a["global_step"] == b["global_step"] == 3 * (60 // 8)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    for sa, sb in zip(a["optimizer_states"][0]["state"].values(), b["optimizer_states"][0]["state"].values()):
        assert all(torch.equal(sa[n], sb[n]) for n in sa)
    ma = torch.load(tmp_path / "ref" / "model.ckpt", weights_only=True)
    mb = torch.load(tmp_path / "run" / "model.ckpt", weights_only=True)
    assert all(torch.equal(ma["state_dict"][k], mb["state_dict"][k]) for k in ma["state_dict"])
    assert ma["metrics"]["macro_accuracy"] == mb["metrics"]["macro_accuracy"]
    assert main(["train", "--resume", str(tmp_path / "run"), "--quiet"]) == 2  # finished: nothing to resume
