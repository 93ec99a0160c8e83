"""The stand-ins the training benchmark runs the CPJKU DCASE 2024 baseline's own pipeline with
(benchmarks/cpjku_baseline_shims.py, benchmarks/bench_train_baseline.py): torchaudio's
Resample and iid frequency/time masking, the dataset module over TUT 2017, the configuration
from run_training.py's argparse defaults, and one training step of the baseline's unedited
PLModule. Skipped without the baseline's mirror (the ``fetch`` tool) or shared/data/tut2017."""
from __future__ import annotations

import argparse
import importlib
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
try:
    cpjku = importlib.import_module("cpjku_baseline_shims")
    bench = importlib.import_module("bench_train_baseline")
finally:
    sys.path.remove(str(BENCH))
TUT = cpjku.TUT2017


def _need_tut():
    if not (TUT / "meta.txt").is_file():
        pytest.skip(f"shared/data/tut2017 not available ({TUT})")


@pytest.fixture()
def baseline(tmp_path, monkeypatch):
    """The baseline's tree written from the mirror, TUT 2017 records and the stand-ins installed;
    sys.modules and sys.path restored afterwards."""
    why = cpjku.missing_reason()
    if why:
        pytest.skip(why)
    _need_tut()
    saved = {name: mod for name, mod in sys.modules.items() if cpjku.is_baseline_module(name)}
    for name in saved:  # tests/export sets torchaudio = None
        del sys.modules[name]
    root, _commit = cpjku.materialise(tmp_path / "baseline")
    monkeypatch.syspath_prepend(str(root))
    records, classes = cpjku.tut_clips(TUT)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cpjku.install_shims(root, records, classes)
    yield root, records, classes
    torch.set_num_threads(threads)
    for name in [m for m in sys.modules if cpjku.is_baseline_module(m)]:
        del sys.modules[name]
    sys.modules.update(saved)


def test_config_is_run_trainings_argparse_defaults(baseline):
    root, _records, _classes = baseline
    cfg = cpjku.baseline_config(root, n_classes=15, num_workers=0)
    assert (cfg.n_fft, cfg.window_length, cfg.hop_length, cfg.n_mels) == (4096, 3072, 500, 256)
    assert (cfg.freqm, cfg.timem, cfg.roll_sec, cfg.warmup_steps) == (48, 0, 0.1, 2000)
    assert (cfg.n_classes, cfg.num_workers, cfg.batch_size, cfg.precision) == (15, 0, 256, "32")
    assert cfg.f_max is None and cfg.evaluate is False
    with pytest.raises(KeyError):
        cpjku.baseline_config(root, not_an_argument=1)


def test_frequency_masking_is_torchaudios_iid_masks(baseline):
    from torchaudio.transforms import FrequencyMasking, TimeMasking

    x = torch.ones(16, 1, 256, 65)
    torch.manual_seed(3)
    got = FrequencyMasking(48, iid_masks=True)(x)
    torch.manual_seed(3)  # torchaudio's draws, in its order: widths, then starts, per (example, channel)
    width = torch.rand(16, 1) * 48
    start = torch.rand(16, 1) * (256 - width)
    for i in range(16):
        rows = (got[i, 0] == 0).all(dim=1).nonzero().flatten().tolist()
        lo, n = int(start[i, 0]), int(width[i, 0])
        assert rows == list(range(lo, lo + n)) and n < 48  # one whole band of width < 48, in the mel axis
        assert int((got[i, 0] == 0).sum()) == n * 65  # nothing masked elsewhere
    assert len({int(w) for w in width.flatten()}) > 1  # a mask of its own per example
    assert torch.equal(TimeMasking(0, iid_masks=True)(x), x)  # --timem 0: no time mask


def test_resample_module_is_the_functional_resample(baseline):
    import soundfile as sf
    from torchaudio.transforms import Resample

    _root, records, _classes = baseline
    clip, rate = sf.read(str(records[0].path), dtype="float32", frames=44100, always_2d=True)
    assert rate == 44100
    noise = torch.rand(1, 1, 44100, generator=torch.Generator().manual_seed(0)) * 2 - 1
    x = torch.cat([torch.from_numpy(clip.T.copy())[None], noise])
    module = Resample(44100, 32000)
    y = module(x)
    assert y.shape == (2, 1, 32000) and y.dtype == torch.float32
    diff = (y - cpjku.shims.resample(x, 44100, 32000)).abs().amax(dim=(1, 2))
    assert float(diff[0]) < 2e-6 and float(diff[1]) < 1e-4  # float64- vs float32-computed kernel (module docstring)
    assert "kernel" not in module.state_dict()  # non-persistent, as torchaudio's
    assert Resample(32000, 32000)(x) is x


def test_dataset_standin_yields_basic_dcase24_items(baseline):
    _root, records, classes = baseline
    rt = importlib.import_module("run_training")
    cfg = cpjku.baseline_config(_root)
    ds = rt.get_training_set(cfg.subset, roll=cfg.orig_sample_rate * cfg.roll_sec)
    assert type(ds).__name__ == "RollDataset" and len(ds) == len(records) == 324
    wave, file, label, device, city = ds.dataset[5]
    assert wave.shape == (1, 441001) and wave.dtype == torch.float32
    assert file == records[5].extra["filename"] and int(label) == classes.index(records[5].label)
    assert int(device) == 0 and city >= 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # RollDataset's np.random.random_integers
        np.random.seed(7)
        rolled = ds[5][0]
        np.random.seed(7)
        shift = int(np.random.random_integers(-ds.shift_range, ds.shift_range))
    assert abs(shift) <= 4410 and torch.equal(wave.roll(shift, 1), rolled)  # the clip, rolled by <= 0.1 s
    assert rt.get_eval_set()[0][1] == records[0].extra["filename"]


def test_baseline_trains_one_step(baseline):
    root, records, classes = baseline
    args = argparse.Namespace(batch=2, epochs=1, threads=1)
    got = bench.run_baseline(root, records[:2], classes, args, workers=0)
    assert got["steps"] == 1 and math.isfinite(got["loss"])
    assert got["params"] == 61_678 and len(got["epoch_ends"]) == 1  # CP-Mobile with a 15-class head


def test_clips_spread_over_classes_and_the_asclab_command():
    _need_tut()
    every, classes = cpjku.tut_clips(TUT)
    assert len(every) == 324 and len(classes) == 15
    chosen = cpjku.spread_clips(every, classes, 16)
    assert len(chosen) == 16 and {r.label for r in chosen} == set(classes)
    order = [every.index(r) for r in chosen]
    assert order == sorted(order)
    assert cpjku.spread_clips(every, classes, None) == every
    args = argparse.Namespace(threads=2, epochs=4, batch=64)
    cmd = bench.asclab_command(TUT, Path("out"), Path("cache"), args, subset=False)
    assert cmd[cmd.index("--cache-dir") + 1] == "cache" and "--all-data" in cmd
    assert "data.duration=10" in cmd and "data.allow_outside=true" not in cmd
    assert "data.allow_outside=true" in bench.asclab_command(TUT, Path("o"), Path("c"), args, subset=True)
    assert bench.steady_rate(10, [1.0, 3.0, 5.0]) == 5.0 and bench.steady_rate(10, [1.0]) is None
