"""Audio loading: real TAU clips against soundfile/librosa, channel policy, crop/pad, streaming, bad files."""
from __future__ import annotations

import tracemalloc
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from asclab.data.audio import audio_info, iter_audio_blocks, load_audio
from asclab.errors import ConfigError, DataError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
SAMPLES = SHARED / "tau-samples"
STEREO_48K = SAMPLES / "tut2018-48k-stereo" / "bus.wav"
MONO_44K = SAMPLES / "tau2020-mobile-44k-mono" / "metro_station-paris.wav"
STEREO_16BIT = SAMPLES / "unlabelled" / "acoustic_scene.wav"

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"real test data not found at {SHARED}")


# ---- real clips ---------------------------------------------------------------------------------


@needs_shared
def test_real_stereo_48k_native_matches_soundfile():
    ref, sr = sf.read(STEREO_48K, dtype="float32", always_2d=True)
    info = audio_info(STEREO_48K)
    assert (info.sample_rate, info.channels, info.subtype, info.frames) == (48000, 2, "PCM_24", len(ref))
    stereo = load_audio(STEREO_48K, None, "stereo")
    assert stereo.dtype == np.float32 and stereo.shape == (2, 480000)
    np.testing.assert_array_equal(stereo, ref.T)
    mono = load_audio(STEREO_48K, 48000, "mono")
    np.testing.assert_allclose(mono[0], ref.mean(axis=1), atol=1e-7)


@needs_shared
@pytest.mark.parametrize("sr", [44100, 32000])
def test_real_stereo_48k_resampled_matches_librosa(sr):
    mono = load_audio(STEREO_48K, sr, "mono")
    stereo = load_audio(STEREO_48K, sr, "stereo")
    assert mono.shape == (1, 10 * sr) and stereo.shape == (2, 10 * sr)
    ref_mono, _ = librosa.load(STEREO_48K, sr=sr, mono=True)  # soundfile + mean + soxr_hq
    ref_stereo, _ = librosa.load(STEREO_48K, sr=sr, mono=False)
    np.testing.assert_allclose(mono[0], ref_mono, atol=1e-5)
    np.testing.assert_allclose(stereo, ref_stereo, atol=1e-5)


@needs_shared
def test_real_mono_44k():
    ref, sr = sf.read(MONO_44K, dtype="float32")
    assert sr == 44100 and audio_info(MONO_44K).subtype == "PCM_24"
    mono = load_audio(MONO_44K, 44100, "mono")
    np.testing.assert_array_equal(mono[0], ref)
    stereo = load_audio(MONO_44K, 44100, "stereo")  # documented: a mono file becomes two equal channels
    assert stereo.shape == (2, len(ref)) and np.array_equal(stereo[0], stereo[1])
    down = load_audio(MONO_44K, 32000, "mono")
    np.testing.assert_allclose(down[0], librosa.load(MONO_44K, sr=32000)[0], atol=1e-5)


@needs_shared
def test_real_stereo_16bit_and_ogg():
    x = load_audio(STEREO_16BIT, 32000, "stereo", duration=2.0, offset=1.0)
    assert x.shape == (2, 64000)
    ref, _ = sf.read(STEREO_16BIT, dtype="float32", always_2d=True)
    np.testing.assert_array_equal(load_audio(STEREO_16BIT, None, "stereo", duration=2.0, offset=1.0),
                                  ref[44100:3 * 44100].T)
    ogg = next((SHARED / "esc10").glob("*/*.ogg"))
    y = load_audio(ogg, 44100, "mono", duration=5.0)
    assert y.shape == (1, 220500) and np.isfinite(y).all() and np.abs(y).max() > 0


# ---- formats, crop/pad, channel policy ------------------------------------------------------------


def _write(path: Path, x: np.ndarray, sr: int, subtype: str | None = None, fmt: str | None = None) -> Path:
    sf.write(path, x, sr, subtype=subtype, format=fmt)
    return path


