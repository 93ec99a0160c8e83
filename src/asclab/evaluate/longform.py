"""Classify recordings of any length, format, rate and channel count, in windows.

A model is trained on clips of a fixed length (``duration`` in the model file;
10 s when it has none). A recording is streamed through
``asclab.data.iter_audio_blocks`` (soundfile blocks + soxr's streaming
resampler, mixed or kept per the model's feature config), so memory stays
bounded whatever its length, and cut into windows of that length starting
every ``hop`` seconds (default: the window length). A final zero-padded window
covers a tail the full windows missed if that tail holds at least half a
window of audio (a shorter tail is left out rather than judged mostly on
padding), and a recording shorter than one window is one zero-padded window,
as ``load_audio`` pads short training clips.

Each window is classified on its own; the whole-file decision is the mean of
the window probabilities (the softmax-averaging McDonnell & Gao 2019 sec. 3.7
use to combine networks, applied over time). Windows of several files share
batches.

This module needs no torch: the model is any ``probs_fn(batch[B, C, N]) ->
probs[B, K]`` (``torch_probs_fn`` wraps an asclab ``Predictor``; the ONNX
predictor passes an onnxruntime session), so the torch-free ONNX predictor
windows recordings exactly as ``asclab predict`` does.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from asclab.data.audio import audio_info, iter_audio_blocks
from asclab.errors import AsclabError, ConfigError, DataError
from asclab.io import write_text

DEFAULT_WINDOW = 10.0  # seconds, for a model file without a clip duration
# Extensions looked for inside folders; a file named explicitly is read whatever its name.
AUDIO_EXTENSIONS = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff",
                              ".aifc", ".au", ".snd", ".w64", ".rf64", ".caf"})

ProbsFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Windowing:
    """How recordings become model inputs: rate, channel policy, window and hop (seconds)."""

    sample_rate: int
    channels: str = "mono"
    window: float = DEFAULT_WINDOW
    hop: float | None = None  # None: the window length
    min_tail: float = 0.5  # a zero-padded last window must hold this fraction of a window of audio

    def __post_init__(self) -> None:
        if self.window <= 0 or (self.hop is not None and self.hop <= 0):
            raise ConfigError(f"window and hop must be positive seconds, got window={self.window}, hop={self.hop}")
        if not 0.0 <= self.min_tail <= 1.0:
            raise ConfigError(f"min_tail must be a fraction in [0, 1], got {self.min_tail}")

    def keeps(self, start: float, duration: float) -> bool:
        """Whether the window at ``start`` is classified: full windows always, the first
        window always, a zero-padded last window only with ``min_tail`` of a window of audio."""
        return start == 0 or start + self.window <= duration + 1e-9 or duration - start >= self.min_tail * self.window

    @property
    def hop_seconds(self) -> float:
        return self.window if self.hop is None else self.hop

    @classmethod
    def for_model(cls, sample_rate: int, channels: str, duration: float | None,
                  hop: float | None = None) -> "Windowing":
        """The model's clip length (``DEFAULT_WINDOW`` without one) and the given hop."""
        return cls(int(sample_rate), channels, float(duration) if duration else DEFAULT_WINDOW, hop)


@dataclass
class WindowResult:
    start: float
    end: float
    probs: np.ndarray


@dataclass
class FileResult:
    """Per-window timeline and whole-file decision (mean of the window probabilities)."""

    path: Path
    duration: float
    classes: list[str]
    windows: list[WindowResult] = field(default_factory=list)

    @property
    def probs(self) -> np.ndarray:
        return np.mean([w.probs for w in self.windows], axis=0)

    @property
    def label(self) -> str:
        return self.classes[int(np.argmax(self.probs))]

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        p = self.probs
        return [(self.classes[i], float(p[i])) for i in np.argsort(-p, kind="stable")[:k]]

    def to_dict(self, timeline: bool = True) -> dict:
        d = {"file": str(self.path), "duration": round(self.duration, 6), "n_windows": len(self.windows),
             "label": self.label, "probs": _prob_dict(self.classes, self.probs)}
        if timeline:
            d["windows"] = [{"start": round(w.start, 6), "end": round(w.end, 6),
                             "label": self.classes[int(np.argmax(w.probs))],
                             "probs": _prob_dict(self.classes, w.probs)} for w in self.windows]
        return d


def audio_files(paths: Iterable[str | Path], extensions: frozenset[str] = AUDIO_EXTENSIONS) -> list[Path]:
    """Files named explicitly plus the audio files (by extension) under folders, recursively,
    sorted per folder. A folder without audio files is an error."""
    out: list[Path] = []
    seen: set[Path] = set()
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in extensions)
            if not found:
                raise DataError(f"{p}: no audio files ({', '.join(sorted(extensions))}) in this folder")
        else:  # a file, or a missing path: reading it reports the problem (or skips it)
            found = [p]
        for f in found:
            if f not in seen:
                seen.add(f)
                out.append(f)
    return out


