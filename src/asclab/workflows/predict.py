"""Classify recordings of any length with a model file: the ``asclab predict`` workflow."""
from __future__ import annotations

import sys
from pathlib import Path

from asclab.evaluate.inference import Predictor


def classify_recordings(ckpt: str | Path, paths: list[str | Path], *, hop: float | None = None,
                        batch_size: int = 16, progress: bool = True, on_error: str = "raise",
                        device: str | None = None):
    """Files and folders (recursively) classified in windows of the model's clip length
    (``Predictor.classify_files``). Returns ``(results, skipped)``: one ``FileResult``
    (timeline + whole-file decision) per readable file, and ``(file, reason)`` pairs.
    ``device``: the recording device's id (a device container's model for it)."""
    pred = Predictor.load(ckpt)
    skipped: list = []
    results = pred.classify_files(paths, hop=hop, batch_size=batch_size, on_error=on_error, skipped=skipped,
                                  progress=progress, device=device, search_folders=True)
    return results, skipped


def predict_files(ckpt: str | Path, paths: list[str | Path], *, batch_size: int = 16, top: int = 3,
                  progress: bool = True, on_error: str = "raise", hop: float | None = None) -> list[dict]:
    """Label, top probabilities, whole-file probabilities and window timeline per file."""
    results, skipped = classify_recordings(ckpt, paths, hop=hop, batch_size=batch_size, progress=progress,
                                           on_error=on_error)
    for f, why in skipped:
        print(f"skipped {f}: {why}", file=sys.stderr)
    return [{**r.to_dict(), "top": r.top(top)} for r in results]
