"""Compute features once, keep them on disk (HDF5, float16), stream them back.

The cache file is named by a key: a SHA-256 over the sorted audio file paths
with their sizes and modification times, the ``FeatureConfig``, the clip
duration and channel policy the loader applies, a free ``loader_tag`` and
the cache format version; change any of them and a new file is built.

The file is computed by ``asclab.features.shards``: in shards of
``shard_size`` clips by ``workers`` processes, each shard written atomically
with its checksum, so an interrupted build resumes without recomputing the
finished shards; the verified shards are then joined into the one file,
which appears (``os.replace``) only after the last row and the
``complete``/``count``/``sha256`` attributes are written. A file that is
unreadable, lacks the attributes or has the wrong key or row count is deleted
and rebuilt. Concurrent builders of one file (DDP ranks) wait on a lock and
reuse the result. Reading opens the file lazily once per process (safe in
DataLoader workers) and reads one row per item, so a cache larger than RAM
streams from disk.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from asclab.data.records import Record
from asclab.errors import AsclabError, DataError
from asclab.features.config import FeatureConfig
from asclab.features.shards import (
    DEFAULT_SHARD_SIZE,
    ShardReport,
    build_cache_file,
    exclusive_lock,
    verify_cache_file,
)

CACHE_FORMAT_VERSION = 1
_log = logging.getLogger(__name__)


def _file_entry(path: Path) -> list:
    try:
        st = path.stat()
    except OSError as exc:
        raise DataError(f"{path}: cannot read audio file for the feature cache ({exc.strerror})") from exc
    return [str(path), st.st_size, st.st_mtime_ns]


def cache_key(
    records: Sequence[Record], cfg: FeatureConfig, *, duration: float | None = None, loader_tag: str = ""
) -> str:
    """SHA-256 (hex) of everything the cached features depend on."""
    files = [_file_entry(p) for p in sorted({Path(r.path).resolve() for r in records})]
    payload = {
        "version": CACHE_FORMAT_VERSION,
        "files": files,
        "features": cfg.to_dict(),
        "duration": duration,
        "channels": cfg.channels,
        "loader": loader_tag,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _is_complete(path: Path, key: str, count: int) -> bool:
    """True when ``path`` is a finished cache for ``key`` with ``count`` readable rows."""
    try:
        with h5py.File(path, "r") as f:
            attrs = f.attrs
            marked = int(attrs.get("complete", 0)) == 1 and int(attrs.get("count", -1)) == count
            if not (marked and attrs.get("key") == key):
                return False
            ds = f["features"]
            if ds.shape[0] != count or ds.dtype != np.float16:
                return False
            ds[count - 1]  # a truncated file fails here
            return True
    except Exception:  # noqa: BLE001 - any unreadable file is simply rebuilt
        return False


def _remove_stale_temps(path: Path) -> None:
    """Delete ``<path>.tmp-<pid>`` files left by builds whose process is gone."""
    for tmp in path.parent.glob(path.name + ".tmp-*"):
        try:
            pid = int(tmp.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except (ValueError, PermissionError, OSError):
            continue


class FeatureCache:
    """Features of ``records`` in the order given: ``cache[i]`` is a float32
    array (in_chans, n_mels, frames) for ``records[i]``. Build with ``build``."""

    def __init__(self, path: Path, key: str, rows: np.ndarray) -> None:
        self.path = Path(path)
        self.key = key
        self._rows = np.asarray(rows, dtype=np.int64)
        self._h5: h5py.File | None = None
        self._pid: int | None = None
        self.report: ShardReport | None = None  # set when this call computed (part of) the file

    @classmethod
    def build(
        cls,
        records: Sequence[Record],
        cfg: FeatureConfig,
        loader: Callable[[Record], np.ndarray],
        cache_dir: str | os.PathLike,
        *,
        batch_size: int = 32,
        progress: bool = True,
        duration: float | None = None,
        loader_tag: str = "",
        workers: int = 1,
        shard_size: int = DEFAULT_SHARD_SIZE,
        verify: bool = False,
    ) -> "FeatureCache":
        """Return the cache for ``records``, computing it first unless a complete
        file with the same key exists. ``loader(record)`` gives the (C, N) float
        waveform; all clips must have the same shape. ``duration`` and
        ``loader_tag`` describe what the loader does (clip length, resampling...)
        and enter the key. ``workers`` processes compute shards of ``shard_size``
        clips (``workers > 1`` needs a picklable loader); ``verify`` re-hashes an
        existing file's features and rebuilds it on a mismatch."""
        if not records:
            raise DataError("feature cache: no records to compute features for")
        key = cache_key(records, cfg, duration=duration, loader_tag=loader_tag)
        cache_dir = Path(cache_dir)
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AsclabError(f"{cache_dir}: cannot use this feature cache folder ({exc.strerror or exc})") from None
        path = cache_dir / f"features-{key[:24]}.h5"
        unique = sorted({Path(r.path).resolve() for r in records})
        row_of = {p: i for i, p in enumerate(unique)}
        rows = np.array([row_of[Path(r.path).resolve()] for r in records], dtype=np.int64)

        def ready() -> bool:
            return _is_complete(path, key, len(unique)) and (not verify or verify_cache_file(path))

        if ready():
            return cls(path, key, rows)
        with exclusive_lock(path.with_name(path.name + ".lock"),
                            on_wait=lambda: _log.warning("waiting for another process building %s", path)):
            if ready():  # built by the process we waited for
                return cls(path, key, rows)
            if path.exists():
                _log.warning("feature cache %s is incomplete, unreadable or damaged; rebuilding it", path)
                path.unlink()
            _remove_stale_temps(path)
            first = {}
            for r in records:
                first.setdefault(Path(r.path).resolve(), r)
            attrs = {"key": key, "version": CACHE_FORMAT_VERSION, "config": json.dumps(cfg.to_dict(), sort_keys=True)}
            report = build_cache_file(path, key, [first[p] for p in unique], cfg, loader, attrs,
                                      shard_size=shard_size, workers=workers, batch_size=batch_size,
                                      progress=progress)
        cache = cls(path, key, rows)
        cache.report = report
        return cache

    def __len__(self) -> int:
        return len(self._rows)

    def _file(self) -> h5py.File:
        if self._h5 is None or self._pid != os.getpid():
            self._h5 = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._h5

    def __getitem__(self, i: int) -> np.ndarray:
        row = int(self._rows[i])
        return self._file()["features"][row].astype(np.float32)

    def close(self) -> None:
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        self._h5 = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_h5"], state["_pid"] = None, None
        return state

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class CachedFeatureDataset(Dataset):
    """Items ``{"x": FloatTensor (in_chans, n_mels, frames), "label": int,
    "device": int (-1 when unknown), "index": int}`` read from a ``FeatureCache``."""

    def __init__(self, cache: FeatureCache, labels: Sequence[int], devices: Sequence[int] | None = None) -> None:
        if len(labels) != len(cache):
            raise DataError(f"feature cache {cache.path}: {len(cache)} items but {len(labels)} labels")
        if devices is not None and len(devices) != len(cache):
            raise DataError(f"feature cache {cache.path}: {len(cache)} items but {len(devices)} device ids")
        self.cache, self.labels, self.devices = cache, list(labels), None if devices is None else list(devices)

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, i: int) -> dict:
        return {
            "x": torch.from_numpy(self.cache[i]),
            "label": int(self.labels[i]),
            "device": -1 if self.devices is None else int(self.devices[i]),
            "index": int(i),
        }
