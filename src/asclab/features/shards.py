"""Build a feature cache file in shards: in parallel, resumable, verified.

The clips of one cache (in the cache's row order) are cut into shards of
``shard_size`` clips. Each shard is computed by one process (``workers``
worker processes share the shards; ``workers=1`` computes them in this
process) and written to ``<work>/shard-00003.h5`` through a temporary file and
``os.replace``, so a shard file exists only once it is whole. Its attributes
hold the cache key, its first/last row, its row count and the SHA-256 of its
float16 feature bytes (row-major); ``<work>/manifest.json`` records the plan
(key, rows, shard size) and each finished shard's checksum.

An interrupted build (an exception, Ctrl-C, a killed process) keeps its
finished shards. The next build of the same key re-reads every shard it finds,
checks attributes, row count and checksum (recomputed from the data, and
compared with the manifest), deletes the damaged ones and computes only the
missing ones. When all are present they are joined, row block by row block,
into the single cache file (again temporary file + ``os.replace``) and the work
folder is deleted. Joining copies the data once; a one-shard cache is renamed.

Concurrent builders of one cache (several DDP ranks, two commands) serialise on
an exclusive lock file (``flock``): the first builds with its worker pool, the
others wait and then find the finished file.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from asclab.data.records import Record
from asclab.errors import DataError
from asclab.features.config import FeatureConfig
from asclab.features.extractor import FeatureExtractor

try:  # POSIX advisory locks; elsewhere concurrent builders simply duplicate work (writes stay atomic)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

DEFAULT_SHARD_SIZE = 256
MANIFEST = "manifest.json"
_READ_ROWS = 64  # rows per block when hashing or joining
_log = logging.getLogger(__name__)


@dataclass
class ShardReport:
    """What a build did: shard indices computed now, reused from an earlier
    (interrupted) build, and found damaged (deleted, then recomputed)."""

    shard_size: int
    computed: list[int] = field(default_factory=list)
    reused: list[int] = field(default_factory=list)
    damaged: list[int] = field(default_factory=list)


def shard_ranges(count: int, shard_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` row ranges of the shards of ``count`` rows."""
    size = max(1, int(shard_size))
    return [(s, min(s + size, count)) for s in range(0, count, size)]


def shard_path(work_dir: Path, index: int) -> Path:
    return Path(work_dir) / f"shard-{index:05d}.h5"


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created on entry, deleted on exit).

    Waiting is blocking; ``on_wait`` is called once if another process holds
    the lock. The file is deleted while still locked, so a waiter that then
    gets the lock on the deleted file notices (inode changed) and retries.
    """
    if fcntl is None:  # pragma: no cover
        yield
        return
    path = Path(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                    on_wait = None
                fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev):
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


# ----- one shard ---------------------------------------------------------------------------
def _worker_init(parent: int) -> None:
    torch.set_num_threads(1)  # one process per core; intra-op threads would oversubscribe
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A killed build must not leave workers waiting forever on the task queue."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def compute_shard(path: Path, key: str, start: int, records: Sequence[Record], cfg: FeatureConfig,
                  loader: Callable[[Record], np.ndarray], batch_size: int = 32,
                  on_rows: Callable[[int], None] | None = None) -> dict:
    """Compute the features of ``records`` (rows ``start`` ...) into the shard file ``path``.

    Returns ``{"sha256", "shape"}``. The file appears only when complete.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    extractor = FeatureExtractor(cfg).eval()
    digest = hashlib.sha256()
    shape = None
    try:
        with h5py.File(tmp, "w") as f:
            ds = None
            for b0 in range(0, len(records), max(1, batch_size)):
                batch = records[b0 : b0 + batch_size]
                waves = []
                for rec in batch:
                    w = np.asarray(loader(rec), dtype=np.float32)
                    w = w[None] if w.ndim == 1 else w
                    if shape is None:
                        shape = w.shape
                    if w.ndim != 2 or w.shape != shape:
                        raise DataError(f"{rec.path}: loader gave audio of shape {w.shape}, expected {shape} "
                                        f"like {records[0].path.name}")
                    waves.append(w)
                with torch.inference_mode():
                    feats = extractor(torch.from_numpy(np.stack(waves))).numpy().astype(np.float16)
                bad = ~np.isfinite(feats).reshape(len(batch), -1).all(1)
                if bad.any():
                    raise DataError(f"{batch[int(np.argmax(bad))].path}: features not finite in float16")
                if ds is None:
                    ds = f.create_dataset("features", shape=(len(records), *feats.shape[1:]), dtype=np.float16,
                                          chunks=(1, *feats.shape[1:]))
                feats = np.ascontiguousarray(feats)
                ds[b0 : b0 + len(batch)] = feats
                digest.update(feats.tobytes())
                if on_rows is not None:
                    on_rows(len(batch))
            f.create_dataset("paths", data=np.array([str(r.path) for r in records], dtype=h5py.string_dtype()))
            f.attrs.update({"key": key, "start": start, "stop": start + len(records), "count": len(records),
                            "sha256": digest.hexdigest(), "complete": 1})
            out_shape = list(ds.shape[1:])
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return {"sha256": digest.hexdigest(), "shape": out_shape}


