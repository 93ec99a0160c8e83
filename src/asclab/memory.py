"""Keep freed memory in the process: glibc's malloc tuned for training's large,
short-lived tensors (issue 15; not from a paper).

torch's CPU allocator is glibc ``malloc``. glibc serves every request above
``M_MMAP_THRESHOLD`` (dynamic, at most 32 MiB) with a fresh ``mmap`` and gives
it back with ``munmap`` on free, so each activation of a training step (a
CP-Mobile batch of 64 ten-second clips has many of 100-400 MiB) is zero-filled
again by the kernel, page by page: measured here, 1.35 million page faults
and about as much kernel as user time per step. Raising the mmap threshold and
the trim threshold to 2 GiB makes these blocks come from the heap and stay
there for the next step: the faults fall to a few thousand per step and the
kernel time to almost nothing (``benchmarks/bench_train_step.py``).

The cost: memory freed by the process is kept for reuse rather than returned
to the system (resident size stays at its peak). The ``asclab`` command line
applies it at start; ``ASCLAB_MALLOC=default`` leaves glibc as it is. On a C
library other than glibc (macOS, musl) nothing is done.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

M_TRIM_THRESHOLD = -1  # glibc malloc.h
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 2**31 - 1  # mallopt takes an int: the largest threshold it can express (2 GiB)
ENV = "ASCLAB_MALLOC"


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
        return libc
    except (OSError, AttributeError):
        return None


def keep_freed_memory(limit_bytes: int = KEEP_BYTES) -> bool:
    """Serve allocations up to ``limit_bytes`` from the heap and keep freed memory for reuse
    (glibc ``mallopt`` M_MMAP_THRESHOLD and M_TRIM_THRESHOLD). Returns True when applied;
    False on another C library or with ``ASCLAB_MALLOC=default`` in the environment."""
    if os.environ.get(ENV, "").strip().lower() == "default":
        return False
    libc = _glibc()
    if libc is None:
        return False
    limit = int(max(0, min(int(limit_bytes), KEEP_BYTES)))
    return bool(libc.mallopt(M_MMAP_THRESHOLD, limit)) and bool(libc.mallopt(M_TRIM_THRESHOLD, limit))
