"""Atomic writes: every result file is written beside its target and renamed
into place, so an interrupted run never leaves a half-written file."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import tempfile
from pathlib import Path
from typing import Iterator

from asclab.errors import AsclabError


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it to ``path`` on success."""
    path = Path(path)
    if path.is_dir():
        raise AsclabError(f"{path}: cannot write this output, a folder is in the way")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    except OSError as exc:
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        why = f"{blocker} is a file, not a folder" if blocker is not None else (exc.strerror or str(exc))
        raise AsclabError(f"{path}: cannot write this output ({why})") from None
    os.close(fd)
    existed = path.exists()
    try:
        try:
            yield Path(tmp)
        except Exception as exc:
            if is_disk_full(exc) or at_write_limit(tmp):
                raise disk_full_error(path, tmp, existed) from None
            raise
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise AsclabError(f"{path}: cannot write this output ({exc.strerror or exc})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
# What writers that wrap the OSError say (torch.save's PytorchStreamWriter, h5py, zipfile).
DISK_FULL_WORDS = ("no space left", "file too large", "disk quota", "file write failed", "write failed")


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it wraps) is a full disk or a file-size limit."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return True
        if any(w in str(exc).lower() for w in DISK_FULL_WORDS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def at_write_limit(tmp: str) -> bool:
    """Whether the folder of ``tmp`` is (nearly) full or ``tmp`` reached the process's file-size
    limit (``ulimit -f``): writers such as torch.save report that as an error of their own."""
    try:
        size = os.path.getsize(tmp)
        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        if soft != resource.RLIM_INFINITY and size >= soft:
            return True
        st = os.statvfs(os.path.dirname(os.path.abspath(tmp)))
        return st.f_bavail * st.f_frsize < 1 << 20
    except OSError:
        return False


def disk_full_error(path: Path, tmp: str, existed: bool) -> AsclabError:
    """The one-line error for a write that ran out of space (the temporary file is removed after)."""
    written = os.path.getsize(tmp) if os.path.exists(tmp) else 0
    kept = "the earlier file is intact" if existed else "nothing was written there"
    return AsclabError(f"{path}: no space left / file too large ({written:,} bytes written); {kept}")


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
