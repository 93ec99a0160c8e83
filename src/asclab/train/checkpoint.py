"""The self-describing asclab model file.

It carries what prediction needs (class names, feature config, model config),
the recipe, a training-data summary and metrics, so ``asclab predict
model.ckpt clip.wav`` needs nothing else. Everything in it is a tensor or a
plain Python value, so it loads with ``torch.load(weights_only=True)``: a
model file is untrusted input and loading it never runs code.
"""
from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from asclab.config import DataConfig, InferenceConfig, parse_block, typed_block
from asclab.errors import CheckpointError, ConfigError
from asclab.features.config import FeatureConfig
from asclab.io import atomic_path

FORMAT = "asclab-model"
VERSION = 1


@dataclass
class ModelFile:
    state_dict: dict
    classes: list[str]
    features: dict
    model: dict
    recipe: dict
    duration: float | None = None
    devices: list[str] = field(default_factory=list)
    data_summary: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    # the open-set rule (asclab.evaluate.openset), weight as tuned; None: plain argmax
    openset: dict | None = None

    # Typed blocks of the stored recipe (asclab.config), checked as a recipe's are; the file keeps
    # the validated recipe as plain values so that it loads with weights_only=True.
    @property
    def feature_config(self) -> FeatureConfig:
        return FeatureConfig.from_dict(self.features)

    @property
    def inference(self) -> InferenceConfig:
        return typed_block(InferenceConfig, self.recipe, "inference")

    @property
    def data(self) -> DataConfig:
        return typed_block(DataConfig, self.recipe, "data")

    def to_payload(self) -> dict:
        return {"format": FORMAT, "version": VERSION, **{k: getattr(self, k) for k in self.__dataclass_fields__}}


def save_model_file(mf: ModelFile, path: str | Path) -> Path:
    with atomic_path(path, suffix=".ckpt") as tmp:
        torch.save(mf.to_payload(), tmp)
    return Path(path)


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder means its ``model.ckpt``."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.ckpt"
    if not p.exists():
        raise CheckpointError(f"{p}: checkpoint not found")
    return p


def _refusal(message: str) -> str:
    """One line for a file the safe unpickler refused (torch's own text advises unsafe loading)."""
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", message)
    if found:
        return (f"refused as untrusted: it contains a pickled object ({found.group(1)}) that loading would "
                "have to import or run; asclab model files hold only tensors and plain values")
    return "not a checkpoint (not a torch/pickle file, or a damaged one)"


def load_model_file(path: str | Path) -> ModelFile:
    p = resolve_checkpoint(path)
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{p}: {_refusal(str(exc))}") from None
    except Exception as exc:  # zip/EOF/format errors from torch.load
        why = " ".join(str(exc).split())[:120]
        if "weights_only" in why:  # torch's advice to load unsafely is never passed on
            why = "refused by the safe loader"
        raise CheckpointError(f"{p}: not a readable checkpoint ({type(exc).__name__}: {why})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{p}: not an asclab model file (a Lightning training checkpoint? "
                              "use the run folder's model.ckpt)")
    if payload.get("version", 0) > VERSION:
        raise CheckpointError(f"{p}: written by a newer asclab (format version {payload['version']})")
    fields = ModelFile.__dataclass_fields__
    missing = [k for k in ("state_dict", "classes", "features", "model") if k not in payload]
    if missing:
        raise CheckpointError(f"{p}: asclab model file lacks {', '.join(missing)}")
    _check_settings(p, payload)
    return ModelFile(**{k: payload[k] for k in fields if k in payload})


def _check_settings(p: Path, payload: dict) -> None:
    """The feature settings and class list a model file carries, checked as a recipe's are
    (``asclab.config``): a tampered file is refused in one line, not failed deep inside."""
    classes = payload["classes"]
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise CheckpointError(f"{p}: refused: its class list is not a list of names")
    if not isinstance(payload["features"], dict):
        raise CheckpointError(f"{p}: refused: its feature settings are not a mapping")
    try:
        parse_block(FeatureConfig, dict(payload["features"]), "features")
    except ConfigError as exc:
        raise CheckpointError(f"{p}: refused: its feature settings are not valid ({exc})") from None
