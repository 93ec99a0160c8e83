"""Data augmentation: waveform (Horvath 2021 sec. 3), feature-domain and batch mixing."""
from asclab.augment._base import Compose
from asclab.augment.build import (
    BATCH_MIXES,
    MEL_POWER_AUGMENTS,
    SPEC_AUGMENTS,
    WAVEFORM_AUGMENTS,
    build_batch_mix,
    build_mel_power_augment,
    build_spec_augment,
    build_waveform_augment,
)
from asclab.augment.mixing import (
    BatchMixChoice,
    BatchMixSequence,
    CutMix,
    FreqMix,
    FreqMixStyle,
    Mixup,
    MixupWithCrop,
    one_hot,
    soft_targets,
)
from asclab.augment.spectrogram import FreqMask, RandomTimeCrop, SpecMask, TemporalShuffle, TimeMask
from asclab.augment.waveform import (
    ChannelSwap,
    GaussianNoise,
    PitchShift,
    TimeRoll,
    TimeStretch,
    VolumeChange,
    phase_vocoder_stretch,
    pitch_shift,
    volume_curve,
)

__all__ = [
    "BATCH_MIXES", "MEL_POWER_AUGMENTS", "SPEC_AUGMENTS", "WAVEFORM_AUGMENTS", "BatchMixChoice", "BatchMixSequence", "ChannelSwap", "Compose",
    "CutMix", "FreqMask", "FreqMix", "FreqMixStyle", "GaussianNoise", "Mixup", "MixupWithCrop",
    "PitchShift", "RandomTimeCrop", "SpecMask", "TemporalShuffle", "TimeMask", "TimeRoll", "TimeStretch", "VolumeChange",
    "build_batch_mix", "build_mel_power_augment", "build_spec_augment", "build_waveform_augment", "one_hot", "phase_vocoder_stretch",
    "pitch_shift", "soft_targets", "volume_curve",
]
