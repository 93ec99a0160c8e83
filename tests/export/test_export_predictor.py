"""The torch-free ONNX predictor gives what ``asclab predict`` gives, in a process where torch cannot load."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch

from asclab.cli import main
from asclab.data import load_audio
from asclab.errors import AsclabError, CheckpointError
from asclab.export import OnnxPredictor
from asclab.export.onnx_export import export_onnx
from asclab.features import FeatureExtractor
from asclab.features.config import FeatureConfig
from asclab.models import create_model
from asclab.train.checkpoint import ModelFile, save_model_file
from conftest import shared_data

FEATURES = FeatureConfig(sample_rate=16000, n_fft=1024, hop_length=320, n_mels=64)
CLASSES = ["airport", "bus", "metro", "park", "tram"]

NO_TORCH = """
import sys
sys.modules["torch"] = None  # any "import torch" now raises ImportError
"""


def _model_file(path, calibration: np.ndarray, duration: float = 2.0):
    """cp_mobile with random weights; batch-norm statistics set on real audio so outputs vary."""
    torch.manual_seed(1)
    model = create_model("cp_mobile", num_classes=len(CLASSES), in_chans=1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        model.train()(FeatureExtractor(FEATURES)(torch.from_numpy(calibration)))
    return save_model_file(ModelFile(model.eval().state_dict(), CLASSES, FEATURES.to_dict(), {"name": "cp_mobile"},
                                     {}, duration=duration), path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = shared_data("tau-samples")
    all_files = sorted(root.rglob("*.wav"))
    calibration = np.stack([load_audio(f, 16000, duration=2.0, offset=4.0) for f in all_files])
    # 48 kHz stereo 24-bit, 44.1 kHz mono 24-bit, 44.1 kHz stereo 16-bit
    files = [f for f in all_files if f.parent.name != "tut2018-48k-stereo"] + \
        [f for f in all_files if f.parent.name == "tut2018-48k-stereo"][:2]
    tmp = tmp_path_factory.mktemp("onnx")
    ckpt = _model_file(tmp / "model.ckpt", calibration)
    export_onnx(ckpt, tmp / "model.onnx")
    return root, files, ckpt, tmp / "model.onnx"


def test_torch_free_predictor_matches_asclab_predict(exported, capsys):
    root, files, ckpt, onnx_path = exported
    assert main(["predict", str(ckpt), *map(str, files), "--hop", "1.5", "--jsonl", "--quiet"]) == 0
    ref = {d["file"]: d for d in map(json.loads, capsys.readouterr().out.splitlines())}
    assert len(ref) == len(files)
    spread = np.ptp([[d["probs"][c] for c in CLASSES] for d in ref.values()], axis=0).max()
    assert spread > 1e-3  # the outputs depend on the input, so agreement below means something

    script = NO_TORCH + textwrap.dedent(f"""
        import json
        import asclab, asclab.export
        from asclab.export import OnnxPredictor
        p = OnnxPredictor({str(onnx_path)!r}, hop=1.5)
        out = [r.to_dict() for r in p.predict_files({[str(f) for f in files]!r})]
        label, probs = p.predict_file(out[0]["file"])
        assert label == out[0]["label"] and abs(float(probs.sum()) - 1) < 1e-9
        assert sys.modules["torch"] is None
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    assert [d["file"] for d in got] == list(ref)
    for d in got:
        r = ref[d["file"]]
        assert [w["start"] for w in d["windows"]] == [w["start"] for w in r["windows"]]
        assert np.allclose([d["probs"][c] for c in CLASSES], [r["probs"][c] for c in CLASSES], atol=1e-4)
        top2 = sorted(r["probs"].values())[-2:]
        if top2[1] - top2[0] > 1e-3:  # a clear decision must be the same decision
            assert d["label"] == r["label"]


def test_torch_is_really_blocked_in_the_subprocess():
    """The blocking used above works: importing the torch-based export module fails there."""
    script = NO_TORCH + "import asclab.export.onnx_export\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "torch" in proc.stderr


def test_predictor_refuses_features_input_and_foreign_files(exported, tmp_path):
    _, _, ckpt, _ = exported
    feats = tmp_path / "f.onnx"
    export_onnx(ckpt, feats, input_kind="features")
    with pytest.raises(AsclabError, match="waveform-input export"):
        OnnxPredictor(feats)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="junk.onnx"):
        OnnxPredictor(junk)
    # an ONNX model without asclab metadata
    import onnx
    m = onnx.load(str(feats))
    del m.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(m, str(bare))
    with pytest.raises(CheckpointError, match="not an asclab ONNX export"):
        OnnxPredictor(bare)


# ---- a DCASE 2025-style model: sinc_hann resampler, whole-file inference ---------------------

