"""The SYNTHETIC demo set: layout, balance, determinism, device effect, learnability; describe()."""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asclab.data.classmaps import TAU_SCENES
from asclab.data.describe import describe
from asclab.data.index import open_dataset
from asclab.data.synth import make_synthetic_dataset
from asclab.errors import DataError

SMALL = dict(n_per_class_device=2, n_test_per_class_device=1, seconds=0.25, sample_rate=16000)
TRAIN_DEVICES = {"a", "b", "c", "s1", "s2", "s3"}
UNSEEN = {"s4", "s5", "s6"}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("synth") / "set", **SMALL)


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_labels(small):
    root = small.root
    for name in ("meta.csv", "README.txt", "SYNTHETIC.json", "evaluation_setup/fold1_train.csv",
                 "evaluation_setup/fold1_evaluate.csv", "evaluation_setup/fold1_test.csv"):
        assert (root / name).is_file(), name
    assert "SYNTHETIC" in (root / "README.txt").read_text()
    assert small.layout == "tau" and small.synthetic and small.summary()["synthetic"] is True
    assert small.classes == sorted(TAU_SCENES)
    wavs = sorted((root / "audio").glob("*.wav"))
    assert len(wavs) == len(small.records) == 10 * 6 * 2 + 10 * 9 * 1
    assert not list(root.rglob("*.partial"))
    pattern = re.compile(r"^([a-z_]+)-([a-z]+)-(\d+)-(\d+)-([a-z0-9]+)\.wav$")
    for rec in small.records:
        m = pattern.match(rec.path.name)
        assert m and m.groups()[0] == rec.label and m.group(2) == rec.city and m.group(5) == rec.device
        assert rec.identifier == f"{m.group(2)}-{m.group(3)}"
    info = sf.info(wavs[0])
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (16000, 1, "PCM_16", 4000)
    # fold1_test lists the test files without labels
    ev = open_dataset(root, split="evaluate").evaluate
    assert sorted(r.path for r in ev) == sorted(r.path for r in small.test) and all(r.label is None for r in ev)


def test_devices_splits_and_balance(small):
    train, test = small.train, small.test
    assert len(train) == 120 and len(test) == 90
    assert {r.device for r in train} == TRAIN_DEVICES
    assert {r.device for r in test} == TRAIN_DEVICES | UNSEEN
    for part, n in ((train, 2), (test, 1)):
        cells = Counter((r.label, r.device) for r in part)
        assert set(cells.values()) == {n} and len(cells) == 10 * len({r.device for r in part})
    assert not {r.identifier for r in train} & {r.identifier for r in test}  # locations never cross splits
    assert len({r.city for r in small.records}) >= 3


def test_deterministic_and_seeded(tmp_path, small):
    again = make_synthetic_dataset(tmp_path / "again", **SMALL)
    first, second = _digest(small.root), _digest(again.root)
    assert first == second
    other = make_synthetic_dataset(tmp_path / "other", **SMALL, seed=1)
    other_digest = _digest(other.root)
    assert other_digest["meta.csv"] == first["meta.csv"]  # same plan...
    audio = [k for k in first if k.startswith("audio/")]
    assert all(other_digest[k] != first[k] for k in audio)  # ...different sounds


def test_refuses_foreign_folder_and_regenerates(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not empty"):
        make_synthetic_dataset(foreign, **SMALL)
    assert (foreign / "notes.txt").read_text() == "keep me" and len(list(foreign.iterdir())) == 1
    target = tmp_path / "set"
    make_synthetic_dataset(target, **{**SMALL, "n_per_class_device": 3})
    ix = make_synthetic_dataset(target, **SMALL)  # a previous synthetic set is replaced, stale clips removed
    assert len(list((target / "audio").glob("*.wav"))) == len(ix.records) == 210


def _band_levels(rec, edges=(0, 150, 400, 1000, 2000, 4000, 8000)) -> np.ndarray:
    x, sr = sf.read(rec.path, dtype="float64")
    p = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / sr)
    return np.array([10 * np.log10(p[(f >= lo) & (f < hi)].sum() + 1e-12) for lo, hi in zip(edges, edges[1:])])


def _band_stats(rec, n_bands=16, n_fft=512) -> np.ndarray:
    """Mean and std over frames of log energies in log-spaced bands (a crude log-mel summary)."""
    x, sr = sf.read(rec.path, dtype="float64")
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[:: n_fft // 2] * np.hanning(n_fft)
    p = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    f = np.fft.rfftfreq(n_fft, 1 / sr)
    edges = np.geomspace(40, sr / 2, n_bands + 1)
    db = 10 * np.log10(np.stack([p[:, (f >= lo) & (f < hi)].sum(1) for lo, hi in zip(edges, edges[1:])], 1) + 1e-10)
    return np.concatenate([db.mean(0), db.std(0)])


def test_device_effect_and_learnability(tmp_path):
    ix = make_synthetic_dataset(tmp_path / "set", n_per_class_device=4, n_test_per_class_device=2,
                                seconds=0.5, sample_rate=16000)
    bands = {r.path: _band_levels(r) for r in ix.records}
    # the band-limited unseen devices remove the low band that device a keeps
    low = {d: np.mean([bands[r.path][0] - bands[r.path][3] for r in ix.records if r.device == d])
           for d in ("a", "s4", "s6")}
    assert low["s4"] < low["a"] - 15 and low["s6"] < low["a"] - 15

    feats = {r.path: _band_stats(r) for r in ix.records}
    xtr = np.array([feats[r.path] for r in ix.train])
    mean, std = xtr.mean(0), xtr.std(0) + 1e-9
    centroids = np.array([((xtr - mean) / std)[[r.label == c for r in ix.train]].mean(0) for c in ix.classes])

    def accuracy(records):  # nearest class centroid
        x = (np.array([feats[r.path] for r in records]) - mean) / std
        pred = np.argmin(((x[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
        return float(np.mean([ix.classes[p] == r.label for p, r in zip(pred, records)]))

    seen = accuracy([r for r in ix.test if r.device in TRAIN_DEVICES])
    unseen = accuracy([r for r in ix.test if r.device in UNSEEN])
    assert seen > 0.25, seen  # chance is 0.1: learnable even from 40 half-second clips a class
    assert unseen < seen, (seen, unseen)  # unseen devices are harder


def test_describe(small):
    text = describe(small)
    assert text.splitlines()[0].startswith("*** SYNTHETIC")
    lines = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.strip()}
    assert lines["class"] == ["train", "test", "total"]
    assert lines["airport"] == ["12", "9", "21"]
    assert lines["s4"] == ["0", "10", "10"] and lines["a"] == ["20", "10", "30"]
    assert "records:  210 in 10 classes from 60 recordings; skipped: 0" in text
