"""The training logs of a stage: always the CSV log (``<stage>/logs/metrics.csv``,
read by the plots and summaries), plus an optional TensorBoard log beside it
(``train.logger: tensorboard`` or ``asclab train --logger tensorboard``, in
``<stage>/tensorboard/``). Not from a paper."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger  # the latter imports tensorboard only when it writes

from asclab.errors import ConfigError

LOGGERS = ("csv", "tensorboard")
TENSORBOARD_HINT = "pip install tensorboard"


def tensorboard_available() -> bool:
    """Lightning's TensorBoardLogger writes with ``tensorboard`` (or ``tensorboardX``)."""
    return any(importlib.util.find_spec(name) is not None for name in ("tensorboard", "tensorboardX"))


def check_logger(kind: str | None) -> str:
    """``kind`` validated: "csv" (default) or "tensorboard", whose package must be installed."""
    kind = kind or "csv"
    if kind not in LOGGERS:
        raise ConfigError(f"train.logger: {kind!r} is not one of {', '.join(LOGGERS)}")
    if kind == "tensorboard" and not tensorboard_available():
        raise ConfigError(f"train.logger: tensorboard needs the tensorboard package, which is not installed: "
                          f"{TENSORBOARD_HINT}")
    return kind


def stage_loggers(stage_dir: Path, kind: str | None) -> list:
    """Lightning loggers for one stage folder: the CSV log, and TensorBoard's when asked."""
    loggers = [CSVLogger(str(stage_dir), name="", version="logs")]
    if check_logger(kind) == "tensorboard":
        loggers.append(TensorBoardLogger(str(stage_dir), name="", version="tensorboard", default_hp_metric=False))
    return loggers