SINC = FeatureConfig(sample_rate=16000, n_fft=1024, hop_length=320, n_mels=64, resampler="sinc_hann")


@pytest.fixture(scope="module")
def whole_file_sinc(tmp_path_factory):
    """A model file whose recipe says ``inference.whole_file: true`` and whose front end resamples
    with ``sinc_hann``, its ONNX export, and real clips at 48 and 44.1 kHz (cut to 3 s to keep it short)."""
    root = shared_data("tau-samples")
    sources = sorted(root.rglob("*.wav"))
    tmp = tmp_path_factory.mktemp("sinc")
    files = []
    for i, f in enumerate([s for s in sources if s.parent.name != "tut2018-48k-stereo"] +
                          [s for s in sources if s.parent.name == "tut2018-48k-stereo"][:2]):
        wave, rate = sf.read(str(f), dtype="float32")
        out = tmp / f"{i}-{f.stem}.wav"
        sf.write(str(out), wave[int(2.0 * rate):int((5.0 + 0.37 * i) * rate)], rate)  # lengths differ
        files.append(out)
    calibration = np.stack([load_audio(f, 16000, duration=2.0, resampler="sinc_hann") for f in files])
    torch.manual_seed(2)
    model = create_model("cp_mobile", num_classes=len(CLASSES), in_chans=1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        model.train()(FeatureExtractor(SINC)(torch.from_numpy(calibration)))
    ckpt = save_model_file(ModelFile(model.eval().state_dict(), CLASSES, SINC.to_dict(), {"name": "cp_mobile"},
                                     {"inference": {"whole_file": True}}, duration=1.0), tmp / "model.ckpt")
    export_onnx(ckpt, tmp / "model.onnx")
    return files, ckpt, tmp / "model.onnx"


def _predict_jsonl(capsys, ckpt, files, *extra) -> dict:
    assert main(["predict", str(ckpt), *map(str, files), "--jsonl", "--quiet", *extra]) == 0
    return {d["file"]: d for d in map(json.loads, capsys.readouterr().out.splitlines())}


def _same_windows_and_decisions(got: list[dict], ref: dict) -> None:
    assert [d["file"] for d in got] == list(ref)
    for d in got:
        r = ref[d["file"]]
        assert [(w["start"], w["end"]) for w in d["windows"]] == [(w["start"], w["end"]) for w in r["windows"]]
        assert np.allclose([d["probs"][c] for c in CLASSES], [r["probs"][c] for c in CLASSES], atol=1e-4)
        for w, v in zip(d["windows"], r["windows"]):
            assert np.allclose([w["probs"][c] for c in CLASSES], [v["probs"][c] for c in CLASSES], atol=1e-4)
        top2 = sorted(r["probs"].values())[-2:]
        if top2[1] - top2[0] > 1e-3:
            assert d["label"] == r["label"]


def test_onnx_predictor_windows_a_whole_file_sinc_model_as_asclab_predict(whole_file_sinc, capsys):
    """Same settings from the model file and from its export; one input per recording (no hop) and
    sinc-resampled windows (with a hop), with the same decisions, in this process and without torch."""
    from asclab.evaluate.inference import Predictor

    files, ckpt, onnx_path = whole_file_sinc
    torch_pred, onnx_pred = Predictor.load(ckpt), OnnxPredictor(onnx_path)
    assert onnx_pred.backend.name.startswith("onnxruntime") and torch_pred.backend.name != onnx_pred.backend.name
    for hop in (None, 0.5):
        assert onnx_pred.windowing(hop) == torch_pred.windowing(hop)
    assert torch_pred.windowing().whole_file and torch_pred.windowing().resampler == "sinc_hann"

    ref = _predict_jsonl(capsys, ckpt, files)
    assert all(d["n_windows"] == 1 and d["windows"][0]["end"] == d["duration"] for d in ref.values())
    spread = np.ptp([[d["probs"][c] for c in CLASSES] for d in ref.values()], axis=0).max()
    assert spread > 1e-3  # the outputs depend on the input
    _same_windows_and_decisions([r.to_dict() for r in onnx_pred.predict_files(files)], ref)

    ref_hop = _predict_jsonl(capsys, ckpt, files, "--hop", "0.5")
    assert all(d["n_windows"] > 1 for d in ref_hop.values())
    _same_windows_and_decisions([r.to_dict() for r in OnnxPredictor(onnx_path, hop=0.5).predict_files(files)],
                                ref_hop)

    script = NO_TORCH + textwrap.dedent(f"""
        import json
        from asclab.export import OnnxPredictor
        out = [r.to_dict() for r in OnnxPredictor({str(onnx_path)!r}).predict_files({[str(f) for f in files]!r})]
        assert sys.modules["torch"] is None
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    _same_windows_and_decisions(json.loads(proc.stdout), ref)
