"""Real clips for the exporters: calibration of static int8 files and the self-check on real audio.

``clip_features`` reads audio from a data set folder (any layout ``open_dataset``
reads: its training split for calibration, its labelled clips for checks) or,
for a plain folder such as ``../shared/data/tau-samples``, every audio file
under it. Each file gives one clip of the model's duration (the first
seconds, padded when shorter), turned into features by asclab's front end:
the input of a feature-input export.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from asclab.config import DataConfig, typed_block
from asclab.data import open_dataset
from asclab.data.audio import fit_length
from asclab.data.open import open_data
from asclab.errors import AsclabError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


def clip_paths(source: str | Path, *, split: str = "train", limit: int | None = None, seed: int = 0,
               recipe: dict | None = None) -> list[Path]:
    """Audio files of ``source``: a data set's ``split`` ("train" or "all"; with ``recipe``, the split
    that recipe trains on, e.g. a cross-validation fold's), else every audio file under it;
    at most ``limit`` of them, drawn with ``seed`` (sorted order kept)."""
    root = Path(source)
    if not root.exists():
        raise AsclabError(f"{root}: clip folder not found")
    paths: list[Path] = []
    if root.is_dir():
        try:
            if recipe is not None and split == "train":
                index = open_data(root, typed_block(DataConfig, recipe, "data"))
            else:

                index = open_dataset(root)
            records = list(index.train) if split == "train" else []
            paths = [r.path for r in (records or index.records)]
        except AsclabError:
            paths = []
        if not paths:
            paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    elif root.suffix.lower() in AUDIO_SUFFIXES:
        paths = [root]
    if not paths:
        raise AsclabError(f"{root}: no audio files")
    if limit is not None and len(paths) > limit:
        keep = np.sort(np.random.default_rng(seed).choice(len(paths), size=limit, replace=False))
        paths = [paths[i] for i in keep]
    return [Path(p) for p in paths]


def clip_features(pred, paths: list[Path], seconds: float) -> np.ndarray:
    """Features ``[N, in_chans, n_mels, frames]`` (float32) of ``seconds`` of each file, as the model sees them."""
    n = int(round(seconds * pred.fcfg.sample_rate))
    out = [pred.inputs(fit_length(pred.load_wave(p, duration=None), n)[None]) for p in paths]
    return np.concatenate(out).astype(np.float32)


def model_seconds(pred) -> float:
    """The clip length an export is built for: the model's ``duration`` (1 s when the file has none)."""
    return float(pred.duration or 1.0)


__all__ = ["clip_features", "clip_paths", "model_seconds"]