def iter_windows(path: str | Path, windowing: Windowing) -> Iterator[tuple[float, np.ndarray]]:
    """``(start_seconds, wave[C, window samples])`` for each window of a recording that
    ``windowing.keeps``, streamed."""
    duration = audio_info(path).duration
    for start, wave in iter_audio_blocks(path, windowing.sample_rate, windowing.channels,
                                         block_seconds=windowing.window, hop_seconds=windowing.hop_seconds):
        if windowing.keeps(start, duration):
            yield start, wave


def classify_files(
    paths: Sequence[str | Path],
    probs_fn: ProbsFn,
    classes: Sequence[str],
    windowing: Windowing,
    *,
    batch_size: int = 16,
    on_error: str = "raise",
    skipped: list | None = None,
    progress: bool = True,
) -> list[FileResult]:
    """Stream each file, classify its windows in batches of ``batch_size``, return one result per
    readable file (in order). ``on_error="skip"``: an unreadable file is left out and
    ``(path, reason)`` appended to ``skipped``; otherwise its DataError propagates."""
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    classes = list(classes)
    results: dict[int, FileResult] = {}
    pending: list[tuple[int, float, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        probs = np.asarray(probs_fn(np.stack([w for _, _, w in pending])), dtype=np.float64)
        if probs.shape != (len(pending), len(classes)):
            raise AsclabError(f"model gave probabilities of shape {probs.shape}, "
                              f"expected ({len(pending)}, {len(classes)})")
        for (idx, start, _), p in zip(pending, probs):
            if idx in results:  # a file that failed later in the same batch is gone
                res = results[idx]
                res.windows.append(WindowResult(start, min(start + windowing.window, res.duration), p))
        pending.clear()

    def fail(idx: int, path: Path, exc: AsclabError) -> None:
        if on_error == "raise":
            raise exc
        results.pop(idx, None)
        pending[:] = [item for item in pending if item[0] != idx]
        if skipped is not None:
            skipped.append((str(path), str(exc)))

    bar = tqdm(paths, desc="predict", unit="file", disable=not progress or len(paths) < 2, leave=False)
    for idx, path in enumerate(bar):
        path = Path(path)
        try:
            results[idx] = FileResult(path, audio_info(path).duration, classes)
        except AsclabError as exc:
            fail(idx, path, exc)
            continue
        blocks = iter_windows(path, windowing)
        while True:  # reading errors belong to the file; model errors (in flush) propagate
            try:
                start, wave = next(blocks)
            except StopIteration:
                break
            except AsclabError as exc:
                fail(idx, path, exc)
                break
            except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
                fail(idx, path, DataError(f"{path}: unreadable audio data ({' '.join(str(exc).split())})"))
                break
            pending.append((idx, start, wave))
            if len(pending) >= batch_size:
                flush()
    flush()
    bar.close()
    return [results[i] for i in sorted(results)]


def torch_probs_fn(predictor, tta: int = 0, tta_augment: dict | None = None) -> ProbsFn:
    """Wrap an ``asclab.evaluate.inference.Predictor`` as a numpy ``probs_fn``."""
    import torch  # imported here: the rest of this module runs without torch

    def fn(batch: np.ndarray) -> np.ndarray:
        return predictor.probs(torch.from_numpy(np.ascontiguousarray(batch)), tta=tta,
                               tta_augment=tta_augment).numpy()

    return fn


def predict_long(predictor, paths: Sequence[str | Path], *, hop: float | None = None, batch_size: int = 16,
                 on_error: str = "raise", skipped: list | None = None, progress: bool = True,
                 tta: int = 0, tta_augment: dict | None = None) -> list[FileResult]:
    """``classify_files`` with an asclab ``Predictor`` and its own windowing
    (rate, channels and clip length from the model file)."""
    win = Windowing.for_model(predictor.fcfg.sample_rate, predictor.fcfg.channels, predictor.duration, hop)
    return classify_files(audio_files(paths), torch_probs_fn(predictor, tta, tta_augment), predictor.classes,
                          win, batch_size=batch_size, on_error=on_error, skipped=skipped, progress=progress)


# ---- output ---------------------------------------------------------------------------------

def _prob_dict(classes: Sequence[str], p: np.ndarray) -> dict[str, float]:
    return {c: round(float(v), 6) for c, v in zip(classes, p)}


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
                         "label": r.classes[int(np.argmax(win.probs))], "probs": _prob_dict(r.classes, win.probs)})
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
