"""What the ``asclab`` command line does to the process before a command runs:
the thread policy for busy machines and the terminal's noise level.

Thread policy (issue 15; not from a paper): torch's default, one intra-op
thread per core, collapses when other CPU-bound jobs share the cores (every
parallel region waits for its slowest thread, and that thread is descheduled).
``default_threads`` therefore takes the usable physical cores minus the
1-minute load average (rounded), and 1 when the load is at or above the number
of usable cores. ``--threads N`` overrides it, ``--threads 0`` keeps torch's own
choice, and so does an ``OMP_NUM_THREADS`` set by the user.

Quiet: Lightning prints tips ("litlogger", "litmodels"), accelerator lines
("GPU available: ...") and its own status messages through its ``rank_zero``
loggers, and deprecation notices through ``warnings``. The tips are dropped
always; with ``--quiet`` everything below an error from those loggers and
every warning not raised by asclab itself is dropped too.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings

# Lightning's rank-zero loggers (lightning.{pytorch,fabric}.utilities.rank_zero) are left at
# NOTSET by Lightning, so a level set here survives ``import lightning``, which resets the
# parent loggers to INFO.
_RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                      "pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero")
_NOISY_LOGGERS = ("lightning.pytorch.accelerators.cuda", "lightning.fabric.accelerators.cuda",
                  "torch._dynamo", "torch._inductor", "onnxruntime", "onnxscript", "torch.onnx",
                  "lightning.pytorch.trainer.connectors.signal_connector")  # "Received SIGTERM" beside asclab's line


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def physical_cores() -> int:
    """Physical cores among the usable ones (hyper-threads counted once), from
    /proc/cpuinfo where it exists; the usable count otherwise."""
    usable = usable_cores()
    try:
        pairs, phys, core = set(), None, None
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    phys = value.strip()
                elif key == "core id":
                    core = value.strip()
                elif not key and phys is not None and core is not None:
                    pairs.add((phys, core))
                    phys = core = None
        if phys is not None and core is not None:
            pairs.add((phys, core))
        return max(1, min(usable, len(pairs))) if pairs else usable
    except OSError:
        return usable


def default_threads(load: float | None = None, cores: int | None = None, physical: int | None = None) -> int:
    """torch threads for this machine now: ``min(physical cores, round(cores - load))``,
    at least 1, and 1 when the 1-minute load average is at or above the usable cores."""
    cores = usable_cores() if cores is None else int(cores)
    physical = min(cores, physical_cores() if physical is None else int(physical))
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
    if load >= cores:
        return 1
    return max(1, min(physical, int(cores - load + 0.5)))


def apply_threads(threads: int | None) -> int | None:
    """Set torch's intra-op threads: ``threads`` when given (> 0), torch's default for 0,
    else ``default_threads()`` unless the user set ``OMP_NUM_THREADS``. Before torch is
    imported this only sets ``OMP_NUM_THREADS`` (read by torch at import, and inherited by
    worker processes), so commands that never import torch do not pay for it. Returns the
    count set, or None when torch's own choice stands."""
    if threads is not None and threads <= 0:
        return None
    if threads is None:
        if "OMP_NUM_THREADS" in os.environ:
            return None
        threads = default_threads()
    threads = max(1, int(threads))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    return threads


class _DropTips(logging.Filter):
    """Drops Lightning's advertising tips (litlogger, litmodels)."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        return not (msg.startswith("💡") or "litlogger" in msg or "litmodels" in msg)


_TIPS = _DropTips()


def apply_quiet(quiet: bool) -> None:
    """Drop Lightning's tips always; with ``quiet`` also its info lines and every warning
    raised outside asclab (deprecation notices, PossibleUserWarning, ...)."""
    for name in _RANK_ZERO_LOGGERS:
        log = logging.getLogger(name)
        if _TIPS not in log.filters:
            log.addFilter(_TIPS)
        if quiet:
            log.setLevel(logging.ERROR)
    if not quiet:
        return
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"asclab(\.|$)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # tensorboard's optional TensorFlow probe
