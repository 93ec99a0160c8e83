"""Classify recordings with an exported ONNX model, without torch.

Needs numpy, soundfile, soxr and onnxruntime only: audio is streamed and
resampled by ``asclab.data.audio`` and windowed by
``asclab.evaluate.longform`` (neither imports torch), so a recording gets the
same windows, timeline and whole-file decision as with ``asclab predict``.
The model must take the waveform (``asclab export --input waveform``, the
default); its settings come from the file's ``metadata_props`` (key
``asclab``) or, failing that, the JSON sidecar beside it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from asclab.errors import AsclabError, CheckpointError
from asclab.evaluate.longform import FileResult, Windowing, audio_files, classify_files
from asclab.evaluate.openset import OpenSetRule, decide_labels

METADATA_KEY = "asclab"
ONNX_FORMAT = "asclab-onnx"


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def read_onnx_metadata(path: str | Path, session=None) -> dict:
    """The asclab settings of an exported file (metadata_props, else the ``.json`` sidecar)."""
    path = Path(path)
    meta = None
    if session is not None:
        raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        meta = json.loads(raw) if raw else None
    sidecar = path.with_suffix(".json")
    if meta is None and sidecar.is_file():
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    if not isinstance(meta, dict) or meta.get("format") != ONNX_FORMAT:
        raise CheckpointError(f"{path}: not an asclab ONNX export (no '{METADATA_KEY}' metadata and no sidecar "
                              f"{sidecar.name})")
    return meta


class OnnxPredictor:
    """``OnnxPredictor("model.onnx").predict_file("clip.wav") -> (label, probs)``."""

    def __init__(self, onnx_path: str | Path, *, hop: float | None = None, batch_size: int = 16,
                 threads: int | None = None) -> None:
        import onnxruntime as ort  # optional heavy dependency: loaded only when an ONNX session runs

        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: ONNX file not found")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise CheckpointError(f"{self.path}: not a loadable ONNX model ({' '.join(str(exc).split())[:160]})") from None
        self.meta = read_onnx_metadata(self.path, self.session)
        if self.meta.get("input") != "waveform":
            raise AsclabError(f"{self.path}: this ONNX model takes {self.meta.get('input')} input; the "
                              "torch-free predictor needs a waveform-input export (asclab export --input waveform)")
        self.classes: list[str] = list(self.meta["classes"])
        # the model file's open-set rule, as exported (older exports: none, plain argmax)
        self.openset: OpenSetRule | None = OpenSetRule.from_config(self.meta.get("openset"),
                                                                   key=f"{self.path} openset")
        self.input_name = self.session.get_inputs()[0].name
        self.windowing = Windowing.for_model(self.meta["sample_rate"], self.meta["channels"],
                                             self.meta.get("duration"), hop)
        self.batch_size = int(batch_size)

    def probs(self, waves: np.ndarray) -> np.ndarray:
        """Class probabilities for a batch of waveforms ``[B, C, N]`` at the model's rate."""
        logits = self.session.run(None, {self.input_name: np.ascontiguousarray(waves, dtype=np.float32)})[0]
        return softmax(logits)

    def labels(self, probs: np.ndarray) -> list[str]:
        """Labels for probability rows, with the model's open-set rule (``asclab.evaluate.openset``)."""
        return decide_labels(probs, self.classes, self.openset)

    def predict_files(self, paths: Sequence[str | Path], *, on_error: str = "raise", skipped: list | None = None,
                      progress: bool = False) -> list[FileResult]:
        """Per-window timeline and whole-file decision for files and folders (as ``asclab predict``)."""
        return classify_files(audio_files(paths), self.probs, self.classes, self.windowing,
                              batch_size=self.batch_size, on_error=on_error, skipped=skipped, progress=progress,
                              rule=self.openset)

    def predict_file(self, path: str | Path) -> tuple[str, np.ndarray]:
        """Label and whole-file probabilities (mean over the windows) of one recording."""
        (result,) = classify_files([Path(path)], self.probs, self.classes, self.windowing,
                                   batch_size=self.batch_size, progress=False, rule=self.openset)
        return result.label, result.probs