def data_digest(ds: h5py.Dataset) -> str:
    """SHA-256 of a dataset's bytes in row-major order, read in row blocks."""
    digest = hashlib.sha256()
    for s in range(0, ds.shape[0], _READ_ROWS):
        digest.update(np.ascontiguousarray(ds[s : s + _READ_ROWS]).tobytes())
    return digest.hexdigest()


def verify_shard(path: Path, key: str, start: int, stop: int, sha256: str | None = None) -> bool:
    """True when ``path`` is a complete shard of rows ``[start, stop)`` of cache
    ``key`` whose data still hash to the stored checksum (and to ``sha256`` if given)."""
    try:
        with h5py.File(path, "r") as f:
            a = f.attrs
            if int(a.get("complete", 0)) != 1 or a.get("key") != key:
                return False
            if (int(a.get("start", -1)), int(a.get("stop", -1)), int(a.get("count", -1))) != (start, stop, stop - start):
                return False
            ds = f["features"]
            if ds.shape[0] != stop - start or ds.dtype != np.float16 or f["paths"].shape[0] != stop - start:
                return False
            stored = a.get("sha256")
            if sha256 is not None and stored != sha256:
                return False
            return data_digest(ds) == stored
    except Exception:  # noqa: BLE001 - any unreadable shard is rebuilt
        return False


