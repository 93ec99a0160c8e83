"""``make_synthetic_dataset``: a small SYNTHETIC data set in the TAU 2020 Mobile layout.

Not real recordings: scenes are layered noises, tones and events
(``synth_sources``) passed through simulated devices (``synth_devices``).
It exists so the whole pipeline (and its demo) can run without the real
data; it is labelled synthetic in its README.txt, its SYNTHETIC.json marker
and ``DatasetIndex.summary()["synthetic"]``.

Layout (as TAU 2020 Mobile): ``meta.csv``, ``evaluation_setup/fold1_train.csv``,
``fold1_evaluate.csv`` (labelled test split), ``fold1_test.csv`` (the same
files without labels), ``audio/SCENE-CITY-LOCATION-SEGMENT-DEVICE.wav`` (mono
16-bit PCM). Train holds devices a, b, c, s1-s3; test holds those plus the
unseen s4-s6. Locations never cross splits. Output depends only on the
arguments (same bytes every run).
"""
from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from asclab.data.index import SYNTHETIC_MARKER, DatasetIndex, is_synthetic, open_dataset
from asclab.data.synth_devices import (
    DEVICES,
    TEST_ONLY_DEVICES,
    TRAIN_DEVICES,
    apply_device,
)
from asclab.data.synth_sources import RECIPES, draw_location, render_scene
from asclab.data.tables import write_table
from asclab.errors import ConfigError, DataError
from asclab.io import atomic_path

SYNTH_CITIES = ("barcelona", "helsinki", "lisbon", "london", "lyon", "paris")
SYNTH_VERSION = 1


@dataclass(frozen=True)
class SynthClip:
    split: str
    scene: str
    city: str
    location: int
    segment: int
    device: str

    @property
    def filename(self) -> str:
        return f"audio/{self.scene}-{self.city}-{self.location}-{self.segment}-{self.device}.wav"

    @property
    def identifier(self) -> str:
        return f"{self.city}-{self.location}"