@pytest.mark.parametrize("name,subtype,atol", [("a.wav", "PCM_16", 1 / 32767), ("b.wav", "PCM_24", 1e-6),
                                               ("c.wav", "PCM_32", 1e-8), ("d.wav", "FLOAT", 0.0),
                                               ("e.flac", "PCM_16", 1 / 32767), ("f.ogg", "VORBIS", None)])
def test_formats_round_trip(tmp_path, name, subtype, atol):
    rng = np.random.default_rng(0)
    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)[:, None] * [1.0, 0.5]).astype(np.float32)
    x += 0.01 * rng.standard_normal(x.shape).astype(np.float32)
    p = _write(tmp_path / name, x, 16000, subtype)
    y = load_audio(p, None, "stereo")
    assert y.shape == (2, 16000) and y.dtype == np.float32
    if atol is None:  # lossy: compare energy only
        assert abs(np.sqrt(np.mean(y**2)) / np.sqrt(np.mean(x**2)) - 1) < 0.05
    else:
        np.testing.assert_allclose(y, x.T, atol=atol)


def test_crop_pad_offset(tmp_path):
    x = np.linspace(-0.5, 0.5, 8000, dtype=np.float32)
    p = _write(tmp_path / "ramp.wav", x, 8000, "FLOAT")
    np.testing.assert_array_equal(load_audio(p, None, duration=0.25, offset=0.5)[0], x[4000:6000])
    padded = load_audio(p, None, duration=1.5, offset=0.5)[0]
    assert len(padded) == 12000
    np.testing.assert_array_equal(padded[:4000], x[4000:])
    assert not padded[4000:].any()  # zeros at the end
    assert load_audio(p, 16000, duration=0.3).shape == (1, 4800)
    with pytest.raises(DataError, match="offset"):
        load_audio(p, None, offset=2.0)


def test_channel_policy(tmp_path):
    x = np.stack([np.full(100, 0.1), np.full(100, 0.3), np.full(100, -0.1)], axis=1).astype(np.float32)
    p = _write(tmp_path / "three.wav", x, 8000, "FLOAT")
    np.testing.assert_allclose(load_audio(p, None, "mono")[0], np.full(100, 0.1), atol=1e-7)
    with pytest.raises(DataError, match=r"three\.wav: has 3 channels"):
        load_audio(p, None, "stereo")
    with pytest.raises(ConfigError, match="channels"):
        load_audio(p, None, "left")


def test_expected_format(tmp_path):
    p = _write(tmp_path / "r22k.wav", np.zeros(2205, np.float32), 22050, "PCM_16")
    assert load_audio(p, 44100).shape == (1, 4410)  # resampling is the default
    with pytest.raises(DataError, match=r"r22k\.wav: sample rate 22050 Hz, expected 44100 Hz \(strict_rate"):
        load_audio(p, 44100, strict_rate=True)
    with pytest.raises(DataError, match=r"r22k\.wav: sample rate 22050 Hz, expected 48000 Hz"):
        load_audio(p, None, expect_rate=48000)
    with pytest.raises(DataError, match=r"r22k\.wav: 1 channel\(s\), expected 2"):
        load_audio(p, None, expect_channels=2)
    with pytest.raises(DataError, match="r22k.wav"):
        list(iter_audio_blocks(p, 44100, block_seconds=0.05, strict_rate=True))


# ---- broken files ---------------------------------------------------------------------------------


def _broken(tmp_path: Path, kind: str) -> Path:
    rng = np.random.default_rng(1)
    good = tmp_path / "good.wav"
    sf.write(good, 0.1 * rng.standard_normal(4000), 8000, subtype="PCM_16")
    p = tmp_path / f"{kind}.wav"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "random":
        p.write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    elif kind == "truncated":
        p.write_bytes(good.read_bytes()[:4000])
    elif kind == "noframes":
        sf.write(p, np.zeros((0, 1)), 8000, subtype="PCM_16")
    elif kind in ("nan", "inf"):
        x = np.zeros(800, np.float32)
        x[123] = np.nan if kind == "nan" else np.inf
        sf.write(p, x, 8000, subtype="FLOAT")
    elif kind == "missing":
        pass
    return p


