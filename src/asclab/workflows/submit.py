"""DCASE task 1 submission files, refused for a model that breaks the year's complexity rules.

Format (the challenge's ``output.csv``, TAB-separated): a header
``filename  scene_label  <class 1>  ...  <class K>`` (one probability column
per class, in the model's class order) and one row per evaluation file, the
file name spelled as in the data set's metadata (e.g. ``audio/123.wav``).
Each file is classified like ``asclab predict`` (windows of the model's clip
length, probabilities averaged over the windows).

Complexity rules (``asclab.compress.complexity.CHALLENGE_LIMITS``):
2019: none; 2020 (task 1b): 500 KB of non-zero parameters; 2021 (task 1a):
128 KB of non-zero parameters; 2022-2025: 128 kB of parameters and 30 MMAC
per 1-s clip. Parameter memory is counted at the precision the model file
stores its parameters in (fp16 weights: 2 bytes each).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from asclab.compress.deployed import stored_bits, year_verdict
from asclab.data.records import listed_at
from asclab.data.tables import read_table, where
from asclab.data.tau import read_fold_list
from asclab.errors import AsclabError, DataError
from asclab.evaluate.inference import Predictor
from asclab.evaluate.openset import OpenSetRule, decide
from asclab.evaluate.windowing import audio_files
from asclab.io import write_text
from asclab.train.checkpoint import resolve_checkpoint


def check_complexity(predictor: Predictor, year: int) -> dict | None:
    """The year's verdict for the model as its file stores it (``asclab.compress.deployed``)."""
    return year_verdict(predictor.model, predictor.fcfg, stored_bits(predictor.model, predictor.meta.state_dict), year)


def evaluation_files(eval_dir: str | Path) -> list[tuple[str, Path]]:
    """``(filename as in the metadata, path)`` of every evaluation file.

    ``evaluation_setup/fold1_test.csv`` if present, else ``meta.csv`` (its
    ``filename`` column; labels ignored), else every audio file under the
    folder (named relative to it).
    """
    root = Path(eval_dir)
    if not root.is_dir():
        raise DataError(f"{root}: evaluation data folder not found")
    test_list = root / "evaluation_setup" / "fold1_test.csv"
    if test_list.is_file():
        return [(r.extra["filename"], r.path) for r in read_fold_list(test_list, split="evaluate", labelled=False,
                                                                       root=root.absolute())]
    meta = root / "meta.csv"
    if meta.is_file():
        rows = read_table(meta, required=("filename",), allow_extra_columns=True)
        return [(v["filename"], root.absolute() / v["filename"]) for _, v in rows]
    return [(f.relative_to(root).as_posix(), f) for f in audio_files([root])]


def evaluation_rows(eval_dir: str | Path) -> dict[str, str]:
    """``{str(path): "LIST: row N: "}``: where each evaluation file is listed, so an error about
    its audio names the metadata file and row (empty for a folder of audio files)."""
    root = Path(eval_dir)
    test_list, meta = root / "evaluation_setup" / "fold1_test.csv", root / "meta.csv"
    if test_list.is_file():
        return {str(r.path): listed_at(r) for r in read_fold_list(test_list, split="evaluate", labelled=False,
                                                                  root=root.absolute())}
    if meta.is_file():
        rows = read_table(meta, required=("filename",), allow_extra_columns=True)
        return {str(root.absolute() / v["filename"]): where(meta, n) for n, v in rows}
    return {}


def _with_row(exc: DataError, rows: dict[str, str]) -> DataError:
    """``exc`` (a message starting with an audio file's path) with that file's metadata row in front."""
    text = str(exc)
    prefix = next((pre for path, pre in rows.items() if text.startswith(f"{path}:")), "")
    return DataError(prefix + text)


def evaluation_devices(eval_dir: str | Path) -> dict[str, str]:
    """``{filename: device id}`` from ``evaluation_setup/fold1_test.csv``'s ``device_id`` (DCASE 2025) or
    ``source_label`` column; empty when the listing has neither (every file: the general model)."""
    listing = Path(eval_dir) / "evaluation_setup" / "fold1_test.csv"
    if not listing.is_file():
        return {}
    rows = read_table(listing, required=("filename",), allow_extra_columns=True)
    return {v["filename"]: v.get("device_id") or v.get("source_label") for _, v in rows
            if v.get("device_id") or v.get("source_label")}


def submission_text(names: list[str], probs: np.ndarray, classes: list[str], rule: OpenSetRule | None = None) -> str:
    """The TAB-separated file; ``scene_label`` is ``openset.decide`` (the model's open-set rule, if any),
    the probability columns are unweighted."""
    lines = ["\t".join(["filename", "scene_label", *classes])]
    for name, p in zip(names, probs):
        lines.append("\t".join([name, classes[int(decide(p, classes, rule))], *(f"{v:.6f}" for v in p)]))
    return "\n".join(lines) + "\n"


def write_submission(ckpt: str | Path, data: str | Path, out: str | Path, *, year: int = 2024,
                     hop: float | None = None, batch_size: int = 16, on_error: str = "raise",
                     progress: bool = True) -> dict:
    """Check the model against ``year``'s rules, classify the evaluation files, write ``out``."""
    pred = Predictor.load(resolve_checkpoint(ckpt))
    verdict = check_complexity(pred, year)
    files = evaluation_files(data)
    if not files:
        raise DataError(f"{data}: no evaluation files")
    rows = evaluation_rows(data)
    missing = [(name, p) for name, p in files if not Path(p).is_file()]
    if missing and on_error != "skip":
        raise DataError(f"{rows.get(str(missing[0][1]), '')}{missing[0][1]}: listed evaluation file not found "
                        f"({len(missing)} missing in all)")
    skipped: list = [(str(p), "file not found") for _, p in missing]
    files = [(name, p) for name, p in files if Path(p).is_file()]
    win = pred.windowing(hop)
    # DCASE 2025: a device container classifies each file with the model of its listed device id
    device_of = evaluation_devices(data) if pred.routes_by_device else {}
    try:
        results = pred.classify_files([p for _, p in files], hop=hop, batch_size=batch_size, on_error=on_error,
                                      skipped=skipped, progress=progress,
                                      devices=[device_of.get(name) for name, _ in files])
    except DataError as exc:  # name the evaluation list's row too
        raise _with_row(exc, rows) from None
    by_path = {str(r.path): r for r in results}
    kept = [(name, by_path[str(p)]) for name, p in files if str(p) in by_path]
    if not kept:
        raise AsclabError(f"{data}: none of the {len(files)} evaluation files could be classified")
    probs = np.stack([r.probs for _, r in kept])
    write_text(out, submission_text([name for name, _ in kept], probs, pred.classes, pred.openset))
    return {"out": str(out), "year": year, "n_files": len(kept), "classes": pred.classes,
            "complexity": verdict, "skipped": [{"file": f, "reason": why} for f, why in skipped],
            "window": win.window, "hop": win.hop_seconds,
            "mean_windows": float(np.mean([len(r.windows) for _, r in kept])) if kept else math.nan}