def plan_clips(
    n_train: int, n_test: int, cities: Sequence[str], clips_per_location: int,
    train_devices: Sequence[str] = TRAIN_DEVICES, test_only_devices: Sequence[str] = TEST_ONLY_DEVICES,
) -> list[SynthClip]:
    """Every clip to write: ``n`` per scene x device and split.

    Each location holds about ``clips_per_location`` clips from different
    devices (TAU recorded places with several devices at once).
    """
    clips: list[SynthClip] = []
    location = 1000  # TAU-like numbering; locations are unique across splits
    segment = 40000
    for split, n, devices in (("train", n_train, list(train_devices)),
                              ("test", n_test, list(train_devices) + list(test_only_devices))):
        for scene in RECIPES:
            n_locs = -(-n * len(devices) // clips_per_location)
            locs = [(location + k, cities[(location + k) % len(cities)]) for k in range(n_locs)]
            location += n_locs
            for j in range(n):
                for d, device in enumerate(devices):
                    loc, city = locs[(j * len(devices) + d) % n_locs]
                    clips.append(SynthClip(split, scene, city, loc, segment, device))
                    segment += 1
    return clips


def render_clip(clip: SynthClip, seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """The int16 samples of one clip (deterministic in its location, segment and ``seed``)."""
    recipe = RECIPES[clip.scene]
    location = draw_location(recipe, np.random.default_rng([seed, 1, clip.location]))
    rng = np.random.default_rng([seed, 2, clip.segment])
    n = int(round(seconds * sample_rate))
    x = render_scene(recipe, location, n, sample_rate, rng)
    y = apply_device(x, sample_rate, DEVICES[clip.device], rng)
    return np.clip(np.round(y * 32767.0), -32768, 32767).astype(np.int16)


def make_synthetic_dataset(
    out_dir: str | Path,
    *,
    n_per_class_device: int = 10,
    n_test_per_class_device: int | None = None,
    seconds: float = 1.0,
    sample_rate: int = 44100,
    seed: int = 0,
    cities: Sequence[str] = SYNTH_CITIES,
    clips_per_location: int = 4,
) -> DatasetIndex:
    """Write the SYNTHETIC set into ``out_dir`` (new, empty or a previous synthetic set) and open it.

    ``n_per_class_device`` train clips per scene and train device;
    ``n_test_per_class_device`` (default: half of it, at least 1) test clips
    per scene and device, unseen devices included. With the defaults that is
    600 train and 450 test clips of 1 s at 44.1 kHz.
    """
    n_test = max(1, n_per_class_device // 2) if n_test_per_class_device is None else n_test_per_class_device
    if n_per_class_device < 1 or n_test < 1 or clips_per_location < 1 or not cities:
        raise ConfigError("n_per_class_device, n_test_per_class_device and clips_per_location must be >= 1")
    if seconds <= 0 or sample_rate < 8000:
        raise ConfigError("seconds must be positive and sample_rate at least 8000 Hz")
    if any("-" in c or not c for c in cities):
        raise ConfigError("city names must be non-empty and contain no '-'")
    out = Path(out_dir)
    _prepare_folder(out)
    params = {"n_per_class_device": n_per_class_device, "n_test_per_class_device": n_test, "seconds": seconds,
              "sample_rate": sample_rate, "seed": seed, "cities": list(cities),
              "clips_per_location": clips_per_location}
    marker = {"synthetic": True, "generator": "asclab.data.synth.make_synthetic_dataset",
              "version": SYNTH_VERSION, "parameters": params}
    _write_text(out / SYNTHETIC_MARKER, json.dumps({**marker, "complete": False}, indent=2, sort_keys=True) + "\n")
    clips = plan_clips(n_per_class_device, n_test, list(cities), clips_per_location)
    (out / "audio").mkdir(exist_ok=True)
    for clip in clips:
        _write_wav(out / clip.filename, render_clip(clip, seconds, sample_rate, seed), sample_rate)
    write_table(out / "meta.csv", ("filename", "scene_label", "identifier", "source_label"),
                [(c.filename, c.scene, c.identifier, c.device) for c in clips])
    setup = out / "evaluation_setup"
    write_table(setup / "fold1_train.csv", ("filename", "scene_label"),
                [(c.filename, c.scene) for c in clips if c.split == "train"])
    write_table(setup / "fold1_evaluate.csv", ("filename", "scene_label"),
                [(c.filename, c.scene) for c in clips if c.split == "test"])
    write_table(setup / "fold1_test.csv", ("filename",), [(c.filename,) for c in clips if c.split == "test"])
    _write_text(out / "README.txt", _readme(params, clips))
    _write_text(out / SYNTHETIC_MARKER, json.dumps({**marker, "complete": True}, indent=2, sort_keys=True) + "\n")
    return open_dataset(out)


def _prepare_folder(out: Path) -> None:
    """Refuse a non-empty folder that is not a synthetic set; clear a previous synthetic set."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not is_synthetic(out):
            raise DataError(f"{out}: folder is not empty and holds no asclab synthetic set; choose a new or empty folder")
        for path in list((out / "audio").glob("*.wav")) + list((out / "audio").glob(".*.partial")):
            path.unlink()
        for name in ("fold1_train.csv", "fold1_evaluate.csv", "fold1_test.csv"):
            (out / "evaluation_setup" / name).unlink(missing_ok=True)
        (out / "meta.csv").unlink(missing_ok=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{out}: cannot create the folder ({exc.strerror or exc})") from None


def _write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    # encoded in memory: soundfile's close() on a real file fsyncs, which costs ~8 ms a clip
    buf = io.BytesIO()
    sf.write(buf, samples, sample_rate, subtype="PCM_16", format="WAV")
    _write_bytes(path, buf.getvalue())


def _write_text(path: Path, text: str) -> None:
    _write_bytes(path, text.encode("utf-8"))


def _write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, then ``os.replace`` (``asclab.io.atomic_path``)."""
    with atomic_path(path, suffix=".partial") as tmp:
        tmp.write_bytes(data)


def _readme(params: dict, clips: list[SynthClip]) -> str:
    train = sum(c.split == "train" for c in clips)
    devices = ", ".join(f"{k} ({asdict(v)})" for k, v in DEVICES.items())
    return (
        "SYNTHETIC DATA SET - NOT REAL RECORDINGS\n"
        "========================================\n\n"
        "synthetic: true\n\n"
        "Generated by asclab.data.synth.make_synthetic_dataset with\n"
        f"{json.dumps(params, sort_keys=True)}\n\n"
        "Ten classes named like the TAU Urban Acoustic Scenes classes, rendered from layered\n"
        "coloured noise, hums, babble, traffic swells and short events, then passed through\n"
        "simulated devices (filters, noise floors, gains, saturation). Accuracies measured on\n"
        "this set say nothing about real acoustic scene data; use it to test the pipeline.\n\n"
        f"Layout: TAU 2020 Mobile (meta.csv, evaluation_setup/fold1_*.csv, audio/*.wav),\n"
        f"{train} train clips (devices {', '.join(TRAIN_DEVICES)}) and {len(clips) - train} test clips\n"
        f"(the same devices plus unseen {', '.join(TEST_ONLY_DEVICES)}).\n\n"
        f"Devices: {devices}\n"
    )
