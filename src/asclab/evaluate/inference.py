"""Inference from an asclab model file: full-length features, test-time
augmentation (Horvath 2021 sec. 4), ensembles by softmax averaging
(McDonnell & Gao 2019 sec. 3.7; Gao & McDonnell 2020 submission 4) and the
open-set decision (McDonnell & Gao 2019 sec. 3.7, task 1c)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from asclab.augment import build_spec_augment, build_waveform_augment
from asclab.compress.qat import INFO_KEY as QAT_INFO_KEY
from asclab.compress.qat import rebuild_int8
from asclab.data import load_audio
from asclab.data.audio import check_not_near_empty
from asclab.data.records import Record, naming_row
from asclab.errors import AsclabError
from asclab.evaluate.fast_path import fused_for_inference, onnx_network
from asclab.evaluate.openset import (
    TUNE_WEIGHTS,
    OpenSetRule,
    decide,
    stored_rule,
    tune_weight,
)
from asclab.features import FeatureExtractor
from asclab.features.config import FeatureConfig
from asclab.features.extractor import feature_shape
from asclab.models import create_model
from asclab.models.device_container import DeviceContainer
from asclab.train.checkpoint import ModelFile, load_model_file


@dataclass
class Predictor:
    """A trained model with its front end, ready to classify waveforms."""

    model: torch.nn.Module
    features: FeatureExtractor
    fcfg: FeatureConfig
    classes: list[str]
    duration: float | None
    meta: ModelFile
    precision: str = "fp32"  # "fp16": fp16 weights and inputs (recipe inference.precision; DCASE 2025 packages); "int8": a QAT model
    # (network, its conv-BN-folded copy, that copy in onnxruntime or None): asclab.evaluate.fast_path,
    # used while ``model`` is that network
    fast: tuple | None = field(default=None, repr=False, compare=False)

    @classmethod
    def load(cls, path: str | Path) -> "Predictor":
        mf = load_model_file(path)
        torch.set_flush_denormal(True)  # denormals slow CPU inference several-fold
        fcfg = FeatureConfig.from_dict(mf.features)
        kwargs = {k: v for k, v in mf.model.items() if k != "name"}
        model = create_model(mf.model["name"], num_classes=len(mf.classes), in_chans=fcfg.in_chans, **kwargs)
        quant = (mf.extra or {}).get(QAT_INFO_KEY)
        if quant is not None:  # an int8 model (asclab.compress.qat): the graph rebuilt, its int8 state loaded
            model = rebuild_int8(model, quant, mf.state_dict)
            return cls(model, FeatureExtractor(fcfg).eval(), fcfg, list(mf.classes), mf.duration, mf, "int8")
        try:
            model.load_state_dict({k: v.float() if torch.is_floating_point(v) else v
                                   for k, v in mf.state_dict.items()})
        except RuntimeError as exc:
            raise AsclabError(f"{path}: weights do not fit model {mf.model['name']!r} "
                              f"({str(exc).splitlines()[0][:160]})") from None
        model.eval()
        precision = str(((mf.recipe or {}).get("inference") or {}).get("precision") or "fp32")
        if precision not in ("fp32", "fp16"):
            raise AsclabError(f"{path}: inference.precision must be fp32 or fp16, got {precision!r}")
        if precision == "fp16":
            model.half()
        pred = cls(model, FeatureExtractor(fcfg).eval(), fcfg, list(mf.classes), mf.duration, mf, precision)
        if precision == "fp32":
            pred.fast = pred.fast_network()
        return pred

    def fast_network(self) -> tuple | None:
        """``(model, folded copy or model, onnxruntime session or None)`` when folding the batch
        norms or running the network in onnxruntime is exact on this model's feature shape
        (``asclab.evaluate.fast_path``); None otherwise (then ``model`` runs as it is).
        ``ASCLAB_INFERENCE=torch`` keeps the network in torch."""
        if hasattr(self.model, "model_for_device"):
            return None
        seconds = self.duration or 1.0
        try:
            shape = feature_shape(self.fcfg, int(round(seconds * self.fcfg.sample_rate)))
        except ValueError:
            return None
        gen = torch.Generator().manual_seed(0)
        example = torch.randn((1, *shape), generator=gen)
        fused = fused_for_inference(self.model, example)
        base = fused if fused is not None else self.model
        use_ort = os.environ.get("ASCLAB_INFERENCE", "").strip().lower() != "torch"
        ort_net = onnx_network(base, self.model, example) if use_ort and not self.model.training else None
        return (self.model, base, ort_net) if fused is not None or ort_net is not None else None

    def network(self):
        """The network ``logits`` runs: the exact onnxruntime session, else the exact folded copy,
        while they belong to ``model`` (an eval-mode fp32 model); ``model`` itself otherwise."""
        if self.fast is not None and self.fast[0] is self.model and self.precision == "fp32" \
                and not self.model.training:
            return self.fast[2] if self.fast[2] is not None else self.fast[1]
        return self.model

    @property
    def backend(self) -> str:
        """What runs the network now: 'onnxruntime', 'torch (folded)' or 'torch'."""
        net = self.network()
        return "onnxruntime" if net is not self.model and not isinstance(net, torch.nn.Module) else \
            "torch (folded)" if net is not self.model else "torch"

    def for_device(self, device_id: str | None) -> "Predictor":
        """This predictor with the model of ``device_id`` (a device container's member; the general
        model for an unknown id; a single model serves every device)."""
        if not isinstance(self.model, DeviceContainer):
            return self
        return replace(self, model=self.model.model_for_device(device_id))

    @property
    def whole_file(self) -> bool:
        """Classify a recording as one input by default (recipe ``inference.whole_file``; imported
        fully convolutional models, as their DCASE 2025 packages do)."""
        return bool(((self.meta.recipe or {}).get("inference") or {}).get("whole_file"))

    @property
    def openset(self) -> OpenSetRule | None:
        """The open-set rule the model file carries (``asclab.evaluate.openset``), or None."""
        return stored_rule(getattr(self.meta, "openset", None), self.meta.recipe)

    def load_wave(self, path: str | Path, duration: float | None = "default") -> np.ndarray:
        dur = self.duration if duration == "default" else duration
        check_not_near_empty(path, dur)  # asclab.data.audio.MIN_AUDIO_SHARE of the clip, at least
        expect_rate = ((self.meta.recipe or {}).get("data") or {}).get("expect_rate")  # as in training
        return load_audio(path, self.fcfg.sample_rate, channels=self.fcfg.channels, duration=dur,
                          resampler=self.fcfg.resampler, expect_rate=expect_rate)

    @torch.no_grad()
    def logits(self, waves: torch.Tensor, device_ids: list[str | None] | None = None) -> torch.Tensor:
        """Logits (float32) for a batch of waveforms (B, C, N); ``device_ids`` route the clips of a
        device container (``asclab.models.device_container``) and are ignored by other models."""
        x = self.features(waves)
        if self.precision == "fp16":
            x = x.half()
        if device_ids is not None and hasattr(self.model, "model_for_device"):
            return self.model(x, device_ids).float()
        return self.network()(x).float()

    @torch.no_grad()
    def probs(self, waves: torch.Tensor, tta: int = 0, tta_augment: dict | None = None,
              seed: int = 0, device_ids: list[str | None] | None = None) -> torch.Tensor:
        """Class probabilities. With ``tta`` > 0, ``tta`` copies are augmented
        (``tta_augment = {waveform: [...], spec: [...]}``, e.g. Horvath's time-domain
        augmentations and the temporal shuffle), their logits averaged, and the
        softmax taken after averaging (Horvath 2021 sec. 4)."""
        if tta <= 0 or device_ids is not None:  # TTA for the general model only
            return torch.softmax(self.logits(waves, device_ids), dim=1)
        cfg = tta_augment or {}
        wave_aug = build_waveform_augment(cfg.get("waveform") or [], sample_rate=self.fcfg.sample_rate)
        spec_aug = build_spec_augment(cfg.get("spec") or [])
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            total = torch.zeros(len(waves), len(self.classes))
            for _ in range(tta):
                x = self.features(wave_aug(waves) if wave_aug is not None else waves)
                x = spec_aug(x) if spec_aug is not None else x
                total += self.network()(x.half() if self.precision == "fp16" else x).float()
        finally:
            torch.random.set_rng_state(state)
        return torch.softmax(total / tta, dim=1)


def predict_records(predictors: Predictor | list[Predictor], records: list[Record], *, batch_size: int = 16,
                    tta: int = 0, tta_augment: dict | None = None, progress: bool = True,
                    on_error: str = "raise", skipped: list | None = None) -> np.ndarray:
    """Probabilities (N, K) for records, averaged over an ensemble's members' softmax outputs."""
    members = predictors if isinstance(predictors, list) else [predictors]
    first = members[0]
    for p in members[1:]:
        if p.classes != first.classes:
            raise AsclabError("ensemble members disagree on the class list")
    out = np.zeros((len(records), len(first.classes)), dtype=np.float64)
    bar = tqdm(total=len(records), desc="predict", unit="clip", disable=not progress, leave=False)
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        for member in members:
            waves, keep = [], []
            for j, rec in enumerate(chunk):
                try:
                    with naming_row(rec):  # errors name the metadata file and row
                        waves.append(torch.from_numpy(member.load_wave(rec.path)))
                    keep.append(j)
                except AsclabError as exc:
                    if on_error != "skip":
                        raise
                    if member is first and skipped is not None:
                        skipped.append((str(rec.path), str(exc)))
                    out[start + j] = np.nan
            if not waves:
                continue
            batch = _stack(waves)
            # a device container routes each clip by its recorded device (DCASE 2025)
            ids = [chunk[j].device for j in keep] if hasattr(member.model, "model_for_device") else None
            p = member.probs(batch, tta=tta, tta_augment=tta_augment, device_ids=ids).numpy()
            out[[start + j for j in keep]] += p / len(members)
        bar.update(len(chunk))
    bar.close()
    return out


def _stack(waves: list[torch.Tensor]) -> torch.Tensor:
    n = max(w.shape[-1] for w in waves)
    return torch.stack([torch.nn.functional.pad(w, (0, n - w.shape[-1])) for w in waves])


def open_set_decision(probs: np.ndarray, unknown_index: int, weight: float = 5.0) -> np.ndarray:
    """Task 1c decision by class index (see ``asclab.evaluate.openset.decide``, which every
    command uses): the 'unknown' softmax output weighted by ``weight`` before the argmax."""
    classes = [str(i) for i in range(np.shape(probs)[-1])]
    return decide(probs, classes, OpenSetRule(classes[unknown_index], float(weight)))


def tune_open_set_weight(probs: np.ndarray, y_true: np.ndarray, unknown_index: int,
                         weights: Iterable[float] = TUNE_WEIGHTS) -> tuple[float, float]:
    """Pick the weight maximising the 2019 task 1c score: mean of the known-class
    macro accuracy and the unknown-class accuracy. Returns (weight, score)."""
    classes = [str(i) for i in range(np.shape(probs)[-1])]
    return tune_weight(probs, y_true, classes, OpenSetRule(classes[unknown_index], 1.0), weights)