@pytest.mark.parametrize("kind,message", [
    ("missing", "audio file not found"), ("empty", "empty file"), ("random", "unreadable audio"),
    ("truncated", "truncated WAV"), ("noframes", "no audio frames"), ("nan", "NaN or infinite"),
    ("inf", "NaN or infinite"),
])
def test_bad_files(tmp_path, kind, message):
    p = _broken(tmp_path, kind)
    for read in (lambda: load_audio(p, 8000), lambda: list(iter_audio_blocks(p, 16000, block_seconds=0.01))):
        with pytest.raises(DataError, match=message) as e:
            read()
        assert str(e.value).startswith(str(p)) and "\n" not in str(e.value)


def test_truncated_ogg_and_flac(tmp_path):
    x = 0.1 * np.random.default_rng(2).standard_normal(44100)
    for name in ("t.ogg", "t.flac"):
        full = _write(tmp_path / f"full-{name}", x, 44100)
        cut = tmp_path / name
        cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        with pytest.raises(DataError, match=name.replace(".", r"\.")):
            load_audio(cut, 44100)


# ---- streaming ------------------------------------------------------------------------------------


def _long_file(tmp_path: Path, seconds: float, sr: int = 48000, channels: int = 2) -> Path:
    rng = np.random.default_rng(3)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.2 * np.sin(2 * np.pi * 300 * t)[:, None] + 0.05 * rng.standard_normal((len(t), channels))
    return _write(tmp_path / "long.wav", x.astype(np.float32), sr, "PCM_16")


@pytest.mark.parametrize("channels", ["mono", "stereo"])
@pytest.mark.parametrize("read_frames", [1000, 48000, 10**6])
def test_stream_equals_whole_file(tmp_path, channels, read_frames):
    p = _long_file(tmp_path, 5.3)
    whole = load_audio(p, 32000, channels)
    blocks = list(iter_audio_blocks(p, 32000, channels, block_seconds=1.0, read_frames=read_frames))
    assert [s for s, _ in blocks] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    joined = np.concatenate([b for _, b in blocks], axis=1)
    assert joined.shape == (whole.shape[0], 6 * 32000)
    np.testing.assert_allclose(joined[:, : whole.shape[1]], whole, atol=1e-5)
    assert not joined[:, whole.shape[1]:].any()  # the last window is zero-padded


def test_stream_windows_overlap_and_tail(tmp_path):
    p = _write(tmp_path / "ten.wav", np.arange(1000, dtype=np.float32) / 1000, 100, "FLOAT")  # 10 s at 100 Hz
    wins = list(iter_audio_blocks(p, None, block_seconds=4.0, hop_seconds=2.0, read_frames=64))
    assert [s for s, _ in wins] == [0.0, 2.0, 4.0, 6.0]  # a window at 8 s would add nothing new
    ref = np.arange(1000, dtype=np.float32) / 1000
    for start, w in wins:
        np.testing.assert_array_equal(w[0], ref[int(start * 100): int(start * 100) + 400])
    wins = list(iter_audio_blocks(p, None, block_seconds=3.0, hop_seconds=3.0))
    assert [s for s, _ in wins] == [0.0, 3.0, 6.0, 9.0] and not wins[-1][1][0, 100:].any()
    assert [s for s, _ in iter_audio_blocks(p, None, block_seconds=3.0, pad_last=False)] == [0.0, 3.0, 6.0]
    short = list(iter_audio_blocks(p, None, block_seconds=20.0))
    assert len(short) == 1 and short[0][1].shape == (1, 2000)


def test_stream_memory_is_bounded(tmp_path):
    p = _long_file(tmp_path, 120.0, sr=48000, channels=2)  # 23 MB as float32 stereo at 48 kHz
    whole_bytes = 120 * 48000 * 2 * 4
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_audio_blocks(p, 32000, "stereo", block_seconds=1.0, read_frames=16384))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 120
    assert peak < whole_bytes / 20, f"peak {peak} bytes while streaming"
