"""Shared fixtures: the real data beside the repo, a tiny synthetic set, an isolated cache."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asclab.data.records import Record

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not available: {p} is absent (CI provides ../shared beside the repo)")
    return p


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ASCLAB_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "feature-cache"))


@pytest.fixture()
def one_torch_thread():
    """Several test jobs may share two cores; one intra-op thread avoids OpenMP stalls."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tone_records(folder: Path, n: int, sample_rate: int, *, seed: int, f0: float, step: float) -> list[Record]:
    """``n`` one-second float WAV clips (a tone at f0 + i * step plus noise), labels class0..class2."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(sample_rate) / sample_rate
    recs = []
    for i in range(n):
        path = folder / f"clip{i}.wav"
        y = 0.3 * np.sin(2 * np.pi * (f0 + step * i) * t) + 0.05 * rng.standard_normal(sample_rate)
        sf.write(path, y.astype(np.float32), sample_rate, subtype="FLOAT")
        recs.append(Record(path=path, label=f"class{i % 3}", device="a"))
    return recs


def tiny_trained_model(base: Path, seed: int) -> Path:
    """A CP-Mobile trained for one epoch on the synthetic scenes (1-s clips, 16 kHz, 40 mels) under
    ``base``: the parent model of the fine-tuning and soup tests. Returns its model file."""
    from asclab.cli import main
    from asclab.data.synth import make_synthetic_dataset

    make_synthetic_dataset(base / "synth", n_per_class_device=1, n_test_per_class_device=1, seconds=1.0,
                           sample_rate=16000, seed=seed)
    assert main(["--threads", "1", "train", "quickstart", "--data", str(base / "synth"), "--out", str(base / "run"),
                 "--quiet", "--batch-size", "8", "--set", "train.epochs_cap=1",
                 "--set", "features.sample_rate=16000", "--set", "features.n_mels=40"]) == 0
    return base / "run" / "model.ckpt"
