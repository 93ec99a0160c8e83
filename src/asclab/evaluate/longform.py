"""What ``asclab predict`` writes: the table, the per-file CSV and the per-window timeline of
``FileResult``s (``asclab.evaluate.windowing``; the results come from
``asclab.evaluate.inference.Predictor.classify_files``)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Sequence

from asclab.errors import ConfigError
from asclab.evaluate.windowing import FileResult, prob_dict
from asclab.io import write_text


def format_table(results: Sequence[FileResult], top: int = 3) -> str:
    """One line per file: name, length, windows, decision and the top probabilities."""
    if not results:
        return "(no files classified)"
    rows = [("file", "seconds", "windows", "label", "top probabilities")]
    for r in results:
        rows.append((str(r.path), f"{r.duration:.1f}", str(len(r.windows)), r.label,
                     "  ".join(f"{c} {p:.3f}" for c, p in r.top(top))))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join([row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].rjust(widths[2]),
                                row[3].ljust(widths[3]), row[4]]).rstrip() for row in rows)


def files_csv(results: Sequence[FileResult]) -> str:
    """One row per file: file, duration, n_windows, label, one probability column per class."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    classes = results[0].classes if results else []
    w.writerow(["file", "duration", "n_windows", "label", *classes])
    for r in results:
        w.writerow([str(r.path), f"{r.duration:.6f}", len(r.windows), r.label, *(f"{p:.6f}" for p in r.probs)])
    return buf.getvalue()


def timeline_rows(results: Sequence[FileResult]) -> list[dict]:
    rows = []
    for r in results:
        for i, win in enumerate(r.windows):
            rows.append({"file": str(r.path), "window": i, "start": round(win.start, 6), "end": round(win.end, 6),
                         "label": r.window_label(win), "probs": prob_dict(r.classes, win.probs)})
    return rows


def write_files_csv(results: Sequence[FileResult], path: str | Path) -> Path:
    return write_text(path, files_csv(results))


def write_timeline(results: Sequence[FileResult], path: str | Path) -> Path:
    """Per-window rows: CSV for ``.csv``/``.tsv``, JSON lines for ``.jsonl``/``.json``/``.ndjson``."""
    path = Path(path)
    rows = timeline_rows(results)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
    if suffix not in (".csv", ".tsv"):
        raise ConfigError(f"{path}: timeline file must end in .csv, .tsv or .jsonl")
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t" if suffix == ".tsv" else ",", lineterminator="\n")
    classes = results[0].classes if results else []
    w.writerow(["file", "window", "start", "end", "label", *classes])
    for r in rows:
        w.writerow([r["file"], r["window"], f"{r['start']:.3f}", f"{r['end']:.3f}", r["label"],
                    *(f"{r['probs'][c]:.6f}" for c in classes)])
    return write_text(path, buf.getvalue())
