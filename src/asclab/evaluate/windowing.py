"""Recordings of any length, format, rate and channel count, cut into model inputs and classified
in batches: the window and batch code every command shares (``asclab.evaluate.inference.Predictor``).

A model is trained on clips of a fixed length (``duration`` in the model file;
10 s when it has none). A recording is streamed through
``asclab.data.iter_audio_blocks`` (soundfile blocks + soxr's streaming
resampler, mixed or kept per the model's feature config), so memory stays
bounded whatever its length, and cut into windows of that length starting
every ``hop`` seconds (default: the window length). A final zero-padded window
covers a tail the full windows missed if that tail holds at least half a
window of audio (a shorter tail is left out rather than judged mostly on
padding), and a recording shorter than one window is one zero-padded window,
as ``load_audio`` pads short training clips. With the ``sinc_hann`` resampler
(DCASE 2025 packages) windows are cut at the file's own rate and each is
resampled, as a 1-s TAU clip is; with ``whole_file`` (fully convolutional
models) a recording is one input of its own length.

Each window is classified on its own; the whole-file decision is the mean of
the window probabilities (the softmax-averaging McDonnell & Gao 2019 sec. 3.7
use to combine networks, applied over time). Windows of several files share
batches.

This module needs no torch: the network is any ``probs_fn(batch[B, C, N]) ->
probs[B, K]`` or ``(probs, logits)`` (a ``Predictor``'s ``run_batch``, whatever its
backend), so the torch-free ONNX predictor windows recordings exactly as
``asclab predict`` does. A ``Windowing`` is built from a model file in one place only,
``Predictor.windowing``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from asclab.data.audio import audio_info, check_not_near_empty, iter_audio_blocks, load_audio
from asclab.data.sinc_resample import sinc_resample_np
from asclab.errors import AsclabError, ConfigError, DataError
from asclab.evaluate.openset import OpenSetRule, decide

DEFAULT_WINDOW = 10.0  # seconds, for a model file without a clip duration
# Extensions looked for inside folders; a file named explicitly is read whatever its name.
AUDIO_EXTENSIONS = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff",
                              ".aifc", ".au", ".snd", ".w64", ".rf64", ".caf"})

ProbsFn = Callable[[np.ndarray], "np.ndarray | tuple[np.ndarray, np.ndarray | None]"]


@dataclass(frozen=True)
class Windowing:
    """How recordings become model inputs: rate, channel policy, window and hop (seconds)."""

    sample_rate: int
    channels: str = "mono"
    window: float = DEFAULT_WINDOW
    hop: float | None = None  # None: the window length
    min_tail: float = 0.5  # a zero-padded last window must hold this fraction of a window of audio
    whole_file: bool = False  # one input per recording, its own length (fully convolutional models)
    resampler: str = "soxr"  # "sinc_hann": windows cut at the file's rate, each resampled (DCASE 2025 packages)

    def __post_init__(self) -> None:
        if self.hop is not None and not self.hop > 0:
            raise ConfigError(f"--hop must be a positive number of seconds, got {self.hop:g}")
        if not self.window > 0:
            raise ConfigError(f"the window (the model's clip length) must be positive seconds, got {self.window:g}")
        if not 0.0 <= self.min_tail <= 1.0:
            raise ConfigError(f"min_tail must be a fraction in [0, 1], got {self.min_tail}")

    def keeps(self, start: float, duration: float) -> bool:
        """Whether the window at ``start`` is classified: full windows always, the first
        window always, a zero-padded last window only with ``min_tail`` of a window of audio."""
        return start == 0 or start + self.window <= duration + 1e-9 or duration - start >= self.min_tail * self.window

    @property
    def hop_seconds(self) -> float:
        return self.window if self.hop is None else self.hop


@dataclass
class WindowResult:
    start: float
    end: float
    probs: np.ndarray
    logits: np.ndarray | None = None  # when the backend gives them (asclab torch models)


@dataclass
class FileResult:
    """Per-window timeline and whole-file decision (mean of the window probabilities)."""

    path: Path
    duration: float
    classes: list[str]
    windows: list[WindowResult] = field(default_factory=list)
    rule: OpenSetRule | None = None  # the model's open-set rule: labels come from ``openset.decide``

    @property
    def probs(self) -> np.ndarray:
        return np.mean([w.probs for w in self.windows], axis=0)

    @property
    def logits(self) -> np.ndarray | None:
        """Mean of the window logits (the one input's logits for a whole-file result), or None."""
        if not self.windows or any(w.logits is None for w in self.windows):
            return None
        return np.mean([w.logits for w in self.windows], axis=0)

    @property
    def label(self) -> str:
        return self.classes[int(decide(self.probs, self.classes, self.rule))]

    def window_label(self, w: WindowResult) -> str:
        return self.classes[int(decide(w.probs, self.classes, self.rule))]

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        p = self.probs
        return [(self.classes[i], float(p[i])) for i in np.argsort(-p, kind="stable")[:k]]

    def to_dict(self, timeline: bool = True) -> dict:
        d = {"file": str(self.path), "duration": round(self.duration, 6), "n_windows": len(self.windows),
             "label": self.label, "probs": prob_dict(self.classes, self.probs)}
        if self.logits is not None:
            d["logits"] = [round(float(v), 6) for v in self.logits]
        if timeline:
            d["windows"] = [{"start": round(w.start, 6), "end": round(w.end, 6),
                             "label": self.window_label(w),
                             "probs": prob_dict(self.classes, w.probs)} for w in self.windows]
        return d


def prob_dict(classes: Sequence[str], p: np.ndarray) -> dict[str, float]:
    return {c: round(float(v), 6) for c, v in zip(classes, p)}


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
    info = audio_info(path)
    duration = info.duration
    sinc = windowing.resampler == "sinc_hann"
    if windowing.whole_file:
        yield 0.0, load_audio(path, windowing.sample_rate, windowing.channels, resampler=windowing.resampler)
        return
    for start, wave in iter_audio_blocks(path, None if sinc else windowing.sample_rate, windowing.channels,
                                         block_seconds=windowing.window, hop_seconds=windowing.hop_seconds):
        if windowing.keeps(start, duration):
            if sinc:  # cut at the file's own rate, then resample the window (as a 1-s TAU clip is)
                wave = sinc_resample_np(wave, info.sample_rate, windowing.sample_rate)
            yield start, wave


def check_run_options(on_error: str, batch_size: int) -> None:
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")


def classify_files(paths: Sequence[str | Path], probs_fn: ProbsFn, classes: Sequence[str], windowing: Windowing,
                   *, batch_size: int = 16, on_error: str = "raise", skipped: list | None = None,
                   progress: bool = True, rule: OpenSetRule | None = None) -> list[FileResult]:
    """One result per readable file, in order (``classify_indexed`` without the positions)."""
    found = classify_indexed(paths, probs_fn, classes, windowing, batch_size=batch_size, on_error=on_error,
                             skipped=skipped, progress=progress, rule=rule)
    return list(found.values())


def classify_indexed(paths: Sequence[str | Path], probs_fn: ProbsFn, classes: Sequence[str],
                     windowing: Windowing, *, batch_size: int = 16, on_error: str = "raise",
                     skipped: list | None = None, progress: bool = True,
                     rule: OpenSetRule | None = None) -> dict[int, FileResult]:
    """Stream each file, classify its windows in batches of ``batch_size``, return
    ``{position in paths: result}`` for every readable file (in order). ``on_error="skip"``: an
    unreadable file is left out and ``(path, reason)`` appended to ``skipped``; otherwise its
    DataError propagates. ``rule``: the model's open-set rule, applied to every file and window label."""
    check_run_options(on_error, batch_size)
    classes = list(classes)
    results: dict[int, FileResult] = {}
    pending: list[tuple[int, float, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        out = probs_fn(np.stack([w for _, _, w in pending]))
        logits = None
        if isinstance(out, tuple):  # (probs, logits)
            out, logits = out
        probs = np.asarray(out, dtype=np.float64)
        if probs.shape != (len(pending), len(classes)):
            raise AsclabError(f"model gave probabilities of shape {probs.shape}, "
                              f"expected ({len(pending)}, {len(classes)})")
        for k, ((idx, start, _), p) in enumerate(zip(pending, probs)):
            if idx in results:  # a file that failed later in the same batch is gone
                res = results[idx]
                end = res.duration if windowing.whole_file else min(start + windowing.window, res.duration)
                res.windows.append(WindowResult(start, end, p, None if logits is None else
                                                np.asarray(logits[k], dtype=np.float64)))
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
            results[idx] = FileResult(path, audio_info(path).duration, classes, rule=rule)
            if not windowing.whole_file:  # asclab.data.audio.MIN_AUDIO_SHARE of a window, at least
                check_not_near_empty(path, windowing.window)
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
            if len(pending) >= batch_size or windowing.whole_file:  # whole files differ in length
                flush()
    flush()
    bar.close()
    return {i: results[i] for i in sorted(results)}
