"""``asclab predict`` on real recordings of any format and length, in windows.

Checked against definitions: windows start every hop while a full window
fits, plus one zero-padded tail window when at least half a window of audio
is left; each window's probabilities are the model's output on exactly that
stretch of audio; the whole-file probabilities are the mean of the window
probabilities. The model has random weights: the labels mean nothing, the
pipeline must still be right.
"""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from asclab.cli import main
from asclab.data import load_audio
from asclab.evaluate.inference import Predictor
from asclab.evaluate.windowing import DEFAULT_WINDOW, Windowing, audio_files
from asclab.features import FeatureExtractor
from asclab.features.config import FeatureConfig
from asclab.models import create_model
from asclab.train.checkpoint import ModelFile, save_model_file
from conftest import shared_data

# a light front end keeps the test fast; the windowing does not depend on it
FEATURES = FeatureConfig(sample_rate=16000, n_fft=1024, hop_length=320, n_mels=64)
CLASSES = ["airport", "bus", "metro", "park", "tram"]


def _model_file(path, duration: float | None, calibration: np.ndarray, features: FeatureConfig = FEATURES):
    """A cp_mobile model file with random weights whose batch-norm statistics are set on
    ``calibration`` audio [B, C, N], so its outputs depend on the input."""
    torch.manual_seed(0)
    model = create_model("cp_mobile", num_classes=len(CLASSES), in_chans=features.in_chans)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration pass
    with torch.no_grad():
        model.train()(FeatureExtractor(features)(torch.from_numpy(calibration)))
    mf = ModelFile(state_dict=model.eval().state_dict(), classes=CLASSES, features=features.to_dict(),
                   model={"name": "cp_mobile"}, recipe={"name": "test"}, duration=duration)
    return save_model_file(mf, path)


def _expected_starts(n_samples: int, rate: int, window: float, hop: float) -> list[float]:
    """Window starts by the documented rule, computed in samples."""
    w, h = round(window * rate), round(hop * rate)
    starts = list(range(0, n_samples - w + 1, h)) if n_samples >= w else []
    covered = starts[-1] + w if starts else 0
    if covered < n_samples:
        tail = starts[-1] + h if starts else 0
        if not starts or n_samples - tail >= 0.5 * w:
            starts.append(tail)
    return [s / rate for s in starts]


@pytest.fixture(scope="module")
def tau_clips():
    root = shared_data("tau-samples")
    files = audio_files([root])
    infos = {f: sf.info(str(f)) for f in files}
    assert {(i.samplerate, i.channels) for i in infos.values()} >= {(48000, 2), (44100, 1)}
    return root, files


@pytest.fixture(scope="module")
def calibration(tau_clips):
    _, files = tau_clips
    return np.stack([load_audio(f, FEATURES.sample_rate, duration=1.0, offset=3.0) for f in files])


@pytest.fixture(scope="module")
def model_1s(tmp_path_factory, calibration):
    return _model_file(tmp_path_factory.mktemp("m") / "model.ckpt", 1.0, calibration)


def test_predict_real_tau_clips_folder(tau_clips, model_1s, tmp_path, capsys):
    root, files = tau_clips
    out_csv, timeline = tmp_path / "files.csv", tmp_path / "timeline.jsonl"
    assert main(["predict", str(model_1s), str(root), "--csv", str(out_csv), "--timeline", str(timeline),
                 "--quiet"]) == 0
    table = capsys.readouterr().out
    assert all(str(f) in table for f in files)  # the folder was searched recursively
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["file"] for r in rows] == [str(f) for f in files]
    assert list(rows[0])[4:] == CLASSES
    windows = [json.loads(line) for line in timeline.read_text().splitlines()]
    for r in rows:
        info = sf.info(r["file"])
        mine = [w for w in windows if w["file"] == r["file"]]
        # 48 kHz stereo and 44.1 kHz mono are both resampled to the model's 16 kHz
        starts = _expected_starts(math.ceil(info.frames * 16000 / info.samplerate), 16000, 1.0, 1.0)
        assert [w["start"] for w in mine] == pytest.approx(starts, abs=1e-6)
        assert int(r["n_windows"]) == len(mine)
        mean = np.mean([[w["probs"][c] for c in CLASSES] for w in mine], axis=0)
        assert np.allclose([float(r[c]) for c in CLASSES], mean, atol=2e-6)
        assert r["label"] == CLASSES[int(np.argmax(mean))]


