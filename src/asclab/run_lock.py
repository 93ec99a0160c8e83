"""Run folders held alone: the lock a training, crossval or teachers run takes on its ``--out``,
the check that ``--out`` is new, empty or an asclab run, and the refusal of a held folder before
any slow import (a utility: it imports nothing of asclab's stages, so the CLI can call it first)."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Iterator

from asclab.errors import AsclabError

RUN_MARKERS = ("run_info.json", "recipe.yaml", "model.ckpt", "summary.json", "ensemble.json", "crossval.json",
               "teachers.json")


def lock_path(out_dir: Path) -> Path:
    """The lock file of a run folder: beside it, so that nothing is written into the
    folder before the recipe and the data have been checked."""
    out_dir = Path(out_dir).absolute()
    return out_dir.parent / f".{out_dir.name}.asclab-lock"


def _holds_run(path: Path) -> bool:
    return path.is_dir() and any((path / m).exists() for m in RUN_MARKERS)


def is_asclab_run(path: Path) -> bool:
    """A run folder, a crossval folder (``crossval.json``, or per-fold runs ``foldK/`` of an
    interrupted one), or an ``asclab teachers`` folder (``teachers.json``, or member runs
    ``members/NAME/``, per fold ``foldK/members/NAME/``, of an interrupted one)."""
    path = Path(path)
    folds = list(path.glob("fold*"))
    if _holds_run(path) or any(_holds_run(f) for f in folds):
        return True
    return any(_holds_run(m) for f in (path, *folds) for m in f.glob("members/*"))


def check_out_folder(out_dir: Path) -> None:
    """Refuse an ``--out`` that is a file, a non-empty folder that is not an asclab run, or a
    folder that cannot be written or created (checked before any training)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise AsclabError(f"{out_dir}: --out must be a folder, and this is a file")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not is_asclab_run(out_dir):
        raise AsclabError(f"{out_dir}: --out is a non-empty folder that is not an asclab run; "
                          "choose an empty or new folder")
    if out_dir.is_dir() and not os.access(out_dir, os.W_OK | os.X_OK):
        raise AsclabError(f"{out_dir}: cannot write into this --out folder (it is not writable)")
    if not out_dir.exists():  # the nearest existing folder above must take a new folder
        above = next(p for p in out_dir.absolute().parents if p.exists())
        if not above.is_dir():
            raise AsclabError(f"{out_dir}: cannot create this --out folder ({above} is a file, not a folder)")
        if not os.access(above, os.W_OK | os.X_OK):
            raise AsclabError(f"{out_dir}: cannot create this --out folder ({above} is not writable)")


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another asclab run"
    return f"asclab run pid {info.get('pid')} on {info.get('host')} since {info.get('since')}"


def _flock_soon(fd: int, seconds: float = 1.0) -> bool:
    """Take an exclusive flock on ``fd``, trying for up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


class RunLock:
    """An exclusive ``fcntl.flock`` on a run folder's lock file, holding pid, host and start
    time. A second process asking for the same folder is refused at once (AsclabError
    naming the holder). The lock goes with the process, so a killed run leaves no lock."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.path = lock_path(self.out_dir)
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AsclabError(f"{self.out_dir}: cannot create the folder ({exc.strerror})") from None
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise AsclabError(f"{self.out_dir}: cannot write beside the folder ({exc.strerror})") from None
            if not _flock_soon(fd):  # a second's grace: another process may only be checking the lock
                os.close(fd)
                raise AsclabError(f"{self.out_dir}: in use by {_holder(self.path)}; wait for it to finish "
                                  "or choose another --out") from None
            try:  # the holder before us may have removed the file after we opened it
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "folder": str(self.out_dir)}
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(info) + "\n").encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def has_checkpoint(out_dir: Path) -> bool:
    """Whether a run got as far as its first checkpoint (then it can be resumed)."""
    out_dir = Path(out_dir)  # a member or fold run inside it (ensemble, crossval, teachers) counts too
    return any(out_dir.glob("**/checkpoints/*.ckpt")) or any(out_dir.glob("**/model.ckpt"))


@contextlib.contextmanager
def claim_run_folder(out_dir: str | Path, *, lock: bool = True) -> Iterator[Path]:
    """Check ``--out``, lock it for this run, and, if the run fails before its first
    checkpoint in a folder it created, remove the folder: no half run is left behind."""
    out = Path(out_dir)
    check_out_folder(out)
    fresh = lock and not out.exists()  # only the process that holds the folder cleans it up
    was_empty = lock and out.is_dir() and not any(out.iterdir())
    held = RunLock(out).acquire() if lock else None
    try:
        yield out
    except BaseException:
        if (fresh or was_empty) and out.is_dir() and not has_checkpoint(out):
            if fresh:
                shutil.rmtree(out, ignore_errors=True)
            else:  # the user's empty folder: emptied again, kept
                for child in list(out.iterdir()):
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
        raise
    finally:
        if held is not None:
            held.release()


def refuse_if_held(out_dir: str | Path | None) -> None:
    """Refuse at once (before the slow imports of a training) an ``--out`` that another run
    holds or that cannot be a run folder; the lock itself is taken by :func:`claim_run_folder`."""
    rank_vars = ("RANK", "LOCAL_RANK", "GROUP_RANK", "NODE_RANK", "SLURM_PROCID")  # as train.distributed
    if not out_dir or any(os.environ.get(v, "0").strip() not in ("", "0") for v in rank_vars):
        return  # a DDP process other than rank 0 runs under the lock rank 0 holds
    check_out_folder(Path(out_dir))

    path = lock_path(Path(out_dir))
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # no lock file: nobody holds the folder
        return
    try:  # a shared lock fails at once while a run holds the exclusive one
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise AsclabError(f"{out_dir}: in use by {_holder(path)}; wait for it to finish or choose another --out") \
            from None
    finally:
        os.close(fd)
