"""FeatureCache: built once, keyed by files + settings, robust to interrupted and corrupt files."""
from __future__ import annotations

import os
import pickle

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch

from asclab.data.records import Record
from conftest import tone_records
from asclab.errors import DataError
from asclab.features import CachedFeatureDataset, FeatureCache, FeatureConfig, FeatureExtractor, cache_key

SR = 16000
CFG = FeatureConfig(sample_rate=SR, n_fft=512, hop_length=256, n_mels=32, deltas=True)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """One torch thread for every test here (see conftest)."""


class CountingLoader:
    """Reads the wav of a record as (C, N) float32 and counts calls; can fail on a given call."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.calls = 0
        self.fail_on = fail_on

    def __call__(self, rec: Record) -> np.ndarray:
        self.calls += 1
        if self.fail_on is not None and self.calls == self.fail_on:
            raise RuntimeError("simulated crash while loading")
        y, _ = sf.read(rec.path, dtype="float32", always_2d=True)
        return y.T


@pytest.fixture()
def records(tmp_path) -> list[Record]:
    return tone_records(tmp_path / "audio", 7, SR, seed=0, f0=200, step=150)


def _build(records, tmp_path, loader, cfg=CFG, **kw) -> FeatureCache:
    return FeatureCache.build(records, cfg, loader, tmp_path / "cache", batch_size=3, progress=False, **kw)


def test_builds_once_and_reuses(records, tmp_path):
    loader = CountingLoader()
    cache = _build(records, tmp_path, loader)
    assert loader.calls == len(records) and len(cache) == len(records)
    assert cache.path.is_file() and cache.path.parent == tmp_path / "cache"
    again = _build(records, tmp_path, loader)
    assert loader.calls == len(records), "second build recomputed"
    assert again.path == cache.path and again.key == cache.key
    # values are the extractor's, float16 round-trip close to float32
    wave = torch.from_numpy(np.stack([CountingLoader()(r) for r in records]))
    expected = FeatureExtractor(CFG)(wave).numpy()
    for i in range(len(records)):
        x = again[i]
        assert x.dtype == np.float32 and x.shape == expected[i].shape == (3, 32, 63)
        np.testing.assert_allclose(x, expected[i], rtol=1e-3, atol=1e-3)
    with h5py.File(cache.path, "r") as f:
        assert f["features"].dtype == np.float16
        assert int(f.attrs["complete"]) == 1 and int(f.attrs["count"]) == len(records)


def test_key_changes_with_config_files_and_policy(records, tmp_path):
    base = cache_key(records, CFG)
    assert cache_key(list(reversed(records)), CFG) == base
    assert cache_key(records, FeatureConfig(**{**CFG.to_dict(), "n_mels": 40})) != base
    assert cache_key(records, CFG, duration=1.0) != base
    assert cache_key(records, CFG, loader_tag="resample=soxr_hq") != base
    assert cache_key(records[:-1], CFG) != base
    st = records[0].path.stat()
    os.utime(records[0].path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert cache_key(records, CFG) != base
    loader = CountingLoader()
    a = _build(records, tmp_path, loader)
    b = _build(records, tmp_path, loader, cfg=FeatureConfig(**{**CFG.to_dict(), "n_mels": 40}))
    assert a.path != b.path and loader.calls == 2 * len(records)
    assert b[0].shape == (3, 40, 63)


def test_order_of_records_maps_to_the_right_rows(records, tmp_path):
    loader = CountingLoader()
    forward = _build(records, tmp_path, loader)
    backward = _build(list(reversed(records)), tmp_path, loader)
    assert loader.calls == len(records) and backward.path == forward.path
    n = len(records)
    for i in range(n):
        np.testing.assert_array_equal(backward[i], forward[n - 1 - i])
    assert not np.array_equal(forward[0], forward[1])


def test_interrupted_build_leaves_no_complete_file_and_next_build_succeeds(records, tmp_path):
    with pytest.raises(RuntimeError, match="simulated crash"):
        _build(records, tmp_path, CountingLoader(fail_on=5))
    leftovers = list((tmp_path / "cache").iterdir())
    assert leftovers == [], leftovers
    loader = CountingLoader()
    cache = _build(records, tmp_path, loader)
    assert loader.calls == len(records) and len(cache) == len(records)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [cache.path.name]


def test_truncated_or_unfinished_files_are_rebuilt(records, tmp_path):
    cache = _build(records, tmp_path, CountingLoader())
    good = cache[3].copy()
    cache.close()
    data = cache.path.read_bytes()
    cache.path.write_bytes(data[: len(data) // 2])  # truncated (e.g. disk full, killed copy)
    loader = CountingLoader()
    rebuilt = _build(records, tmp_path, loader)
    assert loader.calls == len(records)
    np.testing.assert_array_equal(rebuilt[3], good)
    rebuilt.close()
    with h5py.File(rebuilt.path, "r+") as f:  # a file without the 'complete' mark
        del f.attrs["complete"]
    loader = CountingLoader()
    _build(records, tmp_path, loader)
    assert loader.calls == len(records)
    with h5py.File(rebuilt.path, "r+") as f:  # marked complete but with the wrong row count
        f.attrs["count"] = len(records) - 1
    loader = CountingLoader()
    _build(records, tmp_path, loader)
    assert loader.calls == len(records)
    cache.path.write_bytes(b"not an hdf5 file")
    loader = CountingLoader()
    _build(records, tmp_path, loader)
    assert loader.calls == len(records)


def test_stale_temporary_files_of_dead_builds_are_removed(records, tmp_path):
    cache = _build(records, tmp_path, CountingLoader())
    stale = cache.path.with_name(cache.path.name + ".tmp-999999999")
    cache.close()
    cache.path.unlink()
    stale.write_bytes(b"partial")
    _build(records, tmp_path, CountingLoader())
    assert not stale.exists()


def test_mismatched_clip_shapes_are_a_data_error(records, tmp_path):
    def loader(rec):
        y = CountingLoader()(rec)
        return y[:, : SR // 2] if rec.path.name == "clip4.wav" else y

    with pytest.raises(DataError, match="clip4.wav"):
        _build(records, tmp_path, loader)
    assert list((tmp_path / "cache").iterdir()) == []


def test_dataset_items_and_lazy_reading_in_workers(records, tmp_path):
    cache = _build(records, tmp_path, CountingLoader())
    labels = [i % 3 for i in range(len(records))]
    ds = CachedFeatureDataset(cache, labels, devices=[0, 1, 2, 0, 1, 2, 0])
    item = ds[4]
    assert set(item) == {"x", "label", "device", "index"}
    assert item["x"].dtype == torch.float32 and item["x"].shape == (3, 32, 63)
    assert (item["label"], item["device"], item["index"]) == (1, 1, 4)
    assert CachedFeatureDataset(cache, labels)[0]["device"] == -1
    with pytest.raises(DataError):
        CachedFeatureDataset(cache, labels[:-1])
    copy = pickle.loads(pickle.dumps(cache))  # what a spawned worker receives: no open handle
    np.testing.assert_array_equal(copy[2], cache[2])
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)
    batches = list(loader)
    assert sum(len(b["index"]) for b in batches) == len(records)
    torch.testing.assert_close(batches[1]["x"][0], ds[4]["x"])
