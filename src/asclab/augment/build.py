"""Build augmentation pipelines from a recipe's YAML (constructor kwargs are the keys)."""
from __future__ import annotations

import inspect
from typing import Any, Mapping, Sequence

import torch.nn as nn

from asclab.augment._base import Compose
from asclab.augment.dir import DeviceImpulseResponse
from asclab.augment.mixing import BatchMixChoice, BatchMixSequence, CutMix, FreqMix, FreqMixStyle, Mixup, MixupWithCrop
from asclab.augment.spectrogram import FreqMask, RandomTimeCrop, SpecMask, TemporalShuffle, TimeMask
from asclab.augment.waveform import ChannelSwap, GaussianNoise, PitchShift, TimeRoll, TimeStretch, VolumeChange
from asclab.errors import ConfigError
from asclab.registry import Registry

WAVEFORM_AUGMENTS: Registry[type[nn.Module]] = Registry("waveform augmentation")
WAVEFORM_AUGMENTS.add("gaussian_noise", GaussianNoise)
WAVEFORM_AUGMENTS.add("pitch_shift", PitchShift)
WAVEFORM_AUGMENTS.add("time_stretch", TimeStretch)
WAVEFORM_AUGMENTS.add("volume", VolumeChange)
WAVEFORM_AUGMENTS.add("channel_swap", ChannelSwap)
WAVEFORM_AUGMENTS.add("dir", DeviceImpulseResponse)
WAVEFORM_AUGMENTS.add("roll", TimeRoll)
SPEC_AUGMENTS: Registry[type[nn.Module]] = Registry("spectrogram augmentation")
SPEC_AUGMENTS.add("time_crop", RandomTimeCrop)
SPEC_AUGMENTS.add("time_mask", TimeMask)
SPEC_AUGMENTS.add("freq_mask", FreqMask)
SPEC_AUGMENTS.add("spec_mask", SpecMask)
SPEC_AUGMENTS.add("temporal_shuffle", TemporalShuffle)
SPEC_AUGMENTS.add("channel_swap", ChannelSwap)
# Masks of the mel POWER, before the log (``augment.mel_power``; the DCASE 2024 baseline's
# torchaudio FrequencyMasking/TimeMasking): fill 0 there becomes log(log_eps) after the log.
MEL_POWER_AUGMENTS: Registry[type[nn.Module]] = Registry("mel power augmentation")
MEL_POWER_AUGMENTS.add("freq_mask", FreqMask)
MEL_POWER_AUGMENTS.add("time_mask", TimeMask)
MEL_POWER_AUGMENTS.add("spec_mask", SpecMask)
BATCH_MIXES: Registry[type[nn.Module]] = Registry("batch mix")
BATCH_MIXES.add("mixup", Mixup)
BATCH_MIXES.add("mixup_crop", MixupWithCrop)
BATCH_MIXES.add("freqmix", FreqMix)
BATCH_MIXES.add("cutmix", CutMix)
BATCH_MIXES.add("freq_mixstyle", FreqMixStyle)


def construct(table: Registry, cfg: Mapping[str, Any], what: str) -> Any:
    """``table[cfg["name"]](**rest)``, with ConfigError for an unknown name or key."""
    return table.build(cfg)


def _build_list(table: Registry, cfgs: Sequence[Mapping[str, Any]] | None, what: str) -> Compose:
    if cfgs is None:
        return Compose()
    if isinstance(cfgs, Mapping) or isinstance(cfgs, str):
        raise ConfigError(f"{what} must be a list of {{name: ..., ...}} entries, got {cfgs!r}")
    return Compose(construct(table, c, what) for c in cfgs)


def build_waveform_augment(cfgs: Sequence[Mapping[str, Any]] | None, sample_rate: int | None = None) -> Compose:
    """Waveform pipeline, e.g. ``[{name: pitch_shift, p: 0.5}, {name: volume}]``; call as ``aug(x, generator)``.

    ``sample_rate`` is given to the transforms that take one (the device impulse
    responses are resampled to it); the others' parameters are relative to the clip.
    """
    what = "waveform augmentation"
    if cfgs is None or isinstance(cfgs, (Mapping, str)):
        return _build_list(WAVEFORM_AUGMENTS, cfgs, what)
    return Compose(_build_waveform(c, sample_rate, what) for c in cfgs)


def _build_waveform(cfg: Mapping[str, Any], sample_rate: int | None, what: str) -> nn.Module:
    name = cfg.get("name") if isinstance(cfg, Mapping) else None
    cls = WAVEFORM_AUGMENTS.get(name) if name in WAVEFORM_AUGMENTS else None
    if cls is None or "sample_rate" not in inspect.signature(cls).parameters:
        return construct(WAVEFORM_AUGMENTS, cfg, what)
    if sample_rate is None:
        raise ConfigError(f"{what} {cfg['name']!r} needs the recipe's sample rate")
    return WAVEFORM_AUGMENTS.build(cfg, sample_rate=int(sample_rate))


def build_spec_augment(cfgs: Sequence[Mapping[str, Any]] | None) -> Compose:
    """Feature pipeline, e.g. ``[{name: time_crop, frames: 400}, {name: time_mask, max_fraction: 0.1}]``."""
    return _build_list(SPEC_AUGMENTS, cfgs, "spectrogram augmentation")


def build_mel_power_augment(cfgs: Sequence[Mapping[str, Any]] | None) -> Compose:
    """Masks applied to the mel power spectrogram before the log, e.g. ``[{name: freq_mask,
    max_width: 48}]`` (the DCASE 2024 baseline); the trainer passes it to the feature
    extractor as its ``mel_power_hook`` while training, so features are computed per batch."""
    return _build_list(MEL_POWER_AUGMENTS, cfgs, "mel power augmentation")


def build_batch_mix(cfg: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None) -> nn.Module | None:
    """A batch mix from ``{name: mixup, alpha: 0.2}``; None for none.

    A list applies several in turn; ``{name: choice, choices: [...], weights: [...]}``
    draws one of them per batch (weights optional, default uniform).
    """
    if cfg is None:
        return None
    if isinstance(cfg, Mapping):
        if cfg.get("name") == "choice":
            unknown = sorted(set(cfg) - {"name", "choices", "weights"})
            if unknown or not isinstance(cfg.get("choices"), Sequence) or isinstance(cfg.get("choices"), str):
                raise ConfigError(f"batch mix 'choice' takes a 'choices' list (and optional 'weights'), got {dict(cfg)!r}")
            return BatchMixChoice((construct(BATCH_MIXES, c, "batch mix") for c in cfg["choices"]), cfg.get("weights"))
        return construct(BATCH_MIXES, cfg, "batch mix")
    return BatchMixSequence(construct(BATCH_MIXES, c, "batch mix") for c in cfg)
