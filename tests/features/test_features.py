"""asclab.features against librosa on the real TAU clips, and the paper-specific variants."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

librosa = pytest.importorskip("librosa")
sf = pytest.importorskip("soundfile")

from asclab.errors import ConfigError, DataError  # noqa: E402
from asclab.features import (  # noqa: E402
    FeatureConfig,
    FeatureExtractor,
    MelSpectrogram,
    deltas,
    feature_shape,
    frames_for,
    hpss,
    log_mel,
)
from asclab.features.median_hpss import median_filter_last  # noqa: E402

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
TAU = DATA / "tau-samples"
DB_TOL = 1e-3  # dB

if not TAU.is_dir():
    pytest.skip(f"real TAU clips not found at {TAU} (../shared/data next to the repo)", allow_module_level=True)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Several test jobs share two cores; one intra-op thread avoids OpenMP stalls under oversubscription."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _read(path: Path) -> tuple[np.ndarray, int]:
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    return np.ascontiguousarray(y.T), sr  # (C, N)


@pytest.fixture(scope="module")
def clips() -> list[tuple[str, np.ndarray, int]]:
    """All real TAU clips: (name, (C, N) float32, rate) as stored (48k stereo 24-bit, 44.1k mono, 44.1k stereo)."""
    files = sorted(TAU.glob("*/*.wav"))
    assert len(files) >= 12, files
    return [(f.name, *_read(f)) for f in files]


@pytest.fixture(scope="module")
def mono44(clips) -> np.ndarray:
    """Every clip as 10 s of 44.1 kHz mono (librosa.to_mono + soxr resampling), (12, 441000)."""
    out = []
    for _, y, sr in clips:
        m = librosa.to_mono(y)
        if sr != 44100:
            m = librosa.resample(m, orig_sr=sr, target_sr=44100)
        out.append(librosa.util.fix_length(m, size=441000))
    return np.stack(out).astype(np.float32)


def _librosa_db(y, sr, **kw) -> np.ndarray:
    top_db = kw.pop("top_db", 80.0)
    mel = librosa.feature.melspectrogram(y=y, sr=sr, **kw)
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=top_db)


SETTINGS_2019 = dict(n_fft=2048, hop_length=1024, n_mels=128, htk=True)


def test_log_mel_equals_librosa_2019_settings_native_rates(clips):
    """Each channel of each clip at its own rate (48 kHz stereo 24-bit, 44.1 kHz mono and stereo)."""
    for name, y, sr in clips:
        ours = log_mel(y, sr, **SETTINGS_2019)  # (C, 128, T): every channel its own clip
        assert ours.dtype == torch.float32 and ours.shape[:2] == (y.shape[0], 128)
        for c in range(y.shape[0]):
            ref = _librosa_db(y[c], sr, **SETTINGS_2019)
            assert ours.shape[1:] == ref.shape
            diff = np.abs(ours[c].numpy() - ref).max()
            assert diff <= DB_TOL, f"{name} channel {c}: {diff} dB"


def test_log_mel_equals_librosa_44k_mono_and_batch_equals_per_clip(mono44):
    batch = log_mel(torch.from_numpy(mono44), 44100)  # defaults are the 2019 settings
    assert batch.shape == (12, 128, 431)
    for i, y in enumerate(mono44):
        ref = _librosa_db(y, 44100, **SETTINGS_2019)
        assert np.abs(batch[i].numpy() - ref).max() <= DB_TOL
        single = log_mel(y, 44100)
        torch.testing.assert_close(batch[i], single, rtol=0, atol=1e-5)
    # top_db is relative to each clip's own maximum: a quiet clip in the batch is not floored by a loud one
    quiet = mono44[1] * np.float32(0.01)
    out = log_mel(torch.from_numpy(np.stack([mono44[0], quiet])), 44100)
    ref = _librosa_db(quiet, 44100, **SETTINGS_2019)
    assert np.abs(out[1].numpy() - ref).max() <= DB_TOL
    assert ref.max() < out[0].max().item() - 20  # so a batch-wide floor would have differed


def test_log_mel_dense_path_equals_banded_path(mono44):
    """The dense-matmul path (used on GPUs and with autograd) equals the banded CPU path."""
    mel = MelSpectrogram(44100)
    x = torch.from_numpy(mono44[:3])
    banded = mel(x)
    dense = mel(x.clone().requires_grad_(True)).detach()
    torch.testing.assert_close(dense, banded, rtol=2e-5, atol=1e-12)


@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
@pytest.mark.parametrize("n", [32000, 2049, 2100, 5000])
def test_banded_path_pads_its_edge_frames_like_the_dense_path(mono44, pad_mode, n):
    """The CPU path reads inner frames straight from the signal and builds only the edge frames
    (zeros or reflection); that equals padding the whole signal (the dense path), also for
    signals barely longer than half a frame and ones with no inner frame."""
    mel = MelSpectrogram(32000, 4096, 472, 64, win_length=3072, mel_norm=None, pad_mode=pad_mode)
    x = torch.from_numpy(np.ascontiguousarray(mono44[:2, :n]))
    banded = mel(x)
    dense = mel(x.clone().requires_grad_(True)).detach()
    torch.testing.assert_close(dense, banded, rtol=2e-5, atol=1e-9 * float(dense.max()))


@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
def test_log_mel_equals_librosa_dcase2024_settings(clips, pad_mode):
    """DCASE 2024 baseline front end: 32 kHz, n_fft 4096, window 3072, hop 500, 256 HTK mels
    without filter normalisation (torchaudio MelSpectrogram's defaults: htk scale, norm=None, reflect padding)."""
    kw = dict(n_fft=4096, win_length=3072, hop_length=500, n_mels=256, mel_norm=None, pad_mode=pad_mode)
    for name, y, sr in clips[:6]:
        y32 = librosa.resample(y[0], orig_sr=sr, target_sr=32000)
        ref = _librosa_db(y32, 32000, n_fft=4096, win_length=3072, hop_length=500, n_mels=256, htk=True, norm=None,
                          pad_mode=pad_mode)
        exact = log_mel(y32, 32000, **kw, fft_float64=True).numpy()
        assert exact.shape == ref.shape == (256, 641)
        assert np.abs(exact - ref).max() <= DB_TOL, name
        # float32 FFT (default): equal within 1e-3 dB except bands far below the clip maximum (see MelSpectrogram)
        fast = log_mel(y32, 32000, **kw).numpy()
        loud = ref > ref.max() - 60.0
        assert np.abs(fast - ref)[loud].max() <= DB_TOL, name
        assert np.abs(fast - ref).max() <= 3 * DB_TOL, name


def test_mel_power_matches_librosa_magnitude_and_no_norm(mono44):
    y = mono44[3]
    ref = librosa.feature.melspectrogram(y=y, sr=44100, n_fft=2048, hop_length=1024, n_mels=64, htk=False, norm=None,
                                         power=1.0, fmin=50.0, fmax=16000.0)
    ours = MelSpectrogram(44100, 2048, 1024, 64, htk=False, mel_norm=None, power=1.0, fmin=50.0, fmax=16000.0)(
        torch.from_numpy(y)
    )
    np.testing.assert_allclose(ours.numpy(), ref, rtol=2e-3, atol=1e-6 * ref.max())
    # more mel bands than FFT bins can fill: librosa's empty filters stay exactly zero
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref = librosa.feature.melspectrogram(y=y[:16000], sr=16000, n_fft=256, hop_length=128, n_mels=96, htk=True)
        ours = MelSpectrogram(16000, 256, 128, 96)(torch.from_numpy(y[:16000])).numpy()
    assert (ref.max(axis=1) == 0).any() and np.array_equal(ours.max(axis=1) == 0, ref.max(axis=1) == 0)
    np.testing.assert_allclose(ours, ref, rtol=2e-3, atol=1e-6 * ref.max())


@pytest.fixture(scope="module")
def db_spec(mono44) -> np.ndarray:
    return _librosa_db(mono44[0], 44100, **SETTINGS_2019)


@pytest.mark.parametrize("width", [5, 9])
@pytest.mark.parametrize("order", [1, 2])
def test_deltas_equal_librosa(db_spec, mono44, width, order):
    ref = librosa.feature.delta(db_spec, width=width, order=order, axis=-1)
    np.testing.assert_allclose(deltas(db_spec, width, order=order).numpy(), ref, rtol=0, atol=1e-4)
    # and from asclab's own log-mel, within the dB tolerance
    ours = deltas(log_mel(mono44[0], 44100), width, order=order).numpy()
    assert np.abs(ours - ref).max() <= DB_TOL


def test_deltas_batched_over_leading_axes(db_spec):
    stack = np.stack([db_spec, db_spec[::-1].copy()])[None]  # (1, 2, 128, 431)
    out = deltas(stack, 9, order=2)
    assert out.shape == stack.shape
    np.testing.assert_allclose(out[0, 1].numpy(), librosa.feature.delta(stack[0, 1], order=2), atol=1e-4)


@pytest.mark.parametrize("padding", [True, False])
def test_deltas_over_many_row_blocks_and_into_out(padding):
    """deltas runs in cache-sized blocks of rows: 400 rows of 431 frames span several blocks,
    a non-contiguous input is fine, and ``out`` receives the same values."""
    x = np.random.default_rng(3).standard_normal((2, 200, 431)).astype(np.float32)
    ref = librosa.feature.delta(x, width=9, order=2, axis=-1)
    ref = ref if padding else ref[..., 4:-4]
    got = deltas(torch.from_numpy(x).transpose(0, 1), 9, padding, order=2).transpose(0, 1)
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-4)
    out = torch.full(ref.shape, float("nan"))
    assert deltas(x, 9, padding, order=2, out=out) is out
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-4)
    with pytest.raises(ValueError, match="out must be"):
        deltas(x, 9, padding, out=torch.empty(2, 200, 3))


