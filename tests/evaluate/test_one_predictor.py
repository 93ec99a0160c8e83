"""One inference path (GUIDE.md): one place builds a model's windowing, one function groups clips by
device, and the Predictor's two ways in (files in windows, records) run the same network code."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from asclab.data.devices import group_by_device
from asclab.data.records import Record
from asclab.data.sinc_resample import _sinc_resample_numpy, sinc_resample_np
from asclab.evaluate.inference import Predictor, classify_records
from asclab.features.config import FeatureConfig
from asclab.models import create_model
from asclab.train.checkpoint import ModelFile, save_model_file

SRC = Path(__file__).resolve().parents[2] / "src" / "asclab"
CONSTRUCTION = re.compile(r"\bWindowing(\.for_model)?\(")


def test_windowing_is_built_from_a_model_in_one_place():
    sites = [f"{p.relative_to(SRC.parent)}:{i}" for p in sorted(SRC.rglob("*.py"))
             for i, line in enumerate(p.read_text().splitlines(), 1) if CONSTRUCTION.search(line)]
    assert len(sites) == 1 and sites[0].startswith("asclab/evaluate/inference.py:"), sites
    assert not any("Windowing.for_model" in p.read_text() for p in SRC.rglob("*.py"))


def test_group_by_device_keeps_order_and_sends_the_rest_to_the_general_model():
    ids = ["b", "a", None, "zz", "b", 3]
    assert group_by_device(ids) == {"b": [0, 4], "a": [1], None: [2], "zz": [3], 3: [5]}
    assert group_by_device(ids, own=["a", "b"]) == {"b": [0, 4], "a": [1], None: [2, 3, 5]}
    assert group_by_device([], own=["a"]) == {}


def test_numpy_sinc_resampler_equals_the_torch_one():
    """The torch-free path resamples sinc_hann models in numpy: the same kernel and convolution."""
    x = (0.3 * np.random.default_rng(0).standard_normal((2, 22050))).astype(np.float32)
    for orig, new in ((44100, 32000), (48000, 16000), (16000, 32000)):
        want = sinc_resample_np(x, orig, new)
        got = _sinc_resample_numpy(x, orig, new)
        assert got.shape == want.shape and got.dtype == np.float32
        assert np.abs(got - want).max() < 1e-5


def _container_file(tmp_path) -> Path:
    torch.manual_seed(0)
    fcfg = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=32)
    spec = {"name": "device_container", "base": {"name": "cp_mobile"}, "devices": ["a", "b"]}
    model = create_model("device_container", num_classes=3, in_chans=1, base={"name": "cp_mobile"},
                         devices=["a", "b"])
    with torch.no_grad():
        for p in model.device_models["b"].parameters():
            p.add_(0.05 * torch.randn_like(p))
    mf = ModelFile(model.eval().state_dict(), ["x", "y", "z"], fcfg.to_dict(), spec, {}, duration=1.0,
                   devices=["a", "b"])
    return save_model_file(mf, tmp_path / "c.ckpt")


def test_files_and_records_go_through_the_same_network(tmp_path, one_torch_thread):
    """A 1-s clip classified as a file (one window) and as a record gives the same probabilities,
    for each device of a device container; unknown devices get the general model."""
    pred = Predictor.load(_container_file(tmp_path))
    assert pred.routes_by_device and pred.devices == ("a", "b")
    rng = np.random.default_rng(1)
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.wav")
        sf.write(paths[-1], 0.1 * rng.standard_normal(16000), 16000)
    ids = ["b", "zz", "a"]
    files = pred.classify_files(paths, devices=ids, progress=False)
    records = [Record(p, "x", device=d) for p, d in zip(paths, ids)]
    out = classify_records(pred, records, progress=False)
    assert np.allclose(np.stack([r.probs for r in files]), out.probs, atol=1e-6)
    general = pred.for_device(None).classify_files(paths, progress=False)
    assert np.allclose(files[1].probs, general[1].probs, atol=1e-6)  # unknown id: the general model
    assert not np.allclose(files[0].probs, general[0].probs, atol=1e-4)  # device b: its own model
    assert out.logits.shape == (1, 3, 3)
    assert np.allclose(np.exp(out.logits[0]) / np.exp(out.logits[0]).sum(1, keepdims=True), out.probs, atol=1e-6)
