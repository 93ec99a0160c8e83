"""Classify recordings with an exported ONNX model, without torch.

``OnnxPredictor`` is the Predictor (``asclab.evaluate.inference``) with the onnxruntime backend
(``asclab.evaluate.onnx_backend``): the same windowing (the model's resampler, clip length and
whole-file setting, ``Predictor.windowing``), the same batch code and the same open-set rule
as ``asclab predict``, so a recording gets the same windows, timeline and whole-file decision.
Needs numpy, soundfile, soxr and onnxruntime only: audio is streamed and resampled by
``asclab.data.audio`` (the ``sinc_hann`` resampler in numpy when torch is absent) and windowed
by ``asclab.evaluate.windowing``, none of which imports torch. The model must take the
waveform (``asclab export --input waveform``, the default); its settings come from the file's
``metadata_props`` (key ``asclab``) or, failing that, the JSON sidecar beside it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from asclab.evaluate.inference import Predictor
from asclab.evaluate.onnx_backend import METADATA_KEY, ONNX_FORMAT, load_onnx, read_onnx_metadata, softmax
from asclab.evaluate.windowing import FileResult, Windowing

__all__ = ["METADATA_KEY", "ONNX_FORMAT", "OnnxPredictor", "read_onnx_metadata", "softmax"]


class OnnxPredictor(Predictor):
    """``OnnxPredictor("model.onnx").predict_file("clip.wav") -> (label, probs)``: ``Predictor.load``
    of an ONNX file, with a default ``hop`` and ``batch_size`` for its files."""

    def __init__(self, onnx_path: str | Path, *, hop: float | None = None, batch_size: int = 16,
                 threads: int | None = None) -> None:
        super().__init__(*load_onnx(onnx_path, threads))
        self.path = Path(onnx_path)  # its metadata: ``meta`` (the backend's)
        self.session, self.input_name = self.backend.session, self.backend.input_name
        self.hop, self.batch_size = hop, int(batch_size)
        self.windowing()  # a bad hop is refused here, as before

    def windowing(self, hop: float | None = None) -> Windowing:
        """``Predictor.windowing`` with this predictor's hop by default."""
        return super().windowing(self.hop if hop is None else hop)

    def probs(self, waves: np.ndarray) -> np.ndarray:
        """Class probabilities for a batch of waveforms ``[B, C, N]`` at the model's rate."""
        return self.run_batch(waves)[0]

    def predict_files(self, paths: Sequence[str | Path], *, on_error: str = "raise", skipped: list | None = None,
                      progress: bool = False) -> list[FileResult]:
        """Per-window timeline and whole-file decision for files and folders (as ``asclab predict``)."""
        return self.classify_files(paths, hop=self.hop, batch_size=self.batch_size, on_error=on_error,
                                   skipped=skipped, progress=progress, search_folders=True)

    def predict_file(self, path: str | Path) -> tuple[str, np.ndarray]:
        """Label and whole-file probabilities (mean over the windows) of one recording."""
        (result,) = self.classify_files([Path(path)], hop=self.hop, batch_size=self.batch_size, progress=False)
        return result.label, result.probs