def test_blocked_cpu_path_equals_the_traceable_one(mono44):
    """Eager CPU features (blocked, in place) equal the whole-array path taken under autograd
    or a trace: the log-mel dB scale and the stacked deltas."""
    ext = FeatureExtractor(FeatureConfig(sample_rate=44100, deltas=True)).eval()
    wave = torch.from_numpy(np.stack([mono44[0][:88200]] * 2))[:, None]
    mel = ext.mel(wave)
    fast = ext(wave)
    slow = ext.forward(wave, mel_power_hook=lambda p: p.clone().requires_grad_(True)).detach()
    assert fast.shape == slow.shape == (2, 3, 128, 87)
    np.testing.assert_allclose(fast.numpy(), slow.numpy(), rtol=0, atol=1e-5)
    assert torch.equal(ext.scale(mel), ext.scale(mel.clone().requires_grad_(True)).detach())


def _paper_delta(x: np.ndarray) -> np.ndarray:
    """McDonnell & Gao 2019's valid-region width-5 regression delta along the last axis."""
    n = x.shape[-1]
    return ((x[..., 3 : n - 1] - x[..., 1 : n - 3]) / 10.0) + ((x[..., 4:] - x[..., : n - 4]) / 5.0)


def test_deltas_without_padding_are_the_valid_region(db_spec):
    """padding=False keeps exactly the frames whose whole window is inside the input: it equals
    librosa's padded result without the (width - 1) / 2 edge frames on each side (431 -> 423 for width 9)."""
    valid = deltas(db_spec, 9, False).numpy()
    assert valid.shape == (128, 423)
    np.testing.assert_allclose(valid, librosa.feature.delta(db_spec, width=9)[:, 4:-4], atol=1e-4)
    valid2 = deltas(db_spec, 9, False, order=2).numpy()
    np.testing.assert_allclose(valid2, librosa.feature.delta(db_spec, width=9, order=2)[:, 4:-4], atol=1e-4)
    # width 5 is the 2019 code's regression (x[t+1]-x[t-1])/10 + (x[t+2]-x[t-2])/5
    np.testing.assert_allclose(deltas(db_spec, 5, False).numpy(), _paper_delta(db_spec), atol=1e-4)


