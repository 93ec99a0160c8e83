"""Feature settings: one dataclass, filled from a recipe's ``features:`` block."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from asclab.errors import ConfigError


@dataclass(frozen=True)
class FeatureConfig:
    """How a waveform becomes the network input.

    Defaults follow McDonnell & Gao 2019 sec. 3.1 (2048-point FFT, hop 1024,
    128 HTK mel bands, 0 Hz to Nyquist, librosa's power_to_db).
    """

    sample_rate: int = 44100
    n_fft: int = 2048
    win_length: int | None = None  # None: n_fft
    hop_length: int = 1024
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None  # None: sample_rate / 2
    htk: bool = True
    mel_norm: str | None = "slaney"  # librosa's default filter normalisation
    center: bool = True
    pad_mode: str = "constant"  # STFT edge padding when center: librosa>=0.10 "constant"; torchaudio "reflect"
    power: float = 2.0
    scale: str = "db"  # "db" (power_to_db), "log" (natural log), "db01"/"log01" (then [0,1] per clip)
    top_db: float | None = 80.0
    amin: float = 1e-10
    log_eps: float = 1e-8  # scale "log"/"log01": ln(mel + log_eps) (McDonnell & Gao 2019 code: 1e-8)
    deltas: bool = False  # append delta and delta-delta channels
    delta_width: int = 9
    # False: the 2019 paper's "without padding", T -> T - 2 (delta_width - 1); its code used width 5: 431 -> 423
    delta_padding: bool = True
    hpss: bool = False  # append harmonic and percussive channels (Horvath 2021 sec. 2)
    hpss_kernel: int = 31
    channels: str = "mono"  # "mono" (mix) or "stereo" (keep both, features per channel)
    # audio at another rate: "soxr" (HQ, librosa's default) or "sinc_hann" (torchaudio's windowed sinc,
    # width 6, rolloff 0.99, float32 kernel: the CPJKU baselines and DCASE 2025 packages; asclab.data.sinc_resample)
    resampler: str = "soxr"
    mel_fb: str = "librosa"  # mel filterbank construction: "librosa" or "torchaudio" (asclab.features.torchaudio_fb)

    @property
    def in_chans(self) -> int:
        per = 1 + (2 if self.deltas else 0) + (2 if self.hpss else 0)
        return per * (2 if self.channels == "stereo" else 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "FeatureConfig":
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown feature setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        cfg = cls(**d)
        if cfg.channels not in ("mono", "stereo"):
            raise ConfigError(f"features.channels must be 'mono' or 'stereo', got {cfg.channels!r}")
        if cfg.scale not in ("db", "log", "db01", "log01"):
            raise ConfigError(f"features.scale must be db, log, db01 or log01, got {cfg.scale!r}")
        if cfg.resampler not in ("soxr", "sinc_hann"):
            raise ConfigError(f"features.resampler must be soxr or sinc_hann, got {cfg.resampler!r}")
        if cfg.mel_fb not in ("librosa", "torchaudio"):
            raise ConfigError(f"features.mel_fb must be librosa or torchaudio, got {cfg.mel_fb!r}")
        return cfg
