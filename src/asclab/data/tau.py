"""Reader for the TAU / DCASE task 1 layout (TAU 2019, TAU 2020 Mobile, TAU 2022 Mobile).

A data set root holds ``meta.csv`` (TAB: ``filename scene_label identifier
source_label``) and ``evaluation_setup/fold1_{train,evaluate,test}.csv``
(TAB; ``filename scene_label``, the test list ``filename`` only). Splits follow
the official setup used by all five reports: ``fold1_train`` is "train",
``fold1_evaluate`` (the labelled validation split the papers report on) is
"test", and ``fold1_test`` (the same files without labels, or the unlabelled
evaluation set) becomes label-less "evaluate" records only on request.
Either file may be missing (the TAU 2019 metadata here has no fold1_train;
the 2020 3-class one has only fold1_train): the reader uses what is there.
Files in ``meta.csv`` but in no fold list keep ``split=None``.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from asclab.data.names import city_of_identifier, parse_tau_name
from asclab.data.records import Record
from asclab.data.tables import ErrorPolicy, Skipped, read_table
from asclab.errors import DataError

FOLD_FILES = {"train": "fold1_train.csv", "test": "fold1_evaluate.csv"}
EVALUATE_FILE = "fold1_test.csv"


def tau_record(
    root: Path,
    filename: str,
    *,
    label: str | None,
    split: str | None,
    source: Path,
    row: int,
    identifier: str | None = None,
    device: str | None = None,
) -> Record:
    """A Record whose missing identifier/device/city are read from the TAU file name."""
    name = parse_tau_name(filename)
    identifier = identifier or (name.identifier if name else None)
    device = device or (name.device if name else None)
    city = city_of_identifier(identifier) if identifier else None
    extra = {"source": str(source), "row": row, "filename": filename}
    if name is not None and name.piece is not None:
        extra["segment"] = f"{name.segment}-{name.piece}"
    return Record(
        path=root / filename, label=label or None, device=device or None, city=city,
        split=split, identifier=identifier, extra=extra,
    )


def read_tau_meta(path: str | Path, *, root: str | Path | None = None, policy: ErrorPolicy | None = None) -> list[Record]:
    """Read a TAU ``meta.csv`` (``split=None``); paths are relative to ``root`` (default: its folder)."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    policy = policy or ErrorPolicy()
    rows = read_table(path, required=("filename", "scene_label"), optional=("identifier", "source_label"), policy=policy)
    return _unique(
        [
            tau_record(root.absolute(), v["filename"], label=v["scene_label"], split=None, source=path, row=n,
                       identifier=v.get("identifier"), device=v.get("source_label"))
            for n, v in rows
        ],
        policy,
    )


def listed_twice(seen: dict[str, Record], rec: Record, path: Path, policy: ErrorPolicy) -> bool:
    """A file already listed by an earlier fold/split file is reported (and left out);
    otherwise it is remembered in ``seen``."""
    fn = rec.extra["filename"]
    first = seen.get(fn)
    if first is not None:
        policy.report(path, rec.extra["row"],
                      f"{fn} is also listed in {Path(first.extra['source']).name} row {first.extra['row']}")
        return True
    seen[fn] = rec
    return False


def read_fold_list(
    path: str | Path,
    *,
    split: str,
    labelled: bool = True,
    root: str | Path | None = None,
    policy: ErrorPolicy | None = None,
) -> list[Record]:
    """Read one ``evaluation_setup`` list; paths relative to ``root`` (default: the folder above it)."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent.parent
    policy = policy or ErrorPolicy()
    required = ("filename", "scene_label") if labelled else ("filename",)
    # device_id: the DCASE 2025 evaluation listing's device column
    rows = read_table(path, required=required, optional=("scene_label", "identifier", "source_label", "device_id"),
                      policy=policy)
    return _unique(
        [
            tau_record(root.absolute(), v["filename"], label=v.get("scene_label") if labelled else None,
                       split=split, source=path, row=n, identifier=v.get("identifier"),
                       device=v.get("source_label") or v.get("device_id"))
            for n, v in rows
        ],
        policy,
    )


def read_tau(
    root: str | Path,
    *,
    include_evaluate: bool = False,
    check_files: bool = False,
    on_error: str = "raise",
    skipped: list[Skipped] | None = None,
) -> list[Record]:
    """All records of a TAU-layout root: meta.csv rows (with their fold split) then fold-only files.

    ``check_files=True`` also requires every listed audio file to exist.
    Problems go to ``skipped`` when ``on_error="skip"``.
    """
    root = Path(root)
    policy = ErrorPolicy(on_error, skipped if skipped is not None else [])
    meta_path = root / "meta.csv"
    setup = root / "evaluation_setup"
    if not meta_path.is_file() and not setup.is_dir():
        raise DataError(f"{root}: not a TAU data set (no meta.csv and no evaluation_setup/ folder)")
    records: dict[str, Record] = {}
    if meta_path.is_file():
        records = {r.extra["filename"]: r for r in read_tau_meta(meta_path, root=root, policy=policy)}
    assigned: dict[str, Record] = {}
    for split, name in FOLD_FILES.items():
        fold_path = setup / name
        if not fold_path.is_file():
            continue
        for rec in read_fold_list(fold_path, split=split, root=root, policy=policy):
            fn = rec.extra["filename"]
            if listed_twice(assigned, rec, fold_path, policy):
                continue
            known = records.get(fn)
            if known is None:
                records[fn] = rec
            elif known.label != rec.label:
                policy.report(fold_path, rec.extra["row"],
                              f"label {rec.label!r} of {fn} disagrees with {known.label!r} in meta.csv row {known.extra['row']}")
                del records[fn]
            else:
                records[fn] = replace(known, split=split)
    out = list(records.values())
    if include_evaluate:
        test_path = setup / EVALUATE_FILE
        if not test_path.is_file():
            raise DataError(f"{test_path}: evaluation list not found (asked for the 'evaluate' split)")
        for rec in read_fold_list(test_path, split="evaluate", labelled=False, root=root, policy=policy):
            known = records.get(rec.extra["filename"])
            if known is not None:
                rec = replace(rec, device=known.device, city=known.city, identifier=known.identifier)
            out.append(rec)
    if check_files:
        out = existing_files(out, policy)
    return out


def existing_files(records: list[Record], policy: ErrorPolicy) -> list[Record]:
    """Keep records whose audio exists; report the others at their metadata row."""
    kept = []
    for rec in records:
        if rec.path.is_file():
            kept.append(rec)
        else:
            policy.report(rec.extra.get("source", rec.path), rec.extra.get("row"),
                          f"listed audio file {rec.extra.get('filename', rec.path)} not found "
                          "(asclab data describe --no-check-files reads the metadata alone)")
    return kept


def _unique(records: list[Record], policy: ErrorPolicy) -> list[Record]:
    """Drop (report) repeated file names within one table."""
    seen: dict[str, int] = {}
    out = []
    for rec in records:
        fn = rec.extra["filename"]
        if fn in seen:
            policy.report(rec.extra["source"], rec.extra["row"], f"duplicate entry for {fn} (first at row {seen[fn]})")
            continue
        seen[fn] = rec.extra["row"]
        out.append(rec)
    return out
