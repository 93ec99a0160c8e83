"""Simulated recording devices of the SYNTHETIC demo set (in the spirit of TAU 2020 Mobile's s1-s6).

A device is a fixed frequency response (high-/low-pass edges, resonances,
a tilt), a gain, a coloured noise floor and an optional soft saturation.
The train devices (a, b, c, s1-s3) span moderate responses; the test-only
devices s4-s6 are deliberately further away (a telephone-like band, a
strong tilt with a deep notch, a narrow band with heavy saturation), so
unseen devices are harder, as in the real data (Horvath 2021 sec. 8,
Table 4).
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import numpy as np


@dataclass(frozen=True)
class DeviceSpec:
    highpass_hz: float
    lowpass_hz: float
    peaks: tuple[tuple[float, float, float], ...] = ()  # (centre Hz, gain dB, width in octaves)
    tilt_db_per_octave: float = 0.0  # around 1 kHz
    gain_db: float = 0.0
    noise_db: float = -80.0  # noise floor RMS, dBFS
    noise_slope: float = 0.0  # dB/octave
    drive: float = 0.0  # 0: linear; 1: strong tanh saturation

    def response(self, f: np.ndarray, jitter_db: float = 0.0) -> np.ndarray:
        """Magnitude response at frequencies ``f`` (Hz)."""
        fs = np.maximum(f, 1.0)
        db = self.tilt_db_per_octave * np.log2(fs / 1000.0)
        db += sum(g * np.exp(-0.5 * (np.log2(fs / c) / w) ** 2) for c, g, w in self.peaks)
        mag = 10.0 ** ((db + self.gain_db + jitter_db) / 20.0)
        mag /= np.sqrt(1.0 + (self.highpass_hz / fs) ** 4)
        mag /= np.sqrt(1.0 + (fs / self.lowpass_hz) ** 8)
        return mag


DEVICES: Mapping[str, DeviceSpec] = MappingProxyType({
    "a": DeviceSpec(20.0, 20000.0, noise_db=-78.0),
    "b": DeviceSpec(120.0, 11000.0, ((2500.0, 6.0, 0.6),), -0.5, -4.0, -64.0, -3.0),
    "c": DeviceSpec(250.0, 8000.0, ((900.0, 5.0, 0.5), (5000.0, -6.0, 0.5)), 1.0, 3.0, -60.0, 0.0, 0.3),
    "s1": DeviceSpec(80.0, 14000.0, ((4000.0, 6.0, 0.7),), 1.5, 0.0, -66.0, 3.0),
    "s2": DeviceSpec(180.0, 9500.0, ((1500.0, -6.0, 0.6),), -1.5, -2.0, -62.0, -6.0),
    "s3": DeviceSpec(60.0, 12000.0, ((300.0, 6.0, 0.5), (6000.0, 4.0, 0.4)), 0.0, 2.0, -64.0, 0.0, 0.2),
    "s4": DeviceSpec(400.0, 4000.0, ((1200.0, 8.0, 0.5),), 0.0, 0.0, -55.0, 0.0, 0.5),
    "s5": DeviceSpec(40.0, 16000.0, ((200.0, 9.0, 0.6), (3000.0, -12.0, 0.8)), -2.5, -6.0, -58.0, -6.0),
    "s6": DeviceSpec(700.0, 7000.0, ((2500.0, 8.0, 0.4),), 2.5, 4.0, -52.0, 3.0, 0.6),
})
TRAIN_DEVICES = ("a", "b", "c", "s1", "s2", "s3")
TEST_ONLY_DEVICES = ("s4", "s5", "s6")


def apply_device(x: np.ndarray, sr: int, device: DeviceSpec, rng: np.random.Generator) -> np.ndarray:
    """Record the clean clip ``x`` with ``device`` (per-clip gain jitter of +-1 dB)."""
    n = len(x)
    f = np.fft.rfftfreq(n, 1.0 / sr)
    spec = np.fft.rfft(x) * device.response(f, rng.uniform(-1.0, 1.0))
    noise_shape = (np.maximum(f, 20.0) / 1000.0) ** (device.noise_slope / 6.0206)
    noise = (rng.standard_normal(len(f)) + 1j * rng.standard_normal(len(f))) * noise_shape
    floor = np.fft.irfft(noise, n)
    floor *= 10.0 ** (device.noise_db / 20.0) / max(float(np.sqrt(np.mean(floor**2))), 1e-20)
    y = np.fft.irfft(spec, n) + floor
    if device.drive > 0:
        k = 1.0 + 15.0 * device.drive
        y = np.tanh(k * y) / k
    return y
