"""Reader for a plain CSV manifest: ``path,label[,device][,fold][,split][,city][,identifier]``.

Comma- or TAB-separated (detected from the header, which is required).
Paths are relative to the manifest's folder (absolute paths are kept). An
empty label means unlabelled; ``split`` is one of train/test/evaluate or
empty; further columns are kept in ``Record.extra``.
"""
from __future__ import annotations

from pathlib import Path

from asclab.data.records import Record
from asclab.data.tables import ErrorPolicy, Skipped, read_table
from asclab.data.tau import existing_files

MANIFEST_COLUMNS = ("path", "label", "device", "fold", "split", "city", "identifier")
SPLITS = ("train", "test", "evaluate")


def read_manifest(
    path: str | Path,
    *,
    check_files: bool = False,
    on_error: str = "raise",
    skipped: list[Skipped] | None = None,
) -> list[Record]:
    """Records from a manifest file; ``check_files=True`` requires the audio to exist."""
    path = Path(path)
    policy = ErrorPolicy(on_error, skipped if skipped is not None else [])
    rows = read_table(path, required=("path", "label"), optional=MANIFEST_COLUMNS[2:], delimiter=None,
                      policy=policy, allow_extra_columns=True, may_be_empty=("label",))
    base = path.parent.absolute()
    records: list[Record] = []
    seen: dict[str, int] = {}
    for n, v in rows:
        fold = None
        if v.get("fold"):
            try:
                fold = int(v["fold"])
            except ValueError:
                policy.report(path, n, f"fold {v['fold']!r} is not an integer")
                continue
        split = v.get("split") or None
        if split is not None and split not in SPLITS:
            policy.report(path, n, f"split {split!r} is not one of {', '.join(SPLITS)} (or empty)")
            continue
        if v["path"] in seen:
            policy.report(path, n, f"duplicate entry for {v['path']} (first at row {seen[v['path']]})")
            continue
        seen[v["path"]] = n
        extra = {k: val for k, val in v.items() if k not in MANIFEST_COLUMNS}
        extra.update(source=str(path), row=n, filename=v["path"])
        records.append(Record(
            path=base / v["path"], label=v["label"] or None, device=v.get("device") or None,
            city=v.get("city") or None, fold=fold, split=split, identifier=v.get("identifier") or None,
            extra=extra,
        ))
    if check_files:
        records = existing_files(records, policy)
    return records
