"""The unit every reader produces: one labelled (or unlabelled) recording."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Record:
    """One audio file with what is known about it.

    ``label`` is None for unlabelled evaluation files. ``split`` is
    "train", "test", "evaluate" or None; ``fold`` is the data set's own fold
    number where it defines one (ESC-10: 1..5).
    """

    path: Path
    label: str | None = None
    device: str | None = None
    city: str | None = None
    fold: int | None = None
    split: str | None = None
    identifier: str | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)
