"""WaveformDataset items and the Horvath 2021 city x device x scene subsampling."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asclab.data.dataset import WaveformDataset, balance_report, balanced_subsample
from asclab.data.records import Record
from asclab.errors import DataError


def _clip(path: Path, seconds: float, sr: int = 8000, channels: int = 1) -> Path:
    x = 0.1 * np.random.default_rng(len(path.name)).standard_normal((int(seconds * sr), channels))
    sf.write(path, x.astype(np.float32), sr, subtype="FLOAT")
    return path


def test_items(tmp_path):
    recs = [
        Record(_clip(tmp_path / "a.wav", 0.5), label="bus", device="a"),
        Record(_clip(tmp_path / "b.wav", 1.5, channels=2), label="park", device="s4"),
        Record(_clip(tmp_path / "c.wav", 1.0, sr=16000), label=None, device=None),
    ]
    ds = WaveformDataset(recs, ["park", "bus"], 8000, "stereo", 1.0, devices=["a", "b", "c"])
    assert len(ds) == 3 and ds.device_index == {"a": 0, "b": 1, "c": 2}
    items = [ds[i] for i in range(3)]
    for i, item in enumerate(items):
        assert item["wave"].dtype == torch.float32 and item["wave"].shape == (2, 8000) and item["index"] == i
    assert [(it["label"], it["device"]) for it in items] == [(1, 0), (0, -1), (-1, -1)]  # s4 not listed: -1
    assert not items[0]["wave"][:, 4000:].any()  # 0.5 s clip padded to 1 s
    np.testing.assert_allclose(items[1]["wave"].numpy(), sf.read(recs[1].path, dtype="float32")[0][:8000].T)
    assert ds.labels().tolist() == [1, 0, -1]
    assert WaveformDataset(recs, ["park", "bus"], 8000).device_index == {"a": 0, "s4": 1}


def test_waveform_cache_decodes_each_file_once_within_its_budget(tmp_path, monkeypatch):
    import asclab.data.dataset as dataset_module

    recs = [Record(_clip(tmp_path / f"{k}.wav", 1.0), label="bus") for k in "abc"]
    plain = [item["wave"] for item in WaveformDataset(recs, ["bus"], 8000, "mono", 1.0)]
    reads = Counter()
    real_load = dataset_module.load_audio
    monkeypatch.setattr(dataset_module, "load_audio", lambda path, *a, **k: reads.update([Path(path).name])
                        or real_load(path, *a, **k))
    # 2 clips of 8000 float32 samples fit in the budget, the third does not
    cached = WaveformDataset(recs, ["bus"], 8000, "mono", 1.0, cache_mb=2.5 * 8000 * 4 / 2**20)
    for _ in range(3):  # three epochs
        for i in range(3):
            item = cached[i]
            torch.testing.assert_close(item["wave"], plain[i], rtol=0, atol=0)
            item["wave"].mul_(0)  # a consumer writing into its item does not change the cache
    assert reads == Counter({"a.wav": 1, "b.wav": 1, "c.wav": 3})  # c is over the budget: decoded every epoch
    assert cached._cached == 2 * 8000 * 4


def test_unknown_label_and_skip(tmp_path):
    good = Record(_clip(tmp_path / "good.wav", 0.2), label="bus")
    alien = Record(_clip(tmp_path / "alien.wav", 0.2), label="moon", extra={"source": "meta.csv", "row": 7})
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF1234WAVEjunk")
    with pytest.raises(DataError, match=r"meta\.csv: row 7: label 'moon'"):
        WaveformDataset([good, alien], ["bus"], 8000)
    ds = WaveformDataset([good, alien, Record(broken, label="bus"), Record(tmp_path / "gone.wav", label="bus")],
                         ["bus"], 8000, on_error="skip")
    assert [r.path.name for r in ds.records] == ["good.wav"]
    assert [(Path(f).name, row) for f, row, _ in ds.skipped] == [("meta.csv", 7), ("broken.wav", None),
                                                                 ("gone.wav", None)]


def _grid(counts: dict[tuple[str, str, str], int]) -> list[Record]:
    return [Record(Path(f"{c}-{d}-{s}-{i}.wav"), label=s, device=d, city=c)
            for (c, d, s), n in counts.items() for i in range(n)]


def test_balanced_subsample():
    counts = {("lyon", "a", "bus"): 30, ("lyon", "b", "bus"): 7, ("paris", "a", "bus"): 3, ("paris", "a", "park"): 12}
    recs = _grid(counts)
    picked = balanced_subsample(recs, per_cell=7, seed=0)
    got = Counter((r.city, r.device, r.label) for r in picked)
    assert got == {k: min(n, 7) for k, n in counts.items()}
    report = balance_report(recs, per_cell=7)
    assert report.cells == 4 and report.selected == len(picked) == 7 + 7 + 3 + 7
    assert report.short_cells == {("paris", "a", "bus"): 3}
    assert [recs.index(r) for r in picked] == sorted(recs.index(r) for r in picked)  # input order kept
    assert balanced_subsample(recs, 7, seed=0) == picked
    assert balanced_subsample(recs, 7, seed=1) != picked
    by_device = balanced_subsample(recs, 5, keys=("device",), seed=0)
    assert Counter(r.device for r in by_device) == {"a": 5, "b": 5}
