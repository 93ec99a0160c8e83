"""Reading and writing the small delimited metadata tables every data set ships.

One policy object decides what a bad row does: ``on_error="raise"`` stops at
the first problem with a one-line :class:`DataError` naming the file and row;
``on_error="skip"`` drops the row and records ``(file, row, reason)`` so the
caller can report it. Row numbers are 1-based line numbers of the file (the
header is row 1), so they can be looked up in an editor.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from asclab.errors import ConfigError, DataError
from asclab.io import atomic_path

Skipped = tuple[str, "int | None", str]

_DELIMITER_NAMES = {"\t": "TAB", ",": "comma", ";": "semicolon"}


@dataclass
class ErrorPolicy:
    """What a bad row or a missing file does: raise, or skip and count."""

    on_error: str = "raise"
    skipped: list[Skipped] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.on_error not in ("raise", "skip"):
            raise ConfigError(f"on_error must be 'raise' or 'skip', not {self.on_error!r}")

    def report(self, file: str | Path, row: int | None, reason: str) -> None:
        """Raise a DataError, or (skip mode) remember the problem."""
        if self.on_error == "raise":
            raise DataError(where(file, row) + reason)
        self.skipped.append((str(file), row, reason))


def where(file: str | Path, row: int | None) -> str:
    """The ``file: row N: `` prefix of a one-line error message."""
    return f"{file}: " + (f"row {row}: " if row is not None else "")


def read_text_file(path: Path) -> str:
    """A metadata file's text (UTF-8, a BOM dropped); a one-line DataError when missing or not UTF-8."""
    if not path.is_file():
        raise DataError(f"{path}: metadata file not found")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def detect_delimiter(header_line: str) -> str:
    """TAB if the header has one, else comma (the two delimiters manifests use)."""
    return "\t" if "\t" in header_line else ","


def read_table(
    path: str | Path,
    *,
    required: Sequence[str],
    optional: Sequence[str] = (),
    delimiter: str | None = "\t",
    policy: ErrorPolicy | None = None,
    allow_extra_columns: bool = False,
    may_be_empty: Sequence[str] = (),
) -> list[tuple[int, dict[str, str]]]:
    """Read a delimited table with a header; return ``[(row_number, {column: value})]``.

    ``delimiter=None`` detects TAB or comma from the header. Whole-file problems
    (missing or empty file, wrong delimiter, missing columns) always raise;
    row problems (wrong number of fields, empty required field unless listed
    in ``may_be_empty``) go through ``policy``. Blank lines are ignored; fields are stripped of whitespace.
    """
    policy = policy or ErrorPolicy()
    path = Path(path)
    text = read_text_file(path)
    if not text.strip():
        raise DataError(f"{path}: empty file (no header row)")
    first_line = text.lstrip("\r\n").splitlines()[0]
    if delimiter is None:
        delimiter = detect_delimiter(first_line)
    name = _DELIMITER_NAMES.get(delimiter, repr(delimiter))
    if delimiter not in first_line:
        for other, other_name in _DELIMITER_NAMES.items():
            if other != delimiter and other in first_line:
                raise DataError(
                    f"{path}: row 1: expected {name}-separated columns but the header is "
                    f"{other_name}-separated (wrong delimiter?)"
                )
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    rows = [(reader.line_num, fields) for fields in reader]
    rows = [(n, [f.strip() for f in fields]) for n, fields in rows if any(f.strip() for f in fields)]
    header_row, header = rows[0]
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(
            f"{path}: row {header_row}: missing column(s) {', '.join(missing)} "
            f"(header has: {', '.join(header) or 'nothing'})"
        )
    if len(set(header)) != len(header):
        raise DataError(f"{path}: row {header_row}: duplicate column names in header")
    unknown = [c for c in header if c not in required and c not in optional]
    if unknown and not allow_extra_columns:
        raise DataError(f"{path}: row {header_row}: unexpected column(s) {', '.join(unknown)}")
    out: list[tuple[int, dict[str, str]]] = []
    for n, fields in rows[1:]:
        if len(fields) != len(header):
            policy.report(path, n, f"expected {len(header)} {name}-separated fields, got {len(fields)}")
            continue
        values = dict(zip(header, fields))
        empty = [c for c in required if not values[c] and c not in may_be_empty]
        if empty:
            policy.report(path, n, f"empty value in column(s) {', '.join(empty)}")
            continue
        out.append((n, values))
    return out


def write_table(
    path: str | Path, header: Sequence[str], rows: Iterable[Sequence[object]], delimiter: str = "\t"
) -> None:
    """Write a header and rows atomically (temporary file, then ``os.replace``)."""
    with atomic_path(path, suffix=".partial") as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
            writer.writerow(header)
            for row in rows:
                writer.writerow(["" if v is None else v for v in row])