def test_windows_hold_the_right_audio(tau_clips, model_1s):
    """Each window's probabilities are the model's output on that stretch of the file."""
    _, files = tau_clips
    stereo48 = next(f for f in files if sf.info(str(f)).channels == 2 and sf.info(str(f)).samplerate == 48000)
    pred = Predictor.load(model_1s)
    assert pred.windowing(0.75) == Windowing(16000, "mono", window=1.0, hop=0.75)
    (res,) = pred.classify_files([stereo48], hop=0.75, batch_size=4, progress=False)
    assert len(res.windows) == len(_expected_starts(160000, 16000, 1.0, 0.75))
    whole = load_audio(stereo48, 16000, channels="mono")  # one-shot resampling of the whole file
    for w in res.windows[:-1]:
        i = round(w.start * 16000)
        ref = pred.probs(torch.from_numpy(whole[None, :, i:i + 16000])).numpy()[0]
        assert np.allclose(w.probs, ref, atol=2e-3)  # streaming vs one-shot resampling differ at the edges
    assert not np.allclose(res.windows[0].probs, res.windows[3].probs, atol=1e-4)  # different audio, different output


@pytest.fixture(scope="module")
def long_recording(tau_clips, tmp_path_factory):
    """About 2 minutes: the real clips end to end, written as 44.1 kHz stereo 16-bit."""
    _, files = tau_clips
    parts = [load_audio(f, 44100, channels="stereo") for f in files]
    wave = np.concatenate(parts, axis=1)
    path = tmp_path_factory.mktemp("long") / "long.wav"
    sf.write(path, wave.T, 44100, subtype="PCM_16")
    return path, wave.shape[1]


def test_long_recording_timeline(long_recording, tmp_path, calibration):
    path, n = long_recording
    ckpt = _model_file(tmp_path / "m10.ckpt", None, calibration)  # no clip length in the file: 10-s windows
    timeline = tmp_path / "t.csv"
    assert main(["predict", str(ckpt), str(path), "--hop", "4", "--timeline", str(timeline), "--jsonl",
                 "--quiet"]) == 0
    rows = list(csv.DictReader(timeline.open()))
    seconds = n / 44100
    starts = _expected_starts(round(seconds * 16000), 16000, DEFAULT_WINDOW, 4.0)
    assert seconds > 110 and len(rows) == len(starts)
    assert [float(r["start"]) for r in rows] == pytest.approx(starts, abs=1e-3)
    assert [float(r["end"]) for r in rows] == pytest.approx([min(s + 10.0, seconds) for s in starts], abs=1e-3)
    assert [int(r["window"]) for r in rows] == list(range(len(rows)))


def test_jsonl_whole_file_is_mean_of_windows(long_recording, model_1s, capsys):
    path, _ = long_recording
    assert main(["predict", str(model_1s), str(path), "--jsonl", "--hop", "2.5", "--quiet"]) == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    d = json.loads(line)
    probs = np.array([[w["probs"][c] for c in CLASSES] for w in d["windows"]])
    assert d["n_windows"] == len(d["windows"]) == len(_expected_starts(round(d["duration"] * 16000), 16000, 1.0, 2.5))
    assert np.allclose([d["probs"][c] for c in CLASSES], probs.mean(axis=0), atol=2e-6)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_short_file_and_tail_rules(tmp_path, model_1s):
    pred = Predictor.load(model_1s)
    rng = np.random.default_rng(0)
    for seconds, expect in ((0.3, [0.0]), (2.4, [0.0, 1.0]), (2.6, [0.0, 1.0, 2.0])):
        f = tmp_path / f"x{seconds}.flac"
        sf.write(f, 0.1 * rng.standard_normal(int(seconds * 22050)), 22050)
        (res,) = pred.classify_files([f], progress=False)
        assert [w.start for w in res.windows] == expect
        assert res.windows[-1].end == pytest.approx(min(expect[-1] + 1.0, seconds), abs=1e-4)


def test_bad_files_error_or_skip(tmp_path, model_1s, tau_clips, capsys):
    _, files = tau_clips
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(100))
    assert main(["predict", str(model_1s), str(files[0]), str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(bad) in err
    assert main(["predict", str(model_1s), str(files[0]), str(bad), str(files[1]), "--skip-bad", "--quiet"]) == 0
    cap = capsys.readouterr()
    assert str(files[0]) in cap.out and str(files[1]) in cap.out and str(bad) not in cap.out
    assert "skipped 1 unreadable file(s), classified 2" in cap.err and str(bad) in cap.err
    assert main(["predict", str(model_1s), str(tmp_path / "missing.wav")]) == 2
    assert "missing.wav: audio file not found" in capsys.readouterr().err
    assert main(["predict", str(model_1s), str(tmp_path / "missing.wav"), str(files[0]), "--skip-bad", "--quiet"]) == 0
    assert "skipped 1 unreadable file(s), classified 1" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(model_1s), str(tmp_path / "empty")]) == 2
    assert "no audio files" in capsys.readouterr().err
