"""Data loaders for training: cached features where possible, waveforms when
the recipe augments audio (features are then computed on the fly per batch)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from asclab.data import load_audio
from asclab.data.dataset import WaveformDataset, balanced_subsample
from asclab.data.records import Record
from asclab.features import CachedFeatureDataset, FeatureCache
from asclab.features.config import FeatureConfig


def default_cache_dir() -> Path:
    return Path(os.environ.get("ASCLAB_CACHE_DIR", Path.home() / ".cache" / "asclab"))


def device_list(records: list[Record], major: str | None) -> list[str]:
    """Devices with the major (source-domain) device first: index 0 is 'major'."""
    names = sorted({r.device for r in records if r.device is not None})
    if major in names:
        names.remove(major)
        names.insert(0, major)
    return names


def needs_waveforms(recipe: dict) -> bool:
    return bool((recipe.get("augment") or {}).get("waveform")) or not recipe["train"].get("cache_features", True)


@dataclass
class Split:
    records: list[Record]
    dataset: Dataset


def make_dataset(records: list[Record], recipe: dict, classes: list[str], devices: list[str],
                 waveforms: bool, cache_dir: Path | None, progress: bool = True) -> Dataset:
    fcfg = FeatureConfig.from_dict(recipe["features"])
    duration = recipe["data"].get("duration")
    on_error = recipe["data"].get("on_error", "raise")
    if waveforms:
        return WaveformDataset(records, classes, fcfg.sample_rate, fcfg.channels, duration,
                               devices=devices, on_error=on_error)
    cache_dir = Path(cache_dir or default_cache_dir())

    def loader(rec: Record):
        return load_audio(rec.path, fcfg.sample_rate, channels=fcfg.channels, duration=duration)

    cache = FeatureCache.build(records, fcfg, loader, cache_dir, duration=duration, progress=progress)
    cidx = {c: i for i, c in enumerate(classes)}
    didx = {d: i for i, d in enumerate(devices)}
    labels = [cidx[r.label] if r.label is not None else -1 for r in records]
    devs = [didx.get(r.device, -1) for r in records]
    return CachedFeatureDataset(cache, labels, devs)


def make_loader(ds: Dataset, batch_size: int, shuffle: bool, num_workers: int = 0,
                seed: int = 0, drop_last: bool = False) -> DataLoader:
    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      drop_last=drop_last, generator=g, persistent_workers=num_workers > 0)


def select_training_records(records: list[Record], recipe: dict, seed: int) -> list[Record]:
    """Horvath 2021 sec. 2 balancing (city x device x scene subsampling) when the recipe asks."""
    bal = recipe["data"].get("balance")
    if not bal:
        return records
    keys = tuple(bal.get("keys", ("city", "device", "label")))
    return balanced_subsample(records, int(bal["per_cell"]), keys=keys, seed=seed)
