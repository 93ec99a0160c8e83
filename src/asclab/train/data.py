"""Data loaders for training: cached features where possible, waveforms when
the recipe augments audio (features are then computed on the fly per batch)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import DataLoader, Dataset

from asclab.data import audio_info, load_audio
from asclab.data.audio import check_not_near_empty
from asclab.errors import DataError
from asclab.data.dataset import WaveformDataset, balanced_subsample
from asclab.config import as_config
from asclab.data.records import Record, naming_row
from asclab.config import RecipeConfig
from asclab.features import CachedFeatureDataset, FeatureCache
from asclab.features.shards import DEFAULT_SHARD_SIZE
from asclab.train.distributed import EpochSampler
from asclab.train.resume import EpochLoader


def default_cache_dir() -> Path:
    return Path(os.environ.get("ASCLAB_CACHE_DIR", Path.home() / ".cache" / "asclab"))


def device_list(records: list[Record], major: str | None) -> list[str]:
    """Devices with the major (source-domain) device first: index 0 is 'major'."""
    names = sorted({r.device for r in records if r.device is not None})
    if major in names:
        names.remove(major)
        names.insert(0, major)
    return names


def needs_waveforms(recipe: dict | RecipeConfig) -> bool:
    """Waveform augmentation, or masks of the mel power before the log (``augment.mel_power``),
    need features computed per batch; otherwise the cache serves them."""
    cfg = as_config(recipe)
    return bool(cfg.augment.waveform or cfg.augment.mel_power) or not cfg.train.cache_features


@dataclass
class Split:
    records: list[Record]
    dataset: Dataset


def readable_records(records: list[Record], duration: float | None = None, expect_rate: int | None = None
                     ) -> tuple[list[Record], list[tuple[str, str]]]:
    """With ``data.on_error: skip``: the records whose audio reads (header, size,
    truncation and NaN/Inf samples of the part training uses checked), is at
    ``expect_rate`` (``data.expect_rate``, when set) and, given the clip ``duration``,
    is not near-empty (``asclab.data.audio.MIN_AUDIO_SHARE``), and (file, reason) for
    the others, the reason naming the metadata row. Reads each file once more than training does."""
    ok, skipped = [], []
    for rec in records:
        try:
            with naming_row(rec):
                audio_info(rec.path)
                check_not_near_empty(rec.path, duration)
                load_audio(rec.path, None, "mono", duration, expect_rate=expect_rate)  # decodes: NaN/Inf found here
            ok.append(rec)
        except DataError as exc:
            skipped.append((str(rec.path), str(exc)))
    return ok, skipped


def make_dataset(records: list[Record], recipe: dict | RecipeConfig, classes: list[str], devices: list[str],
                 waveforms: bool, cache_dir: Path | None, progress: bool = True) -> Dataset:
    """Waveforms (features per batch) or the feature cache of ``records``; ``recipe`` typed,
    or a dict (validated here)."""
    cfg = as_config(recipe)
    fcfg, data = cfg.features, cfg.data
    if waveforms:
        return WaveformDataset(records, classes, fcfg.sample_rate, fcfg.channels, data.duration,
                               devices=devices, on_error=data.on_error, resampler=fcfg.resampler,
                               expect_rate=data.expect_rate, cache_mb=cfg.train.waveform_cache_mb)
    cache = feature_cache(records, cfg, cache_dir, progress)
    cidx = {c: i for i, c in enumerate(classes)}
    didx = {d: i for i, d in enumerate(devices)}
    labels = [cidx[r.label] if r.label is not None else -1 for r in records]
    devs = [didx.get(r.device, -1) for r in records]
    return CachedFeatureDataset(cache, labels, devs)


def feature_cache(records: list[Record], recipe: dict | RecipeConfig, cache_dir: Path | None,
                  progress: bool = True, *, workers: int | None = None, shard_size: int | None = None,
                  verify: bool = False) -> FeatureCache:
    """The recipe's feature cache of ``records`` (built if needed), as training reads it.
    ``workers``/``shard_size`` default to ``train.cache_workers`` (1) and ``train.cache_shard_size``."""
    cfg = as_config(recipe)
    fcfg, duration, rate, train = cfg.features, cfg.data.duration, cfg.data.expect_rate, cfg.train
    return FeatureCache.build(records, fcfg, ClipLoader(fcfg.sample_rate, fcfg.channels, duration, fcfg.resampler,
                                                        rate),
                              Path(cache_dir or default_cache_dir()), duration=duration, progress=progress,
                              loader_tag=f"expect_rate={rate}" if rate else "",
                              workers=int(workers or train.cache_workers or 1),
                              shard_size=int(shard_size or train.cache_shard_size or DEFAULT_SHARD_SIZE),
                              verify=verify)


def make_loader(ds: Dataset, batch_size: int, shuffle: bool, num_workers: int = 0,
                seed: int = 0, drop_last: bool = False) -> DataLoader:
    """Training (``shuffle``) or evaluation loader. Under DDP each process reads its
    share of the epoch (``EpochSampler``: training shares are equal, evaluation
    reads every item once); the position is saved in checkpoints (``EpochLoader``)."""
    sampler = EpochSampler(len(ds), shuffle=shuffle, seed=seed, even=shuffle)
    return EpochLoader(ds, batch_size, sampler, num_workers=num_workers, drop_last=drop_last, seed=seed)


@dataclass(frozen=True)
class ClipLoader:
    """``load_audio`` with fixed settings, as a picklable callable (feature-cache worker processes)."""

    sample_rate: int
    channels: str = "mono"
    duration: float | None = None
    resampler: str = "soxr"  # features.resampler: soxr, or sinc_hann (the CPJKU baselines' torchaudio method)
    expect_rate: int | None = None  # data.expect_rate: the rate every file must have (None: any, resampled)

    def __call__(self, rec: Record):
        with naming_row(rec):  # errors name the metadata file and row
            check_not_near_empty(rec.path, self.duration)  # asclab.data.audio.MIN_AUDIO_SHARE of the clip, at least
            return load_audio(rec.path, self.sample_rate, channels=self.channels, duration=self.duration,
                              resampler=self.resampler, expect_rate=self.expect_rate)


def select_training_records(records: list[Record], recipe: dict | RecipeConfig, seed: int) -> list[Record]:
    """Horvath 2021 sec. 2 balancing (city x device x scene subsampling) when the recipe asks."""
    bal = as_config(recipe).data.balance
    if not bal:
        return records
    return balanced_subsample(records, bal.per_cell, keys=tuple(bal.keys), seed=seed)
