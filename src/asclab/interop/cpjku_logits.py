"""Import another toolkit's teacher logits: the CPJKU form (cpjku_dcase23/24 baselines).

There the ensemble's logits are one tensor [N, K] saved with ``torch.save`` (or a
NumPy array), whose row i belongs to row i of the data set's metadata CSV; nothing
in the tensor says which file a row is. The import makes the mapping explicit:
it reads the CSV's file names, requires them to be exactly the data set's clips in
the data set's metadata order, and refuses a CSV or tensor with a missing, extra
or reordered row, naming the first mismatch. The result is an asclab teacher file
(one member, no hashes recorded: the logits were computed elsewhere).
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from asclab.data import open_dataset
from asclab.data.teacher_file import TeacherFile, clip_key
from asclab.errors import DataError


MAX_LOGITS = 1 << 28  # values: far above any DCASE development set (139,620 clips x 10 classes)


def read_npy(path: Path) -> np.ndarray:
    """A numeric 2-D ``.npy`` array, its header checked (dtype, shape, and that the file holds that
    many bytes) before anything is read; pickled (object) arrays are never loaded."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f, max_header_size=10000)
            offset = f.tell()
    except (ValueError, OSError, SyntaxError, TypeError) as exc:
        raise DataError(f"{path}: not a NumPy .npy file ({' '.join(str(exc).split())[:120]})") from None
    if dtype.hasobject or dtype.kind not in "fiu":
        raise DataError(f"{path}: holds {dtype} values; logits must be numbers (float or integer)")
    if len(shape) != 2:
        raise DataError(f"{path}: logits must be [rows, classes], got shape {shape}")
    n = math.prod(int(s) for s in shape)  # Python integers: a declared shape may overflow int64
    if n > MAX_LOGITS:
        raise DataError(f"{path}: declares {shape[0]:,} x {shape[1]:,} values, more than any data set asclab reads")
    need = offset + n * dtype.itemsize
    size = path.stat().st_size
    if size < need:
        raise DataError(f"{path}: truncated: the header declares {shape} {dtype} ({need:,} bytes), the file has "
                        f"{size:,}")
    return np.load(path, allow_pickle=False)


def load_tensor(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: logits file not found")
    if path.suffix == ".npy":
        arr = read_npy(path)
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure is a user error here
            raise DataError(f"{path}: not a tensor file ({str(exc).splitlines()[0][:120]})") from None
        if isinstance(obj, dict) and len(obj) == 1:
            obj = next(iter(obj.values()))
        if not isinstance(obj, torch.Tensor):
            raise DataError(f"{path}: holds a {type(obj).__name__}, not one logits tensor")
        if obj.is_complex() or obj.dtype == torch.bool:
            raise DataError(f"{path}: holds {obj.dtype} values; logits must be real numbers")
        if obj.dim() != 2 or obj.numel() > MAX_LOGITS:
            raise DataError(f"{path}: logits must be [rows, classes] of at most {MAX_LOGITS:,} values, "
                            f"got shape {tuple(obj.shape)}")
        arr = obj.float().numpy()
    if arr.ndim != 2:
        raise DataError(f"{path}: logits must be [rows, classes], got shape {arr.shape}")
    arr = arr.astype(np.float32)
    bad = np.argwhere(~np.isfinite(arr))
    if len(bad):
        raise DataError(f"{path}: row {int(bad[0][0]) + 1} holds NaN or infinite logits "
                        f"({len(bad)} such value(s)); refused before any training")
    return arr


def read_csv_filenames(path: str | Path, column: str = "filename") -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: metadata CSV not found")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the metadata CSV ({exc})") from None
    if not text.strip():
        raise DataError(f"{path}: the metadata CSV is empty (a header with a {column!r} column was expected)")
    delim = "\t" if "\t" in text.splitlines()[0] else ","
    rows = list(csv.reader(text.splitlines(), delimiter=delim))
    if not rows or column not in rows[0]:
        raise DataError(f"{path}: no {column!r} column in the header")
    col = rows[0].index(column)
    return [r[col] for r in rows[1:] if r]


def first_mismatch(got: Sequence[str], want: Sequence[str], where: str) -> str | None:
    """A one-line description of the first row where ``got`` departs from ``want``, or None."""
    wanted = set(want)
    for i in range(max(len(got), len(want))):
        row = f"{where} row {i + 2}"  # 1-based, after the header
        if i >= len(got):
            return f"{row}: missing clip {want[i]!r} ({len(want) - len(got)} row(s) missing)"
        if i >= len(want):
            return f"{row}: extra clip {got[i]!r} ({len(got) - len(want)} row(s) extra)"
        if got[i] != want[i]:
            if got[i] in wanted:
                return f"{row}: {got[i]!r} where the data set has {want[i]!r} (rows reordered)"
            return f"{row}: {got[i]!r} is not a clip of the data set (expected {want[i]!r})"
    return None


def import_cpjku(tensor: str | Path, meta_csv: str | Path, data_dir: str | Path, out: str | Path, *,
                 classes: Sequence[str] | None = None, column: str = "filename") -> dict:

    logits = load_tensor(tensor)
    names = [Path(n).as_posix() for n in read_csv_filenames(meta_csv, column)]
    if len(names) != len(logits):
        raise DataError(f"{tensor}: {len(logits)} rows but {meta_csv} lists {len(names)} files")
    index = open_dataset(data_dir)
    want = [clip_key(r.path, index.root) for r in index.records]
    problem = first_mismatch(names, want, str(meta_csv))
    if problem:
        raise DataError(problem)
    cls = list(classes) if classes else list(index.classes)
    if logits.shape[1] != len(cls):
        raise DataError(f"{tensor}: {logits.shape[1]} columns but {len(cls)} classes ({', '.join(cls)})")
    tf = TeacherFile(keys=names, classes=cls, logits=logits, splits=[r.split or "" for r in index.records],
                     members=[{"run": str(tensor), "recipe_name": None, "recipe": "",
                               "imported_from": "cpjku", "metadata": str(meta_csv)}], data=str(data_dir))
    tf.write(out)
    return {"out": str(out), "clips": len(names), "classes": cls}
