"""The DCASE 2025 task 1 style inference API over an asclab model file."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from asclab.cli import main
from asclab.errors import ConfigError
from asclab.export import dcase_api
from asclab.features.config import FeatureConfig
from asclab.models import create_model
from asclab.train.checkpoint import ModelFile, save_model_file

CLASSES = ["airport", "bus", "park"]
FEATURES = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=64)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dcase")
    torch.manual_seed(0)
    model = create_model("cp_mobile", num_classes=len(CLASSES), in_chans=1)
    with torch.no_grad():
        for k, t in model.state_dict().items():
            if k.endswith("running_mean"):
                t.normal_(0.0, 0.5)
    ckpt = save_model_file(ModelFile(model.state_dict(), CLASSES, FEATURES.to_dict(), {"name": "cp_mobile"}, {},
                                     duration=1.0, devices=["a", "b"]), tmp / "model.ckpt")
    rng = np.random.default_rng(0)
    files = []
    for i, seconds in enumerate((1.0, 1.0, 2.4)):  # two 1-s clips (one window) and a 2.4-s file (windows)
        f = tmp / f"{i}.wav"
        sf.write(f, (0.2 * rng.standard_normal((int(seconds * 44100), 2))).astype(np.float32), 44100)
        files.append(str(f))
    return ckpt, files


def test_predict_returns_logits_in_class_order(setup, capsys):
    ckpt, files = setup
    logits, order = dcase_api.predict(files, ["a", "b", "s4"], model_file_path=ckpt, use_cuda=False)
    assert order == CLASSES and logits.shape == (3, len(CLASSES)) and logits.dtype == torch.float32
    assert [int(row.argmax()) for row in logits] == logits.argmax(1).tolist()  # rows iterate like the challenge's list
    assert main(["predict", str(ckpt), *files, "--jsonl", "--quiet"]) == 0
    ref = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert np.allclose(torch.softmax(logits, 1).numpy(), [[d["probs"][c] for c in CLASSES] for d in ref], atol=2e-6)


def test_load_inputs_and_device_model(setup, monkeypatch):
    ckpt, files = setup
    monkeypatch.setenv(dcase_api.MODEL_ENV, str(ckpt))
    model = dcase_api.load_model()  # from $ASCLAB_MODEL
    assert model.class_order == CLASSES and model.devices == ["a", "b"]
    inputs = dcase_api.load_inputs(files, ["a", "b", "c"], model)
    assert [x.shape[0] for x in inputs] == [1, 1, 2]  # windows per file: 1 s, 1 s, 2.4 s (0.4-s tail dropped)
    assert all(tuple(x.shape[1:3]) == (1, 64) for x in inputs)
    logits, _ = dcase_api.predict(files, None, model=model)
    for dev, x, row in zip(["a", "b", "unknown"], inputs, logits):
        net = dcase_api.get_model_for_device(model, dev)
        with torch.no_grad():
            probs = torch.softmax(net(x), dim=1).mean(0)
        assert torch.allclose(torch.log(probs), row, atol=1e-5)


def test_errors(setup, monkeypatch):
    ckpt, files = setup
    monkeypatch.delenv(dcase_api.MODEL_ENV, raising=False)
    with pytest.raises(ConfigError, match="ASCLAB_MODEL"):
        dcase_api.load_model()
    with pytest.raises(ConfigError, match="device ids"):
        dcase_api.predict(files, ["a"], model_file_path=ckpt)