def test_extractor_no_padding_reproduces_the_2019_paper_channels(mono44):
    """delta_width=5, delta_padding=False: 431 -> 423 frames (McDonnell & Gao 2019 sec. 3.1), with
    [log-mel cropped 4 per side, delta cropped 2 per side, delta of delta] stacked as channels."""
    cfg = FeatureConfig(deltas=True, delta_width=5, delta_padding=False)
    fe = FeatureExtractor(cfg)
    out = fe(torch.from_numpy(mono44[:2, None]))
    assert out.shape == (2, 3, 128, 423) == (2, *feature_shape(cfg, 441000))
    assert fe.frames_for(10.0) == frames_for(cfg, 10.0) == 423
    for i in range(2):
        lm = _librosa_db(mono44[i], 44100, **SETTINGS_2019)
        d = _paper_delta(lm)
        dd = _paper_delta(d)
        assert np.abs(out[i, 0].numpy() - lm[:, 4:-4]).max() <= DB_TOL
        assert np.abs(out[i, 1].numpy() - d[:, 2:-2]).max() <= DB_TOL
        assert np.abs(out[i, 2].numpy() - dd).max() <= DB_TOL


def test_extractor_stereo_deltas_gives_six_channels_in_documented_order(clips):
    name, y, sr = clips[1]
    assert y.shape[0] == 2 and sr == 48000, name
    cfg = FeatureConfig(sample_rate=48000, channels="stereo", deltas=True)
    out = FeatureExtractor(cfg)(torch.from_numpy(y[None]))
    assert out.shape == (1, 6, 128, 469) == (1, *feature_shape(cfg, y.shape[1]))
    for c in range(2):  # order [L, R, dL, dR, ddL, ddR]
        ref = _librosa_db(y[c], sr, **SETTINGS_2019)
        assert np.abs(out[0, c].numpy() - ref).max() <= DB_TOL
        assert np.abs(out[0, 2 + c].numpy() - librosa.feature.delta(ref)).max() <= DB_TOL
        assert np.abs(out[0, 4 + c].numpy() - librosa.feature.delta(ref, order=2)).max() <= DB_TOL
    mono = FeatureExtractor(FeatureConfig(sample_rate=48000, deltas=True))(torch.from_numpy(y[None]))
    assert mono.shape == (1, 3, 128, 469)
    assert np.abs(mono[0, 0].numpy() - _librosa_db(librosa.to_mono(y), sr, **SETTINGS_2019)).max() <= DB_TOL


