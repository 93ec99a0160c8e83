"""DeviceContainer: routing by device id, unknown devices to the general model, model files, complexity."""
from __future__ import annotations

import torch

from asclab.workflows.complexity import complexity_targets
from asclab.evaluate.inference import Predictor
from asclab.models import create_model
from asclab.models.device_container import DeviceContainer
from asclab.train.checkpoint import ModelFile, save_model_file

FEATURES = {"sample_rate": 32000, "n_fft": 4096, "win_length": 3072, "hop_length": 500, "n_mels": 256,
            "mel_norm": None, "pad_mode": "reflect", "scale": "log", "log_eps": 1e-5}


def _container(seed: int = 0) -> DeviceContainer:
    torch.manual_seed(seed)
    c = create_model("device_container", num_classes=4, in_chans=1, base={"name": "cp_mobile"}, devices=["a", "b"])
    for m in c.modules():  # distinct BN statistics per member, so routing shows in the outputs
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    return c.eval()


def test_routes_each_clip_to_its_device_model(one_torch_thread):
    c = _container()
    x = torch.randn(5, 1, 32, 20)
    ids = ["a", "b", None, "zz", "a"]
    with torch.no_grad():
        got = c(x, ids)
        want = torch.cat([c.model_for_device(d)(x[i:i + 1]) for i, d in enumerate(ids)])
        assert torch.allclose(got, want, atol=1e-5)
        assert torch.allclose(c(x), c.base(x))  # no ids: all through the general model
        assert not torch.allclose(c.device_models["a"](x), c.base(x))  # the members really differ
    assert c.model_for_device("zz") is c.base and c.model_for_device(None) is c.base
    assert c.model_for_device("b") is c.device_models["b"]


def test_model_file_roundtrip_and_per_device_complexity(tmp_path, one_torch_thread):
    c = _container()
    model_cfg = {"name": "device_container", "base": {"name": "cp_mobile"}, "devices": ["a", "b"]}
    recipe = {"name": "t", "features": FEATURES, "model": model_cfg}
    mf = ModelFile(state_dict=c.state_dict(), classes=list("wxyz"), features=FEATURES, model=model_cfg,
                   recipe=recipe, duration=1.0, devices=["a", "b"])
    path = save_model_file(mf, tmp_path / "m.ckpt")
    pred = Predictor.load(path)
    assert isinstance(pred.model, DeviceContainer) and pred.model.devices == ["a", "b"]
    x = torch.randn(2, 1, 256, 65)
    with torch.no_grad():
        assert torch.allclose(pred.model.device_models["b"](x), c.device_models["b"](x), atol=1e-6)
    reports = complexity_targets([str(path)])
    assert sorted(reports) == sorted(f"{path} [{k}]" for k in ("base", "a", "b"))
    for r in reports.values():  # each member is one cp_mobile with 4 classes, counted alone
        assert r["params"] == sum(p.numel() for p in c.base.parameters())


def test_dcase_api_routes_files_by_device_id(tmp_path, one_torch_thread):
    import numpy as np
    import soundfile as sf

    from asclab.export import dcase_api

    c = _container()
    model_cfg = {"name": "device_container", "base": {"name": "cp_mobile"}, "devices": ["a", "b"]}
    recipe = {"name": "t", "features": FEATURES, "model": model_cfg, "inference": {"whole_file": True}}
    path = save_model_file(ModelFile(state_dict=c.state_dict(), classes=list("wxyz"), features=FEATURES,
                                     model=model_cfg, recipe=recipe, duration=1.0, devices=["a", "b"]),
                           tmp_path / "m.ckpt")
    wav = tmp_path / "x.wav"
    sf.write(wav, (0.1 * np.random.default_rng(0).standard_normal(32000)).astype(np.float32), 32000)
    model = dcase_api.load_model(path)
    assert dcase_api.get_model_for_device(model, "b") is model.network.device_models["b"]
    assert dcase_api.get_model_for_device(model, "unknown") is model.network.base
    logits, _ = dcase_api.predict([wav, wav, wav], ["a", "zz", "b"], model=model)
    pred = Predictor.load(path)
    x = pred.features(torch.from_numpy(pred.load_wave(wav, duration=None))[None])
    with torch.no_grad():
        for row, dev in zip(logits, ["a", None, "b"]):
            want = torch.log_softmax(pred.model.model_for_device(dev)(x), dim=1)[0]
            assert torch.allclose(row, want, atol=1e-4)
    assert not torch.allclose(logits[0], logits[2], atol=1e-3)


def test_submit_uses_the_listed_device_of_each_file(tmp_path, one_torch_thread):
    """DCASE 2025 evaluation listing (filename, device_id): each file through its device's model."""
    import numpy as np
    import soundfile as sf

    from asclab.workflows.submit import write_submission

    c = _container()
    model_cfg = {"name": "device_container", "base": {"name": "cp_mobile"}, "devices": ["a", "b"]}
    recipe = {"name": "t", "features": FEATURES, "model": model_cfg, "inference": {"whole_file": True}}
    half = {k: v.half() if v.is_floating_point() else v for k, v in c.state_dict().items()}  # 2025: fp16 storage
    path = save_model_file(ModelFile(state_dict=half, classes=list("wxyz"), features=FEATURES,
                                     model=model_cfg, recipe=recipe, duration=1.0, devices=["a", "b"]),
                           tmp_path / "m.ckpt")
    ev = tmp_path / "eval"
    (ev / "audio").mkdir(parents=True)
    (ev / "evaluation_setup").mkdir()
    sf.write(ev / "audio" / "0.wav", (0.1 * np.random.default_rng(1).standard_normal(32000)).astype(np.float32), 32000)
    devices = ["a", "b", "zz"]
    for i in (1, 2):  # the same clip under three names, one per device id
        (ev / "audio" / f"{i}.wav").write_bytes((ev / "audio" / "0.wav").read_bytes())
    (ev / "evaluation_setup" / "fold1_test.csv").write_text(
        "filename\tdevice_id\n" + "".join(f"audio/{i}.wav\t{d}\n" for i, d in enumerate(devices)))
    write_submission(path, ev, tmp_path / "out.csv", year=2025, progress=False)
    rows = [line.split("\t") for line in (tmp_path / "out.csv").read_text().splitlines()[1:]]
    pred = Predictor.load(path)
    x = pred.features(torch.from_numpy(pred.load_wave(ev / "audio" / "0.wav", duration=None))[None])
    with torch.no_grad():
        for row, dev in zip(rows, ["a", "b", None]):
            want = torch.softmax(pred.model.model_for_device(dev)(x), dim=1)[0].numpy()
            assert np.allclose([float(v) for v in row[2:]], want, atol=2e-6), dev
    assert rows[0][2:] != rows[1][2:]
