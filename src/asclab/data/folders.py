"""Reader for a folder-per-class tree (ESC-10 style: ``001 - Dog bark/1-100032-A.ogg``).

The class is the name of the top-level folder holding the file (kept as is,
spaces included; ``strip_number_prefix=True`` turns ``001 - Dog bark`` into
``Dog bark``). Where the file names carry a fold, a regular expression with a
``fold`` group extracts it; the default matches ESC-10/ESC-50's
``FOLD-CLIPID-TAKE.ogg``. Either every file matches (folds used) or none does
(no folds); a mix is an error naming the first odd file.
"""
from __future__ import annotations

import re
from pathlib import Path

from asclab.data.records import Record
from asclab.data.tables import ErrorPolicy, Skipped
from asclab.errors import DataError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
ESC_FOLD_PATTERN = r"^(?P<fold>\d+)-[^-]+-[^-.]+\.[A-Za-z0-9]+$"
_NUMBER_PREFIX = re.compile(r"^\d+\s*-\s*")


def class_name(folder: str, strip_number_prefix: bool = False) -> str:
    """The label for a class folder."""
    return _NUMBER_PREFIX.sub("", folder, count=1) if strip_number_prefix else folder


def audio_files_below(folder: Path, extensions: tuple[str, ...] = AUDIO_EXTENSIONS) -> list[Path]:
    """Audio files under ``folder`` (recursively, hidden entries skipped), sorted."""
    return sorted(
        p for p in folder.rglob("*")
        if p.suffix.lower() in extensions and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def read_class_folders(
    root: str | Path,
    *,
    strip_number_prefix: bool = False,
    fold_pattern: str | None = ESC_FOLD_PATTERN,
    extensions: tuple[str, ...] = AUDIO_EXTENSIONS,
    on_error: str = "raise",
    skipped: list[Skipped] | None = None,
) -> list[Record]:
    """One Record per audio file below each class folder of ``root``."""
    root = Path(root)
    policy = ErrorPolicy(on_error, skipped if skipped is not None else [])
    if not root.is_dir():
        raise DataError(f"{root}: data set folder not found")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    records: list[Record] = []
    for folder in folders:
        label = class_name(folder.name, strip_number_prefix)
        for path in audio_files_below(folder, extensions):
            rel = str(path.relative_to(root))
            records.append(Record(path=path.absolute(), label=label,
                                  extra={"source": str(path), "row": None, "filename": rel}))
    if not records:
        raise DataError(f"{root}: no class folders with audio files ({', '.join(extensions)})")
    if fold_pattern is None:
        return records
    pattern = re.compile(fold_pattern)
    matches = [pattern.match(r.path.name) for r in records]
    if not any(matches):
        return records
    out = []
    for rec, m in zip(records, matches):
        if m is None:
            policy.report(rec.path, None, f"file name does not match the fold pattern {fold_pattern!r} the other files follow")
            continue
        out.append(Record(path=rec.path, label=rec.label, fold=int(m.group("fold")), extra=rec.extra))
    return out