def test_extractor_log_scales(mono44):
    y = mono44[5]
    mel = librosa.feature.melspectrogram(y=y, sr=44100, **SETTINGS_2019)
    wave = torch.from_numpy(y[None, None])
    log = FeatureExtractor(FeatureConfig(scale="log"))(wave)[0, 0].numpy()
    np.testing.assert_allclose(log, np.log(mel + 1e-8), rtol=0, atol=1e-3)
    for scale, ref in (("log01", np.log(mel + 1e-8)), ("db01", _librosa_db(y, 44100, **SETTINGS_2019))):
        x = FeatureExtractor(FeatureConfig(scale=scale))(wave)[0, 0].numpy()
        assert x.min() == 0.0 and x.max() == pytest.approx(1.0, abs=1e-6)
        np.testing.assert_allclose(x, (ref - ref.min()) / (ref.max() - ref.min()), atol=1e-4)


def test_hpss_equals_librosa_and_torch_median_equals_scipy(mono44):
    lm = np.log(librosa.feature.melspectrogram(y=mono44[2], sr=44100, **SETTINGS_2019) + 1e-8)
    s = ((lm - lm.min()) / (lm.max() - lm.min())).astype(np.float32)
    ref_h, ref_p = librosa.decompose.hpss(s, kernel_size=31)
    h, p = hpss(s, 31)
    np.testing.assert_allclose(h.numpy(), ref_h, atol=1e-4)
    np.testing.assert_allclose(p.numpy(), ref_p, atol=1e-4)
    ref_h2, ref_p2 = librosa.decompose.hpss(s, kernel_size=(17, 9), margin=2.0)
    h2, p2 = hpss(s, (17, 9), margin=2.0)
    np.testing.assert_allclose(h2.numpy(), ref_h2, atol=1e-4)
    np.testing.assert_allclose(p2.numpy(), ref_p2, atol=1e-4)
    x = torch.from_numpy(s)
    for size in (31, 8):
        torch.testing.assert_close(median_filter_last(x, size, "torch"), median_filter_last(x, size, "scipy"))
    with pytest.raises(ValueError):
        hpss(s - 0.5)


def test_extractor_hpss_channels_horvath_2021(mono44):
    """log-mel (natural log) scaled to [0, 1], then harmonic and percussive parts: 3 x 128 x 431."""
    cfg = FeatureConfig(scale="log01", hpss=True)
    out = FeatureExtractor(cfg)(torch.from_numpy(mono44[:2, None]))
    assert out.shape == (2, 3, 128, 431) == (2, *feature_shape(cfg, 441000))
    for i in range(2):
        ref_h, ref_p = librosa.decompose.hpss(out[i, 0].numpy(), kernel_size=31)
        np.testing.assert_allclose(out[i, 1].numpy(), ref_h, atol=1e-4)
        np.testing.assert_allclose(out[i, 2].numpy(), ref_p, atol=1e-4)


def test_feature_shape_matches_output_for_2024_one_second_segments():
    cfg = FeatureConfig(sample_rate=32000, n_fft=4096, win_length=3072, hop_length=500, n_mels=256, mel_norm=None,
                        scale="log", deltas=True, delta_padding=False)
    wave = torch.randn(2, 1, 32000)
    out = FeatureExtractor(cfg)(wave)
    assert out.shape == (2, *feature_shape(cfg, 32000)) == (2, 3, 256, 65 - 16)


def test_extractor_rejects_bad_settings_and_input():
    with pytest.raises(ConfigError):
        FeatureExtractor(FeatureConfig(scale="db", hpss=True))
    with pytest.raises(ConfigError):
        FeatureExtractor(FeatureConfig(deltas=True, delta_width=4))
    with pytest.raises(DataError):
        FeatureExtractor(FeatureConfig(channels="stereo"))(torch.zeros(1, 1, 44100))
    with pytest.raises(DataError):
        FeatureExtractor(FeatureConfig())(torch.zeros(1, 44100))
