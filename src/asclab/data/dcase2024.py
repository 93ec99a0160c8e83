"""Reader for the DCASE 2024 task 1 splits (the 5/10/25/50/100 % training subsets of Gao & Lee 2024).

The challenge ships ``split5.csv`` ... ``split100.csv`` and ``test.csv`` (TAB,
``filename scene_label``) for the 1 s segments of TAU 2022 Mobile; the files
sit in the data set root or in ``split_setup/`` and list paths relative to the
data set root. When the root has ``meta.csv`` it supplies device and
identifier; otherwise both come from the file name.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from asclab.data.records import Record
from asclab.data.tables import ErrorPolicy, Skipped
from asclab.data.tau import existing_files, listed_twice, read_fold_list, read_tau_meta
from asclab.errors import ConfigError, DataError

_SPLIT_FILE = re.compile(r"^split(\d+)\.csv$")


def available_splits(root: str | Path) -> dict[str, Path]:
    """``{"split5": path, ...}`` found in ``root`` or ``root/split_setup``, smallest first."""
    root = Path(root)
    found: dict[int, Path] = {}
    for folder in (root, root / "split_setup"):
        if folder.is_dir():
            for p in folder.iterdir():
                m = _SPLIT_FILE.match(p.name)
                if m and p.is_file():
                    found.setdefault(int(m.group(1)), p)
    return {f"split{k}": found[k] for k in sorted(found)}


def resolve_split(root: Path, split: str | int | None) -> tuple[str, Path]:
    """The chosen split's name and file (default: the largest present)."""
    splits = available_splits(root)
    if not splits:
        raise DataError(f"{root}: no split*.csv files (expected DCASE 2024 split5.csv ... split100.csv)")
    if split is None:
        name = list(splits)[-1]
        return name, splits[name]
    key = str(split).strip().rstrip("%")
    name = key if key.startswith("split") else f"split{key}"
    if name not in splits:
        raise ConfigError(f"split {split!r} not found in {root}; available: {', '.join(splits)}")
    return name, splits[name]


def read_dcase2024(
    root: str | Path,
    *,
    split: str | int | None = None,
    check_files: bool = False,
    on_error: str = "raise",
    skipped: list[Skipped] | None = None,
) -> list[Record]:
    """Train records of the chosen split file ("train") followed by test.csv ("test")."""
    root = Path(root)
    policy = ErrorPolicy(on_error, skipped if skipped is not None else [])
    _, split_path = resolve_split(root, split)
    meta: dict[str, Record] = {}
    if (root / "meta.csv").is_file():
        meta = {r.extra["filename"]: r for r in read_tau_meta(root / "meta.csv", root=root, policy=policy)}
    lists = [("train", split_path)]
    test_path = split_path.parent / "test.csv"
    if test_path.is_file():
        lists.append(("test", test_path))
    out: list[Record] = []
    seen: dict[str, Record] = {}
    for split_name, path in lists:
        for rec in read_fold_list(path, split=split_name, root=root, policy=policy):
            fn = rec.extra["filename"]
            if listed_twice(seen, rec, path, policy):
                continue
            known = meta.get(fn)
            if known is not None:
                if known.label != rec.label:
                    policy.report(path, rec.extra["row"],
                                  f"label {rec.label!r} of {fn} disagrees with {known.label!r} in meta.csv row {known.extra['row']}")
                    continue
                rec = replace(rec, device=known.device, city=known.city, identifier=known.identifier)
            out.append(rec)
    if check_files:
        out = existing_files(out, policy)
    return out
