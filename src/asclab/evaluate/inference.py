"""Inference from an asclab model file: full-length features, test-time
augmentation (Horvath 2021 sec. 4), ensembles by softmax averaging
(McDonnell & Gao 2019 sec. 3.7; Gao & McDonnell 2020 submission 4) and the
open-set decision (McDonnell & Gao 2019 sec. 3.7, task 1c)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from asclab.augment import build_spec_augment, build_waveform_augment
from asclab.data import load_audio
from asclab.data.records import Record
from asclab.errors import AsclabError
from asclab.features import FeatureExtractor
from asclab.features.config import FeatureConfig
from asclab.models import create_model
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

    @classmethod
    def load(cls, path: str | Path) -> "Predictor":
        mf = load_model_file(path)
        torch.set_flush_denormal(True)  # denormals slow CPU inference several-fold
        fcfg = FeatureConfig.from_dict(mf.features)
        kwargs = {k: v for k, v in mf.model.items() if k != "name"}
        model = create_model(mf.model["name"], num_classes=len(mf.classes), in_chans=fcfg.in_chans, **kwargs)
        try:
            model.load_state_dict({k: v.float() if torch.is_floating_point(v) else v
                                   for k, v in mf.state_dict.items()})
        except RuntimeError as exc:
            raise AsclabError(f"{path}: weights do not fit model {mf.model['name']!r} "
                              f"({str(exc).splitlines()[0][:160]})") from None
        model.eval()
        return cls(model, FeatureExtractor(fcfg).eval(), fcfg, list(mf.classes), mf.duration, mf)

    def load_wave(self, path: str | Path, duration: float | None = "default") -> np.ndarray:
        dur = self.duration if duration == "default" else duration
        return load_audio(path, self.fcfg.sample_rate, channels=self.fcfg.channels, duration=dur)

    @torch.no_grad()
    def logits(self, waves: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of waveforms (B, C, N)."""
        return self.model(self.features(waves))

    @torch.no_grad()
    def probs(self, waves: torch.Tensor, tta: int = 0, tta_augment: dict | None = None,
              seed: int = 0) -> torch.Tensor:
        """Class probabilities. With ``tta`` > 0, ``tta`` copies are augmented
        (``tta_augment = {waveform: [...], spec: [...]}``, e.g. Horvath's time-domain
        augmentations and the temporal shuffle), their logits averaged, and the
        softmax taken after averaging (Horvath 2021 sec. 4)."""
        if tta <= 0:
            return torch.softmax(self.logits(waves), dim=1)
        cfg = tta_augment or {}
        wave_aug = build_waveform_augment(cfg.get("waveform") or [], sample_rate=self.fcfg.sample_rate)
        spec_aug = build_spec_augment(cfg.get("spec") or [])
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            total = torch.zeros(len(waves), len(self.classes))
            for _ in range(tta):
                x = self.features(wave_aug(waves) if wave_aug is not None else waves)
                total += self.model(spec_aug(x) if spec_aug is not None else x)
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
            p = member.probs(batch, tta=tta, tta_augment=tta_augment).numpy()
            out[[start + j for j in keep]] += p / len(members)
        bar.update(len(chunk))
    bar.close()
    return out


def _stack(waves: list[torch.Tensor]) -> torch.Tensor:
    n = max(w.shape[-1] for w in waves)
    return torch.stack([torch.nn.functional.pad(w, (0, n - w.shape[-1])) for w in waves])


def open_set_decision(probs: np.ndarray, unknown_index: int, weight: float = 5.0) -> np.ndarray:
    """Task 1c: weight the 'unknown' softmax output by ``weight`` before the argmax
    (McDonnell & Gao 2019 sec. 3.7 used 5, chosen on validation data)."""
    scaled = np.array(probs, dtype=np.float64, copy=True)
    scaled[:, unknown_index] *= weight
    return scaled.argmax(axis=1)


def tune_open_set_weight(probs: np.ndarray, y_true: np.ndarray, unknown_index: int,
                         weights: Iterable[float] = (1, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20)) -> tuple[float, float]:
    """Pick the weight maximising the 2019 task 1c score: mean of the known-class
    macro accuracy and the unknown-class accuracy. Returns (weight, score)."""
    best = (1.0, -1.0)
    y_true = np.asarray(y_true)
    for w in weights:
        pred = open_set_decision(probs, unknown_index, w)
        known = [c for c in np.unique(y_true) if c != unknown_index]
        known_acc = np.mean([(pred[y_true == c] == c).mean() for c in known]) if known else 0.0
        unk = y_true == unknown_index
        unk_acc = (pred[unk] == unknown_index).mean() if unk.any() else 0.0
        score = 0.5 * (known_acc + unk_acc)
        if score > best[1]:
            best = (float(w), float(score))
    return best
