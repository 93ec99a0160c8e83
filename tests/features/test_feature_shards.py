"""Sharded feature caching: parallel workers, resume after interruption, damaged shards rebuilt."""
from __future__ import annotations

import threading
import time

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch

from asclab.data.records import Record
from conftest import tone_records
from asclab.errors import DataError
from asclab.features import FeatureCache, FeatureConfig, FeatureExtractor
from asclab.features.shards import exclusive_lock, shard_path, shard_ranges, verify_cache_file

SR = 16000
CFG = FeatureConfig(sample_rate=SR, n_fft=512, hop_length=256, n_mels=32)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """One torch thread for every test here (see conftest)."""


class CountingLoader:
    """Reads a record's wav as (C, N); counts calls (in this process); can fail on one call.
    A top-level class, so worker processes can unpickle it."""

    def __init__(self, fail_on: int | None = None, short: tuple[str, ...] = ()) -> None:
        self.calls = 0
        self.fail_on = fail_on
        self.short = short

    def __call__(self, rec: Record) -> np.ndarray:
        self.calls += 1
        if self.fail_on is not None and self.calls == self.fail_on:
            raise RuntimeError("simulated crash while loading")
        y, _ = sf.read(rec.path, dtype="float32", always_2d=True)
        return y.T[:, : SR // 2] if rec.path.name in self.short else y.T


@pytest.fixture()
def records(tmp_path) -> list[Record]:
    return tone_records(tmp_path / "audio", 7, SR, seed=1, f0=180, step=170)


def _build(records, tmp_path, loader, **kw) -> FeatureCache:
    return FeatureCache.build(records, CFG, loader, tmp_path / "cache", batch_size=2, progress=False, **kw)


def _work_dir(tmp_path):
    dirs = list((tmp_path / "cache").glob("*.shards"))
    assert len(dirs) == 1, dirs
    return dirs[0]


def _features(cache) -> np.ndarray:
    return np.stack([cache[i] for i in range(len(cache))])


def test_shard_ranges_cover_all_rows_once():
    assert shard_ranges(7, 2) == [(0, 2), (2, 4), (4, 6), (6, 7)]
    assert shard_ranges(4, 10) == [(0, 4)]
    for n, size in ((1, 1), (10, 3), (256, 256)):
        rows = [i for a, b in shard_ranges(n, size) for i in range(a, b)]
        assert rows == list(range(n))


def test_interrupted_build_resumes_without_recomputing_finished_shards(records, tmp_path):
    with pytest.raises(RuntimeError, match="simulated crash"):
        _build(records, tmp_path, CountingLoader(fail_on=5), shard_size=2)  # dies in shard 2 (rows 4-5)
    work = _work_dir(tmp_path)
    assert sorted(p.name for p in work.glob("shard-*.h5")) == ["shard-00000.h5", "shard-00001.h5"]
    assert not list(work.glob("*.tmp-*")) and not list((tmp_path / "cache").glob("features-*.h5"))
    loader = CountingLoader()
    cache = _build(records, tmp_path, loader, shard_size=2)
    assert cache.report.reused == [0, 1] and cache.report.computed == [2, 3] and cache.report.damaged == []
    assert loader.calls == 3  # rows 4, 5 and 6 only
    assert not work.exists() and [p.name for p in (tmp_path / "cache").iterdir()] == [cache.path.name]
    # the joined file holds what a one-piece build computes, in the records' order
    whole = FeatureCache.build(records, CFG, CountingLoader(), tmp_path / "whole", batch_size=7, progress=False)
    np.testing.assert_allclose(_features(cache), _features(whole), rtol=0, atol=2e-3)
    expected = FeatureExtractor(CFG)(torch.from_numpy(np.stack([CountingLoader()(r) for r in records]))).numpy()
    np.testing.assert_allclose(_features(cache), expected, rtol=1e-3, atol=1e-3)
    assert verify_cache_file(cache.path)


def test_damaged_or_truncated_shards_are_rebuilt(records, tmp_path):
    with pytest.raises(RuntimeError):
        _build(records, tmp_path, CountingLoader(fail_on=7), shard_size=2)  # shards 0-2 finished
    work = _work_dir(tmp_path)
    with h5py.File(shard_path(work, 1), "r") as f:  # flip data bytes; attributes stay plausible
        offset = f["features"].id.get_chunk_info(1).byte_offset
    with open(shard_path(work, 1), "r+b") as f:
        f.seek(offset + 10)
        f.write(b"\x7f\x00" * 40)
    data = shard_path(work, 2).read_bytes()
    shard_path(work, 2).write_bytes(data[: len(data) // 2])
    loader = CountingLoader()
    cache = _build(records, tmp_path, loader, shard_size=2)
    assert cache.report.damaged == [1, 2] and cache.report.reused == [0] and cache.report.computed == [1, 2, 3]
    assert loader.calls == 5
    whole = FeatureCache.build(records, CFG, CountingLoader(), tmp_path / "whole", batch_size=2, progress=False)
    np.testing.assert_array_equal(_features(cache), _features(whole))


def test_parallel_workers_give_the_single_process_features(records, tmp_path):
    t0 = time.time()
    par = _build(records, tmp_path, CountingLoader(), shard_size=2, workers=2)
    assert par.report.computed == [0, 1, 2, 3], par.report
    single = FeatureCache.build(records, CFG, CountingLoader(), tmp_path / "single", batch_size=2, progress=False)
    np.testing.assert_array_equal(_features(par), _features(single))
    with h5py.File(par.path, "r") as f:
        assert [p.decode() for p in f["paths"][:]] == [str(r.path.resolve()) for r in
                                                       sorted(records, key=lambda r: r.path.resolve())]
    assert time.time() - t0 < 60


def test_interrupted_build_keeps_its_shard_size(records, tmp_path):
    with pytest.raises(RuntimeError):
        _build(records, tmp_path, CountingLoader(fail_on=4), shard_size=3)  # shard 0 (rows 0-2) finished
    loader = CountingLoader()
    cache = _build(records, tmp_path, loader, shard_size=5)
    assert cache.report.shard_size == 3 and cache.report.reused == [0] and loader.calls == 4


def test_clip_shapes_differing_between_shards_are_a_data_error(records, tmp_path):
    with pytest.raises(DataError, match="clip4.wav"):  # shard 2 = clips 4, 5, both short: consistent inside
        _build(records, tmp_path, CountingLoader(short=("clip4.wav", "clip5.wav")), shard_size=2)
    assert list((tmp_path / "cache").iterdir()) == []


def test_verify_rebuilds_a_damaged_cache_file(records, tmp_path):
    cache = _build(records, tmp_path, CountingLoader(), shard_size=3)
    cache.close()
    with h5py.File(cache.path, "r") as f:
        offset = f["features"].id.get_chunk_info(2).byte_offset
    with open(cache.path, "r+b") as f:
        f.seek(offset)
        f.write(b"\x00\x7c" * 30)
    assert not verify_cache_file(cache.path)
    assert _build(records, tmp_path, CountingLoader(), shard_size=3).report is None  # cheap check passes
    loader = CountingLoader()
    fixed = _build(records, tmp_path, loader, shard_size=3, verify=True)
    assert loader.calls == len(records) and fixed.report.computed == [0, 1, 2]
    assert verify_cache_file(fixed.path)


def test_exclusive_lock_makes_a_second_builder_wait(tmp_path):
    lock = tmp_path / "x.lock"
    events: list[str] = []
    holding = threading.Event()

    def first():
        with exclusive_lock(lock):
            holding.set()
            time.sleep(0.3)
            events.append("first done")

    t = threading.Thread(target=first)
    t.start()
    holding.wait(5)
    with exclusive_lock(lock, on_wait=lambda: events.append("waited")):
        events.append("second in")
    t.join()
    assert events == ["waited", "first done", "second in"]
    assert not lock.exists()
