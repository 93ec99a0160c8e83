"""Reader for the DCASE 2025 task 1 development split (device ids known in training and test).

The organisers' baseline (CPJKU dcase2025_task1_baseline, ``dataset/dcase25.py``)
trains on the DCASE 2024 25 % subset only, ``split_setup/split25.csv``, and
tests on ``split_setup/test.csv`` (the 2024 files: TAB, ``filename
scene_label``, paths relative to the TAU 2022 Mobile root); training devices
come from ``meta.csv``'s ``source_label`` and test devices from the file-name
suffix (``airport-lisbon-1000-40000-0-a.wav`` -> ``a``). Here every clip's
device comes from ``meta.csv`` when the root has one, otherwise from the file
name; a clip without a device id, or whose ``meta.csv`` device disagrees with
its file name, is an error naming the file and row (with ``on_error: skip`` it
is left out and reported). Recipes choose it with ``data.split: dcase2025``.
"""
from __future__ import annotations

from pathlib import Path

from asclab.data.dcase2024 import read_dcase2024
from asclab.data.names import parse_tau_name
from asclab.data.records import Record
from asclab.data.tables import ErrorPolicy, Skipped

SPLIT_NAME = "dcase2025"  # the recipe's data.split value
TRAIN_SPLIT = "split25"  # the only training subset the 2025 rules allow


def read_dcase2025(root: str | Path, *, check_files: bool = False, on_error: str = "raise",
                   skipped: list[Skipped] | None = None) -> list[Record]:
    """split25.csv ("train") then test.csv ("test"), each record with its device id."""
    skipped = skipped if skipped is not None else []
    policy = ErrorPolicy(on_error, skipped)
    records = read_dcase2024(root, split=TRAIN_SPLIT, check_files=check_files, on_error=on_error, skipped=skipped)
    out = []
    for rec in records:
        source, row, filename = rec.extra.get("source"), rec.extra.get("row"), rec.extra.get("filename", rec.path.name)
        name = parse_tau_name(filename)
        if rec.device is None:
            policy.report(source, row, f"{filename}: no device id (not in meta.csv, and the file name has no "
                                       "TAU device suffix such as -a.wav); DCASE 2025 needs one for every clip")
            continue
        if name is not None and name.device != rec.device:
            policy.report(source, row, f"{filename}: meta.csv gives device {rec.device!r}, "
                                       f"the file name says {name.device!r}")
            continue
        out.append(rec)
    return out
