"""Reader for the TUT Acoustic Scenes 2016 / 2017 layout (DCASE 2016 / 2017 task 1).

A root holds ``meta.txt``, one TAB-separated line per clip and no header:
``audio/FILE<TAB>scene_label<TAB>recording`` (the recording column names the
original recording the 10 s clip was cut from, e.g. ``a001``; where a file
lacks it, the file-name part before the first underscore is used, which is
how TUT names its clips: ``a001_10_20.wav``). The optional
``evaluation_setup/fold{1..4}_{train,evaluate,test}.txt`` lists are the
official 4-fold cross-validation setup: a file listed in ``foldK_evaluate.txt``
(or, where that list is absent, ``foldK_test.txt``) gets ``fold=K``, so
``test_fold=K`` tests on it and trains on the other folds. A file in both the
train and the evaluate list of one fold, or in two evaluate lists, is an
error. The recording becomes ``Record.identifier`` so that splits and
recording-wise folds keep a recording on one side. Class names may hold a
slash (``cafe/restaurant``): they are labels, never paths.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from asclab.data.records import Record
from asclab.data.tables import ErrorPolicy, Skipped, read_text_file
from asclab.data.tau import existing_files
from asclab.errors import DataError

META_FILE = "meta.txt"
SETUP_DIR = "evaluation_setup"
FOLD_LIST = re.compile(r"^fold(?P<fold>\d+)_(?P<kind>train|evaluate|test)\.txt$")


def is_tut_layout(root: Path) -> bool:
    """``meta.txt`` or ``evaluation_setup/fold*_*.txt`` (and no TAU ``meta.csv``)."""
    if (root / "meta.csv").is_file():
        return False
    setup = root / SETUP_DIR
    return (root / META_FILE).is_file() or (setup.is_dir() and any(FOLD_LIST.match(p.name) for p in setup.iterdir()))


def recording_of(filename: str) -> str:
    """``audio/a001_10_20.wav`` -> ``a001`` (TUT's file names; used when a line has no recording column)."""
    stem = filename.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return stem.split("_", 1)[0]


def read_lines(path: Path, policy: ErrorPolicy, *, min_fields: int, max_fields: int) -> list[tuple[int, list[str]]]:
    """Headerless TAB-separated lines as ``[(line_number, fields)]``; blank lines are ignored."""
    out = []
    for n, line in enumerate(read_text_file(path).splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")]
        while len(fields) > min_fields and not fields[-1]:
            fields.pop()  # a trailing TAB
        if not min_fields <= len(fields) <= max_fields:
            want = str(min_fields) if min_fields == max_fields else f"{min_fields}-{max_fields}"
            policy.report(path, n, f"expected {want} TAB-separated fields (audio/FILE, scene label, recording), "
                                   f"got {len(fields)}: {line.strip()[:60]!r}")
            continue
        if not all(fields):
            policy.report(path, n, "empty field")
            continue
        out.append((n, fields))
    return out


def _record(root: Path, fields: list[str], source: Path, row: int, *, labelled: bool) -> Record:
    filename = fields[0]
    label = fields[1] if labelled and len(fields) > 1 else None
    recording = fields[2] if len(fields) > 2 else recording_of(filename)
    return Record(path=root / filename, label=label, identifier=recording,
                  extra={"source": str(source), "row": row, "filename": filename})


def read_tut_meta(path: Path, root: Path, policy: ErrorPolicy) -> dict[str, Record]:
    """``meta.txt`` rows by file name (duplicates reported)."""
    records: dict[str, Record] = {}
    for n, fields in read_lines(path, policy, min_fields=2, max_fields=3):
        rec = _record(root, fields, path, n, labelled=True)
        first = records.get(rec.extra["filename"])
        if first is not None:
            policy.report(path, n, f"duplicate entry for {fields[0]} (first at row {first.extra['row']})")
            continue
        records[rec.extra["filename"]] = rec
    return records


def fold_lists(setup: Path) -> dict[int, dict[str, Path]]:
    """``{fold: {"train"|"evaluate"|"test": path}}`` of the lists in ``evaluation_setup/``."""
    out: dict[int, dict[str, Path]] = {}
    if setup.is_dir():
        for p in sorted(setup.iterdir()):
            m = FOLD_LIST.match(p.name)
            if m and p.is_file():
                out.setdefault(int(m.group("fold")), {})[m.group("kind")] = p
    return out


def read_tut(
    root: str | Path,
    *,
    check_files: bool = False,
    on_error: str = "raise",
    skipped: list[Skipped] | None = None,
) -> list[Record]:
    """All records of a TUT 2016/2017 root, with ``fold`` from the official lists when present."""
    root = Path(root)
    policy = ErrorPolicy(on_error, skipped if skipped is not None else [])
    meta = root / META_FILE
    lists = fold_lists(root / SETUP_DIR)
    if not meta.is_file() and not lists:
        raise DataError(f"{root}: not a TUT data set (no meta.txt and no evaluation_setup/foldK_*.txt)")
    base = root.absolute()
    records = read_tut_meta(meta, base, policy) if meta.is_file() else {}
    held_out: dict[str, tuple[int, Path, int]] = {}  # file -> (fold, list, row)
    for fold, kinds in sorted(lists.items()):
        held = kinds.get("evaluate") or kinds.get("test")
        if held is None:
            continue
        labelled = held.name.endswith("_evaluate.txt")
        in_train = set()
        if "train" in kinds:
            in_train = {f[0] for _, f in read_lines(kinds["train"], policy, min_fields=1, max_fields=3)}
        for n, fields in read_lines(held, policy, min_fields=1, max_fields=3):
            rec = _record(base, fields, held, n, labelled=labelled)
            fn = rec.extra["filename"]
            if fn in in_train:
                policy.report(held, n, f"{fn} is also in {kinds['train'].name}: a clip on both sides of fold {fold}")
                continue
            if fn in held_out:
                other_fold, other, row = held_out[fn]
                policy.report(held, n, f"{fn} is also held out in {other.name} row {row} (fold {other_fold})")
                continue
            held_out[fn] = (fold, held, n)
            known = records.get(fn)
            if known is None:
                records[fn] = replace(rec, fold=fold)
            elif rec.label is not None and rec.label != known.label:
                policy.report(held, n, f"label {rec.label!r} of {fn} disagrees with {known.label!r} "
                                       f"in {META_FILE} row {known.extra['row']}")
                del records[fn]
            else:
                records[fn] = replace(known, fold=fold)
    out = list(records.values())
    return existing_files(out, policy) if check_files else out
