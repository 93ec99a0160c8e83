"""The teacher-logits file: a data product that says where every number came from.

One HDF5 file (``asclab logits``) holds, for every clip of a data set:

- ``keys``    [N]       the clip's file name relative to the data folder (POSIX form);
- ``sha256``  [N]       a hash of the audio file's bytes ("" where not computed);
- ``split``   [N]       the clip's split when the logits were computed (train/test/...);
- ``logits``  [M, N, K] each of the M members' logits (deterministic inference, no augmentation);
- ``mean``    [N, K]    the members' mean logits (what a student learns from);

and as attributes the format tag, the class order (JSON), the members (run, recipe
name and recipe YAML, JSON), the clip length and the data folder. A training run
looks clips up by key, so shuffling, cropping and subsampling cannot misalign
them; a file lacking a training clip or listing the classes in another order is
refused with one line naming it (``asclab.data.teacher_targets``).
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from asclab.errors import DataError
from asclab.io import atomic_path

FORMAT = "asclab-teacher-logits/1"
MAX_VALUES = 1 << 28  # bound on the logits a file may declare (read from the header before the data)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def clip_key(path: str | Path, root: str | Path) -> str:
    """A clip's key: its path relative to the data folder (the folder of a manifest file)."""
    root = Path(root)
    base = root.parent if root.is_file() else root
    p = Path(path)
    try:
        return p.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return p.as_posix()


@dataclass
class TeacherFile:
    keys: list[str]
    classes: list[str]
    logits: np.ndarray                      # [M, N, K]
    hashes: list[str] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    members: list[dict] = field(default_factory=list)
    duration: float | None = None
    data: str = ""
    path: Path | None = None

    def __post_init__(self) -> None:
        try:
            self.logits = np.asarray(self.logits, dtype=np.float32)
        except (TypeError, ValueError):
            raise DataError(f"{self.where}: the logits are not numbers") from None
        if self.logits.ndim not in (2, 3):
            raise DataError(f"{self.where}: logits of shape {self.logits.shape}; [members, clips, classes] expected")
        if self.logits.ndim == 2:
            self.logits = self.logits[None]
        m, n, k = self.logits.shape
        if n != len(self.keys) or k != len(self.classes):
            raise DataError(f"{self.where}: logits of shape {self.logits.shape} for {len(self.keys)} clips "
                            f"and {len(self.classes)} classes")
        bad = ~np.isfinite(self.logits)
        if bad.any():  # a NaN target would train a NaN model to the end: refused before training
            member, clip, _ = (int(i) for i in np.argwhere(bad)[0])
            raise DataError(f"{self.where}: clip {self.keys[clip]!r} has NaN or infinite teacher logits (member "
                            f"{member + 1}; {int(bad.sum())} such value(s) in all); refused before training")
        self.hashes = list(self.hashes) or [""] * n
        self.splits = list(self.splits) or [""] * n
        self._row = {k_: i for i, k_ in enumerate(self.keys)}
        if len(self._row) != n:
            dup = next(k_ for i, k_ in enumerate(self.keys) if self._row[k_] != i)
            raise DataError(f"{self.where}: clip {dup!r} appears more than once")

    @property
    def where(self) -> str:
        return str(self.path) if self.path else "teacher file"

    @property
    def mean(self) -> np.ndarray:
        return self.logits.mean(axis=0)

    def row(self, key: str) -> int | None:
        return self._row.get(key)

    def write(self, path: str | Path) -> Path:
        """Write atomically (a temporary file beside ``path``, renamed into place)."""
        path = Path(path)
        text = h5py.string_dtype("utf-8")
        buf = io.BytesIO()  # built in memory, then one plain write: a full disk is then an OSError
        with h5py.File(buf, "w") as f:  # of ours, not an HDF5 error left behind in an open file
            f.attrs["format"] = FORMAT
            f.attrs["classes"] = json.dumps(self.classes)
            f.attrs["members"] = json.dumps(self.members)
            f.attrs["duration"] = json.dumps(self.duration)
            f.attrs["data"] = self.data
            f.create_dataset("keys", data=np.array(self.keys, dtype=object), dtype=text)
            f.create_dataset("sha256", data=np.array(self.hashes, dtype=object), dtype=text)
            f.create_dataset("split", data=np.array(self.splits, dtype=object), dtype=text)
            f.create_dataset("logits", data=self.logits)
            f.create_dataset("mean", data=self.mean)
        with atomic_path(path, suffix=".h5") as tmp:
            tmp.write_bytes(buf.getvalue())
        self.path = path
        return path

    @classmethod
    def read(cls, path: str | Path) -> "TeacherFile":

        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: teacher file not found")
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("format") != FORMAT:
                    raise DataError(f"{path}: not an asclab teacher file (format {f.attrs.get('format')!r})")
                ds = f["logits"]
                if ds.dtype.kind not in "fiu" or ds.ndim not in (2, 3) or ds.size > MAX_VALUES:
                    raise DataError(f"{path}: its logits are {ds.dtype} of shape {ds.shape}; numbers [members, "
                                    f"clips, classes] of at most {MAX_VALUES:,} values expected")
                strings = lambda name: [s.decode() if isinstance(s, bytes) else str(s) for s in f[name][()]]  # noqa: E731
                return cls(keys=strings("keys"), classes=json.loads(f.attrs["classes"]),
                           logits=f["logits"][()], hashes=strings("sha256"), splits=strings("split"),
                           members=json.loads(f.attrs["members"]), duration=json.loads(f.attrs["duration"]),
                           data=str(f.attrs.get("data", "")), path=path)
        except (OSError, KeyError, ValueError) as exc:
            raise DataError(f"{path}: unreadable teacher file ({exc})") from None

    def check_classes(self, classes: Sequence[str]) -> None:
        if list(classes) != list(self.classes):
            first = next((i for i, (a, b) in enumerate(zip(self.classes, classes)) if a != b),
                         min(len(classes), len(self.classes)))
            mine = self.classes[first] if first < len(self.classes) else "(none)"
            theirs = list(classes)[first] if first < len(classes) else "(none)"
            raise DataError(f"{self.where}: class order differs from the data set's at position {first + 1} "
                            f"({mine!r} in the file, {theirs!r} in the data set)")

    def lookup(self, keys: Sequence[str], what: str = "training clip") -> np.ndarray:
        """Mean logits [len(keys), K] in the order of ``keys``; refuses a missing clip."""
        rows = [self._row.get(k) for k in keys]
        missing = [k for k, r in zip(keys, rows) if r is None]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DataError(f"{self.where}: no logits for {what} {missing[0]!r}{more}")
        return self.mean[np.asarray(rows, dtype=np.int64)] if rows else np.zeros((0, len(self.classes)), np.float32)
