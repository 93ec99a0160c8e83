"""Feature stage: waveform -> log-mel (+ deltas, + HPSS) tensors, and the on-disk cache."""
from asclab.features.cache import CachedFeatureDataset, FeatureCache, cache_key
from asclab.features.config import FeatureConfig
from asclab.features.delta import deltas
from asclab.features.extractor import (
    FeatureExtractor,
    feature_shape,
    frames_for,
    minmax01,
)
from asclab.features.median_hpss import hpss
from asclab.features.mel import MelSpectrogram, log_mel, mel_filterbank, power_to_db

__all__ = [
    "CachedFeatureDataset",
    "FeatureCache",
    "FeatureConfig",
    "FeatureExtractor",
    "MelSpectrogram",
    "cache_key",
    "deltas",
    "feature_shape",
    "frames_for",
    "hpss",
    "log_mel",
    "mel_filterbank",
    "minmax01",
    "power_to_db",
]