# ----- the whole build ---------------------------------------------------------------------------
def _read_manifest(work_dir: Path) -> dict | None:
    try:
        return json.loads((work_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _write_manifest(work_dir: Path, manifest: dict) -> None:
    tmp = work_dir / f".{MANIFEST}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, work_dir / MANIFEST)


def build_shards(records: Sequence[Record], cfg: FeatureConfig, loader: Callable[[Record], np.ndarray],
                 work_dir: str | os.PathLike, key: str, *, shard_size: int = DEFAULT_SHARD_SIZE, workers: int = 1,
                 batch_size: int = 32, progress: bool = True, desc: str = "features") -> ShardReport:
    """Make every shard of ``records`` present and verified in ``work_dir``.

    The caller holds the cache's lock. An interrupted build of the same key
    keeps its shard size (from the manifest) so its finished shards count.
    ``workers > 1`` needs a picklable ``loader``.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    for tmp in work_dir.glob("*.tmp-*"):  # left by killed builds; we hold the lock, nobody else writes here
        tmp.unlink(missing_ok=True)
    count = len(records)
    old = _read_manifest(work_dir)
    if old and old.get("key") == key and old.get("count") == count and int(old.get("shard_size", 0)) > 0:
        if int(old["shard_size"]) != int(shard_size):
            _log.info("resuming an interrupted feature build with its shard size %s", old["shard_size"])
        shard_size = int(old["shard_size"])
        checksums = {int(k): v for k, v in (old.get("sha256") or {}).items()}
    else:
        for stale in work_dir.glob("shard-*.h5"):
            stale.unlink()
        checksums = {}
    ranges = shard_ranges(count, shard_size)
    manifest = {"format": "asclab-feature-shards", "key": key, "count": count, "shard_size": int(shard_size),
                "shards": len(ranges), "sha256": {str(k): v for k, v in checksums.items()}}
    _write_manifest(work_dir, manifest)
    report = ShardReport(int(shard_size))
    todo = []
    for i, (start, stop) in enumerate(ranges):
        p = shard_path(work_dir, i)
        if p.exists():
            if verify_shard(p, key, start, stop, checksums.get(i)):
                report.reused.append(i)
                continue
            _log.warning("feature shard %s is damaged or incomplete; recomputing it", p)
            report.damaged.append(i)
            p.unlink()
        checksums.pop(i, None)
        todo.append(i)
    for stale in work_dir.glob("shard-*.h5"):  # shards beyond the plan
        if int(stale.stem.split("-")[1]) >= len(ranges):
            stale.unlink()
    done_rows = sum(ranges[i][1] - ranges[i][0] for i in report.reused)

    def finished(i: int, info: dict) -> None:
        manifest["sha256"][str(i)] = info["sha256"]
        _write_manifest(work_dir, manifest)
        report.computed.append(i)

    with tqdm(total=count, initial=done_rows, desc=desc, unit="clip", disable=not progress) as bar:
        if workers <= 1 or len(todo) <= 1:
            for i in todo:
                start, stop = ranges[i]
                finished(i, compute_shard(shard_path(work_dir, i), key, start, records[start:stop], cfg, loader,
                                          batch_size, on_rows=bar.update))
        else:
            _run_pool(todo, ranges, records, cfg, loader, work_dir, key, batch_size, workers, bar, finished)
    report.computed.sort()
    return report


def _run_pool(todo, ranges, records, cfg, loader, work_dir, key, batch_size, workers, bar, finished) -> None:
    ctx = multiprocessing.get_context("spawn")  # fork after torch/OpenMP start-up can deadlock
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx, initializer=_worker_init,
                             initargs=(os.getpid(),)) as pool:
        futures = {}
        try:
            for i in todo:
                start, stop = ranges[i]
                fut = pool.submit(compute_shard, shard_path(work_dir, i), key, start, list(records[start:stop]),
                                  cfg, loader, batch_size)
                futures[fut] = i
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = futures[fut]
                    finished(i, fut.result())  # a worker's exception is raised here
                    bar.update(ranges[i][1] - ranges[i][0])
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


def join_shards(work_dir: str | os.PathLike, out_path: str | os.PathLike, key: str, count: int, shard_size: int,
                attrs: dict) -> str:
    """Join the verified shards into the cache file ``out_path`` (temporary file +
    ``os.replace``), checking every shard's checksum on the way. ``attrs`` are
    stored with ``count``, ``sha256`` (of all features) and ``complete=1``.
    Returns the SHA-256 of the joined features."""
    work_dir, out_path = Path(work_dir), Path(out_path)
    ranges = shard_ranges(count, shard_size)
    first_shape = None
    for i, _ in enumerate(ranges):
        with h5py.File(shard_path(work_dir, i), "r") as f:
            shape = f["features"].shape[1:]
            if first_shape is None:
                first_shape, first_clip = shape, f["paths"][0].decode()
            elif shape != first_shape:
                raise DataError(f"{f['paths'][0].decode()}: features of shape {shape}, expected {first_shape} "
                                f"like {first_clip} (clips of different lengths?)")
    tmp = out_path.with_name(f"{out_path.name}.tmp-{os.getpid()}")
    total = hashlib.sha256()
    try:
        if len(ranges) == 1:
            src = shard_path(work_dir, 0)
            with h5py.File(src, "r+") as f:
                sha = f.attrs["sha256"]
                for name in ("start", "stop"):
                    del f.attrs[name]
                f.attrs.update({**attrs, "count": count, "sha256": sha, "complete": 1})
            os.replace(src, out_path)
            return str(sha)
        with h5py.File(tmp, "w") as out:
            ds = out.create_dataset("features", shape=(count, *first_shape), dtype=np.float16,
                                    chunks=(1, *first_shape))
            paths = []
            for i, (start, stop) in enumerate(ranges):
                with h5py.File(shard_path(work_dir, i), "r") as f:
                    digest = hashlib.sha256()
                    src = f["features"]
                    for s in range(0, stop - start, _READ_ROWS):
                        block = np.ascontiguousarray(src[s : s + _READ_ROWS])
                        digest.update(block.tobytes())
                        total.update(block.tobytes())
                        ds[start + s : start + s + len(block)] = block
                    if digest.hexdigest() != f.attrs["sha256"]:
                        raise DataError(f"{shard_path(work_dir, i)}: shard changed while being joined (checksum)")
                    paths.extend(p.decode() for p in f["paths"][:])
            out.create_dataset("paths", data=np.array(paths, dtype=h5py.string_dtype()))
            out.attrs.update({**attrs, "count": count, "sha256": total.hexdigest(), "complete": 1})
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return total.hexdigest()


def build_cache_file(path: str | os.PathLike, key: str, records: Sequence[Record], cfg: FeatureConfig,
                     loader: Callable[[Record], np.ndarray], attrs: dict, *, shard_size: int = DEFAULT_SHARD_SIZE,
                     workers: int = 1, batch_size: int = 32, progress: bool = True) -> ShardReport:
    """Compute the cache file ``path`` for ``records`` (its rows, in order) through
    shards in ``<path stem>.shards/``; the caller holds the cache's lock.

    On failure the finished shards stay for the next build, unless there are
    none or the data themselves are at fault (``DataError``): then the work
    folder is removed."""
    path = Path(path)
    work_dir = path.with_name(path.stem + ".shards")
    try:
        report = build_shards(records, cfg, loader, work_dir, key, shard_size=shard_size, workers=workers,
                              batch_size=batch_size, progress=progress, desc=f"features -> {path.name}")
        join_shards(work_dir, path, key, len(records), report.shard_size, attrs)
    except BaseException as exc:
        if isinstance(exc, DataError) or not any(work_dir.glob("shard-*.h5")):
            shutil.rmtree(work_dir, ignore_errors=True)
        raise
    shutil.rmtree(work_dir, ignore_errors=True)
    return report


def verify_cache_file(path: str | os.PathLike) -> bool:
    """Recompute the features' SHA-256 and compare it with the stored one
    (files without a stored checksum do not verify)."""
    try:
        with h5py.File(path, "r") as f:
            stored = f.attrs.get("sha256")
            return stored is not None and data_digest(f["features"]) == stored
    except Exception:  # noqa: BLE001
        return False
