"""The one Predictor: every way from a waveform to a decision (evaluate, predict, submit, the
DCASE API, teacher logits, the ONNX predictor) goes through it; only the network's backend differs.

``Predictor.load(path)`` reads everything from the model file: the front end and network, the
resampler, windowing or whole-file inference, the device models of a device container, the
open-set rule (McDonnell & Gao 2019 sec. 3.7, task 1c), the precision and the test-time
augmentation (Horvath 2021 sec. 4). An asclab model file runs in torch
(``asclab.evaluate.torch_backend``: eager, or batch norms folded and run in onnxruntime where
exact); an exported ``.onnx`` file runs in onnxruntime (``asclab.evaluate.onnx_backend``),
without torch. Two ways in, one window/batch/network code:

* ``classify_files``: recordings in windows (``asclab.evaluate.windowing``), the whole-file
  decision the mean of the window probabilities; files grouped by recording device
  (``asclab.data.devices.group_by_device``), each group through its device's model;
* ``classify_records``: one clip per ``Record`` as training reads it, ensembles averaged by
  softmax (McDonnell & Gao 2019 sec. 3.7; Gao & McDonnell 2020 submission 4), each clip of a
  device container through its device's model.

This module needs no torch: without it (the torch-free ONNX predictor) only ``.onnx`` files load.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from asclab.data.audio import check_not_near_empty, load_audio
from asclab.data.devices import group_by_device
from asclab.data.records import Record, naming_row
from asclab.errors import AsclabError, ConfigError
from asclab.evaluate.onnx_backend import load_onnx
from asclab.evaluate.openset import OpenSetRule, decide_labels
from asclab.evaluate.settings import InferenceSettings
from asclab.evaluate.windowing import (
    DEFAULT_WINDOW,
    FileResult,
    Windowing,
    audio_files,
    check_run_options,
    classify_indexed,
)

try:  # torch is what runs asclab model files; the torch-free ONNX predictor loads without it
    from asclab.evaluate.torch_backend import load_torch, torch_parts
except ModuleNotFoundError as exc:
    if exc.name != "torch" and not (exc.name or "").startswith("torch."):
        raise
    load_torch = torch_parts = None


class Predictor:
    """A model ready to classify: its ``settings`` (from the model file) and its network ``backend``.

    ``Predictor(settings, backend)``; the form of the torch-only predictor this one replaced,
    ``Predictor(model, features, fcfg, classes, duration, meta[, precision])``, builds the torch backend."""

    def __init__(self, settings: InferenceSettings, backend=None, *torch_fields, **torch_kwargs) -> None:
        if not isinstance(settings, InferenceSettings):
            settings, backend = torch_parts(settings, backend, *torch_fields, **torch_kwargs)
        self.settings, self.backend = settings, backend

    @classmethod
    def load(cls, path: str | Path, *, threads: int | None = None) -> "Predictor":
        """An asclab model file (torch backend) or an exported ``.onnx`` file (onnxruntime backend;
        ``threads``: its intra-op threads)."""
        if Path(path).suffix.lower() == ".onnx":
            return cls(*load_onnx(path, threads))
        if load_torch is None:
            raise AsclabError(f"{path}: an asclab model file needs torch; without it only exported .onnx "
                              "files load (asclab export)")
        return cls(*load_torch(path))

    # ---- the model file's settings ----------------------------------------------------------

    @property
    def classes(self) -> list[str]:
        return self.settings.classes

    @property
    def duration(self) -> float | None:
        return self.settings.duration

    @property
    def whole_file(self) -> bool:
        """Classify a recording as one input by default (recipe ``inference.whole_file``; imported
        fully convolutional models, as their DCASE 2025 packages do)."""
        return self.settings.whole_file

    @property
    def openset(self) -> OpenSetRule | None:
        """The open-set rule the model file carries (``asclab.evaluate.openset``), or None."""
        return self.settings.openset

    @property
    def devices(self) -> tuple[str, ...]:
        """Device ids with a model of their own (a device container); empty for one network."""
        return tuple(self.backend.devices)

    @property
    def routes_by_device(self) -> bool:
        """Whether the network picks a model per recording device (a device container)."""
        return bool(self.backend.routes)

    def windowing(self, hop: float | None = None) -> Windowing:
        """How recordings become this model's inputs, the one place a ``Windowing`` is built from a
        model: its rate, channel policy and resampler, windows of its clip length
        (``DEFAULT_WINDOW`` without one) every ``hop`` seconds (default: the window length), or, for
        a model whose recipe says ``inference.whole_file`` and no hop given, each recording as one
        input. A hop below one feature frame is refused."""
        s = self.settings
        if hop is not None and s.feature_hop and hop > 0 and hop * s.sample_rate < s.feature_hop:
            raise ConfigError(f"--hop {hop:g} s is below one feature frame of the model "
                              f"({s.feature_hop / s.sample_rate:g} s)")
        return Windowing(int(s.sample_rate), s.channels, float(s.duration) if s.duration else DEFAULT_WINDOW, hop,
                         whole_file=bool(s.whole_file and hop is None), resampler=s.resampler)

    def tta_settings(self) -> tuple[int, dict | None]:
        """The model file's test-time augmentation: ``(copies, {waveform: [...], spec: [...]} or None)``;
        a malformed inference block is refused naming the file."""
        return self.backend.tta_settings()

    def for_device(self, device_id: str | None) -> "Predictor":
        """This predictor with the network of ``device_id`` (a device container's member; the general
        model for an unknown id or None); itself for a model that serves every device."""
        backend = self.backend.for_device(device_id)
        return self if backend is self.backend else Predictor(self.settings, backend)

    def labels(self, probs: np.ndarray) -> list[str]:
        """Labels for probability rows, with the model's open-set rule (``asclab.evaluate.openset``)."""
        return decide_labels(probs, self.classes, self.openset)

    # ---- the network --------------------------------------------------------------------------

    def run_batch(self, waves: np.ndarray | Sequence[np.ndarray], device_ids: Sequence[str | None] | None = None,
                  tta: int = 0, tta_augment: dict | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """``(probs[B, K], logits[B, K] or None)`` for waveforms ``[B, C, N]`` (a list is zero-padded
        to its longest). ``device_ids`` route each clip of a device container to its device's model
        (test-time augmentation then applies to none: it is for the general model only)."""
        batch = stack_waves(waves) if not isinstance(waves, np.ndarray) else waves
        ids = list(device_ids) if device_ids is not None and self.routes_by_device else None
        return self.backend.run(batch, ids, tta, tta_augment)

    def load_wave(self, path: str | Path, duration: float | None = "default") -> np.ndarray:
        """A clip as training reads it: the model's rate, channels and resampler, cropped or padded
        to ``duration`` (default: the model's clip length; None: the whole file)."""
        s = self.settings
        dur = s.duration if duration == "default" else duration
        check_not_near_empty(path, dur)  # asclab.data.audio.MIN_AUDIO_SHARE of the clip, at least
        return load_audio(path, s.sample_rate, channels=s.channels, duration=dur, resampler=s.resampler,
                          expect_rate=s.expect_rate)

    # ---- the two ways in -----------------------------------------------------------------------

    def classify_files(self, paths: Sequence[str | Path], *, hop: float | None = None, batch_size: int = 16,
                       on_error: str = "raise", skipped: list | None = None, progress: bool = True,
                       tta: int = 0, tta_augment: dict | None = None, device: str | None = None,
                       devices: Sequence[str | None] | None = None, search_folders: bool = False) -> list[FileResult]:
        """Per-window timeline and whole-file decision for each readable file, in order
        (``asclab.evaluate.windowing.classify_indexed``; ``on_error="skip"`` leaves unreadable files
        out and lists them in ``skipped``). ``device`` (every file) or ``devices`` (one id per
        file): the recording device, which picks a device container's model (unknown ids: the
        general model); files are classified device by device, in order of first appearance.
        ``search_folders``: folders in ``paths`` stand for the audio files under them."""
        win = self.windowing(hop)
        check_run_options(on_error, batch_size)
        paths = audio_files(paths) if search_folders else [Path(p) for p in paths]
        ids = list(devices) if devices is not None else [device] * len(paths)
        if len(ids) != len(paths):
            raise ConfigError(f"{len(paths)} files but {len(ids)} device ids")
        groups = group_by_device(ids)  # device by device, each id on its own (batches never mix ids)
        rule, found = self.openset, {}
        for dev, rows in groups.items():
            member = self.for_device(dev)

            def probs_fn(batch: np.ndarray, member: Predictor = member):
                return member.run_batch(batch, tta=tta, tta_augment=tta_augment)

            got = classify_indexed([paths[i] for i in rows], probs_fn, self.classes, win, batch_size=batch_size,
                                   on_error=on_error, skipped=skipped, progress=progress, rule=rule)
            found.update({rows[j]: r for j, r in got.items()})
        return [found[i] for i in sorted(found)]

    def classify_records(self, records: Sequence[Record], **kwargs) -> "RecordOutputs":
        """``classify_records([self], records, ...)``."""
        return classify_records([self], records, **kwargs)

    # ---- the torch backend's parts (asclab model files) ----------------------------------------

    @property
    def model(self):
        return self.backend.model

    @model.setter
    def model(self, value) -> None:
        self.backend.model = value

    @property
    def features(self):
        return self.backend.features

    @property
    def fcfg(self):
        return self.backend.fcfg

    @property
    def meta(self):
        return self.backend.meta

    @property
    def precision(self) -> str:
        return getattr(self.backend, "precision", "fp32")

    @property
    def fast(self):
        return self.backend.fast

    def with_network(self, model, precision: str | None = None) -> "Predictor":
        """This predictor with another torch network (e.g. an fp16 copy, ``asclab.evaluate.precision``)."""
        return Predictor(self.settings, self.backend.with_model(model, precision))

    def network(self):
        return self.backend.network()

    def logits(self, waves, device_ids: list[str | None] | None = None):
        """Torch logits for a torch batch of waveforms (``TorchBackend.logits``)."""
        return self.backend.logits(waves, device_ids)

    def probs(self, waves, tta: int = 0, tta_augment: dict | None = None, seed: int = 0,
              device_ids: list[str | None] | None = None):
        """Torch probabilities for a torch batch of waveforms (``TorchBackend.probs``)."""
        return self.backend.probs(waves, tta=tta, tta_augment=tta_augment, seed=seed, device_ids=device_ids)

    def inputs(self, waves: np.ndarray) -> np.ndarray:
        """The network's input (features) for waveforms ``[B, C, N]``."""
        return self.backend.inputs(waves)


@dataclass
class RecordOutputs:
    """``probs[N, K]``: the mean of the members' softmax outputs (NaN rows: clips skipped);
    ``logits[M, N, K]``: each member's logits (float32), None with test-time augmentation."""

    probs: np.ndarray
    logits: np.ndarray | None


def classify_records(predictors: Predictor | list[Predictor], records: Sequence[Record], *, batch_size: int = 16,
                     tta: int = 0, tta_augment: dict | None = None, progress: bool = True, on_error: str = "raise",
                     skipped: list | None = None, duration: float | None = "default",
                     desc: str = "predict") -> RecordOutputs:
    """Each record's clip (``Predictor.load_wave``: ``duration`` seconds, default the model's) through
    every member, in batches of ``batch_size`` records. ``on_error="skip"``: a clip that cannot be
    read gets a NaN row and ``(path, reason)`` in ``skipped``; errors name the metadata row."""
    members = predictors if isinstance(predictors, list) else [predictors]
    first = members[0]
    for p in members[1:]:
        if p.classes != first.classes:
            raise AsclabError("ensemble members disagree on the class list")
    out = np.zeros((len(records), len(first.classes)), dtype=np.float64)
    logits: np.ndarray | None = np.zeros((len(members), len(records), len(first.classes)), dtype=np.float32)
    bar = tqdm(total=len(records), desc=desc, unit="clip", disable=not progress, leave=False)
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        for m, member in enumerate(members):
            waves, keep = [], []
            for j, rec in enumerate(chunk):
                try:
                    with naming_row(rec):  # errors name the metadata file and row
                        waves.append(member.load_wave(rec.path, duration))
                    keep.append(j)
                except AsclabError as exc:
                    if on_error != "skip":
                        raise
                    if member is first and skipped is not None:
                        skipped.append((str(rec.path), str(exc)))
                    out[start + j] = np.nan
            if not waves:
                continue
            # a device container routes each clip by its recorded device (DCASE 2025)
            p, lg = member.run_batch(waves, [chunk[j].device for j in keep], tta, tta_augment)
            rows = [start + j for j in keep]
            out[rows] += p / len(members)
            if lg is None:
                logits = None
            elif logits is not None:
                logits[m, rows] = lg
        bar.update(len(chunk))
    bar.close()
    return RecordOutputs(out, logits)


def predict_records(predictors: Predictor | list[Predictor], records: list[Record], **kwargs) -> np.ndarray:
    """Probabilities (N, K) for records: ``classify_records(...).probs``."""
    return classify_records(predictors, records, **kwargs).probs


def stack_waves(waves: Sequence[np.ndarray]) -> np.ndarray:
    """Waveforms ``[C, N_i]`` as one batch ``[B, C, max N_i]``, zero-padded at the end."""
    n = max(w.shape[-1] for w in waves)
    return np.stack([np.pad(w, [(0, 0)] * (w.ndim - 1) + [(0, n - w.shape[-1])]) for w in waves])
