"""The unit every reader produces: one labelled (or unlabelled) recording."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from asclab.errors import DataError


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


def listed_at(rec: Record) -> str:
    """``meta.csv: row 17: `` for a record read from a metadata file (its ``extra`` source and
    row), else ``""`` (class folders, files named on the command line)."""
    source, row = rec.extra.get("source"), rec.extra.get("row")
    if source is None:
        return ""
    return f"{source}: " + (f"row {row}: " if row is not None else "")


@contextlib.contextmanager
def naming_row(rec: Record) -> Iterator[None]:
    """Re-raise a user error about ``rec``'s audio with its metadata file and row in front, so a
    truncated, NaN, near-empty or missing clip is named by file and row (README, Data)."""
    try:
        yield
    except DataError as exc:
        prefix = listed_at(rec)
        if not prefix or str(exc).startswith(prefix):
            raise
        raise DataError(prefix + str(exc)) from None
