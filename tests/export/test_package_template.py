"""The DCASE 2025 package template (asclab.export.dcase2025_package), imported directly, against asclab itself."""
from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from asclab.data.sinc_resample import sinc_resample
from asclab.export import package
from asclab.export.dcase2025_package import _common, _frontend, _net, evaluate_submission, submission_module
from asclab.features.config import FeatureConfig
from asclab.features.extractor import FeatureExtractor
from asclab.interop.cpjku import BASELINE_FEATURES, TAU_CLASSES
from asclab.models import create_model

ALLOWED = {"torch", "numpy", "soundfile"}
DB_FEATURES = {**BASELINE_FEATURES, "scale": "db", "top_db": 80.0, "mel_fb": "librosa", "pad_mode": "constant"}


def _template_modules() -> list[Path]:
    return sorted(p for p in package.TEMPLATE.glob("*.py") if p.name != "__init__.py")


def test_template_files_exist_and_modules_import_only_torch_numpy_soundfile_stdlib_or_each_other():
    names = {p.name for p in _template_modules()}
    assert names == set(package.TEMPLATE_FILES), names  # every module is copied, every copied file exists
    assert (package.TEMPLATE / "pyproject.toml.in").is_file()
    siblings = {p.stem for p in _template_modules()}
    for path in _template_modules():
        text = path.read_text()
        assert "asclab" not in text and "__PKG__" not in text and "__MODULE__" not in text, path.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level:  # relative: only the template's own modules
                assert node.module is None and {a.name for a in node.names} <= siblings, (path.name, ast.dump(node))
                continue
            elif isinstance(node, ast.ImportFrom):
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                assert top in ALLOWED or top in sys.stdlib_module_names, (path.name, top)


@pytest.mark.parametrize(("orig", "new"), [(44100, 32000), (48000, 32000), (16000, 32000), (32000, 32000)])
def test_template_resampler_equals_asclab_sinc_resample(orig, new, one_torch_thread):
    wave = torch.from_numpy(np.random.default_rng(orig).standard_normal(orig // 4).astype(np.float32))
    got = _frontend.resample(wave, orig, new)
    want = sinc_resample(wave, orig, new)
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=0, atol=1e-6), float((got - want).abs().max())


@pytest.mark.parametrize("features", [BASELINE_FEATURES, DB_FEATURES], ids=["log-torchaudio-fb", "db-librosa-fb"])
def test_template_log_mel_equals_asclab_feature_extractor(features, one_torch_thread):
    cfg = FeatureConfig.from_dict(features)
    fx = FeatureExtractor(cfg)
    front = _frontend.LogMel(package._front_end(SimpleNamespace(fcfg=cfg)), fx.mel.window, fx.mel.filterbank)
    rng = np.random.default_rng(1)
    tone = np.sin(2 * np.pi * 440 * np.arange(cfg.sample_rate) / cfg.sample_rate)
    wave = torch.from_numpy(np.stack([0.1 * tone + 0.01 * rng.standard_normal(cfg.sample_rate),
                                      0.05 * rng.standard_normal(cfg.sample_rate)]).astype(np.float32))
    with torch.no_grad():
        got = front(wave)
        want = fx(wave[:, None])
    assert got.shape == want.shape == (2, 1, cfg.n_mels, fx.n_frames(cfg.sample_rate))
    assert float((got - want).abs().max()) < 1e-3


def test_template_read_mono_is_the_channel_mean(tmp_path):
    x = np.random.default_rng(2).uniform(-0.5, 0.5, (1000, 2)).astype(np.float32)
    sf.write(tmp_path / "s.wav", x, 44100, subtype="FLOAT")
    wave, sr = _frontend.read_mono(tmp_path / "s.wav")
    assert sr == 44100 and wave.dtype == torch.float32
    assert torch.allclose(wave, torch.from_numpy(x.mean(axis=1)), atol=1e-7)


def _randomise_batchnorm(net: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(3)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(0.1 * torch.randn(m.bias.shape, generator=g))


@pytest.mark.parametrize("kw", [{"base_channels": 32},
                                {"base_channels": 24, "blocks_per_stage": [2, 2, 1], "expansion": 2.0,
                                 "strides": {2: (2, 1), 4: (1, 2)}}], ids=["baseline", "custom"])
def test_template_cp_mobile_with_asclab_weights_gives_asclab_logits(kw, one_torch_thread):
    torch.manual_seed(0)
    ours = create_model("device_container", num_classes=10, in_chans=1, base={"name": "cp_mobile", **kw},
                        devices=["a", "s1"]).eval()
    for net in ours.members().values():
        _randomise_batchnorm(net)
    meta_model = {"name": "device_container", "base": {"name": "cp_mobile", **kw}, "devices": ["a", "s1"]}
    arch = package._architecture(SimpleNamespace(meta=SimpleNamespace(model=meta_model), classes=TAU_CLASSES,
                                                 fcfg=SimpleNamespace(in_chans=1)))
    theirs = _net.DeviceModels(arch, ["a", "s1"]).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 1, 256, 65)
    with torch.no_grad():
        for dev in ("a", "s1", "unknown"):
            want = (ours.device_models[dev] if dev in ours.device_models else ours.base)(x)
            got = theirs.get_model_for_device(dev)(x)
            assert got.shape == (2, 10)
            assert torch.allclose(got, want, rtol=0, atol=1e-5), (dev, float((got - want).abs().max()))


def test_template_api_from_a_payload_file(tmp_path, one_torch_thread):
    """_common over a payload like write_package's, and the submission module's own-name default weights."""
    torch.manual_seed(0)
    cfg = FeatureConfig.from_dict(BASELINE_FEATURES)
    fx = FeatureExtractor(cfg)
    net = create_model("cp_mobile", num_classes=10, in_chans=1).eval()
    arch = package._architecture(SimpleNamespace(meta=SimpleNamespace(model={"name": "cp_mobile"}),
                                                 classes=TAU_CLASSES, fcfg=SimpleNamespace(in_chans=1)))
    payload = {"classes": list(TAU_CLASSES), "precision": "fp32", "devices": [], "models": {"base": net.state_dict()},
               "window": fx.mel.window, "filterbank": fx.mel.filterbank, "arch": arch,
               "front_end": package._front_end(SimpleNamespace(fcfg=cfg))}
    torch.save(payload, tmp_path / "w.pt")
    wav = tmp_path / "x.wav"
    sf.write(wav, (0.01 * np.random.default_rng(0).standard_normal(44100)).astype(np.float32), 44100)
    logits, classes = submission_module.predict([str(wav)], ["b"], model_file_path=str(tmp_path / "w.pt"),
                                                use_cuda=False)
    assert classes == TAU_CLASSES and logits[0].shape == (10,)
    wave = sinc_resample(torch.from_numpy(sf.read(wav, dtype="float32")[0]), 44100, 32000)
    with torch.no_grad():
        want = net(fx(wave[None, None]))[0]
    assert torch.allclose(logits[0], want, atol=1e-4), float((logits[0] - want).abs().max())
    model = _common.load_model(tmp_path / "w.pt")
    assert _common.get_model_for_device(model, "b") is model.model.base
    assert submission_module.DEFAULT_WEIGHTS == "submission_module.pt"  # in a package: NAME_<i>.pt


def test_template_fp16_networks_go_channels_last_only_with_identical_logits(tmp_path, one_torch_thread):
    """fp16 packages put their networks in channels_last where the probe's logits stay bit-equal (issue 23)."""
    torch.manual_seed(0)
    cfg = FeatureConfig.from_dict(BASELINE_FEATURES)
    fx = FeatureExtractor(cfg)
    nets = {k: create_model("cp_mobile", num_classes=10, in_chans=1).eval() for k in ("base", "a")}
    arch = package._architecture(SimpleNamespace(meta=SimpleNamespace(model={"name": "cp_mobile"}),
                                                 classes=TAU_CLASSES, fcfg=SimpleNamespace(in_chans=1)))
    payload = {"classes": list(TAU_CLASSES), "precision": "fp16", "devices": ["a"],
               "models": {k: {n: t.half() for n, t in net.state_dict().items()} for k, net in nets.items()},
               "window": fx.mel.window, "filterbank": fx.mel.filterbank, "arch": arch,
               "front_end": package._front_end(SimpleNamespace(fcfg=cfg))}
    model = _common.Submission(payload)
    x = model.preprocess(torch.randn(2, 32000, generator=torch.Generator().manual_seed(1)) * 0.1)
    conv = next(m for m in model.model.base.modules() if isinstance(m, torch.nn.Conv2d))
    layout = conv.weight.is_contiguous(memory_format=torch.channels_last) and conv.weight.dim() == 4
    with torch.no_grad():
        got = {d: _common.get_model_for_device(model, d)(x) for d in ("a", "b")}
        model.model.to(memory_format=torch.contiguous_format)
        want = {d: _common.get_model_for_device(model, d)(x) for d in ("a", "b")}
    assert _common._channels_last_if_exact(model.model, 256) == layout
    for d in ("a", "b"):  # on another input than the probe, too
        assert torch.equal(got[d], want[d]) or not layout, d


def test_evaluate_submission_takes_the_one_package_folder_beside_it(tmp_path):
    with pytest.raises(SystemExit, match="none"):
        evaluate_submission.package_beside(tmp_path)
    (tmp_path / "Doe_LAB_task1" / "ckpts").mkdir(parents=True)
    (tmp_path / "Doe_LAB_task1" / "__init__.py").write_text("")
    (tmp_path / "build").mkdir()  # not a package
    assert evaluate_submission.package_beside(tmp_path) == "Doe_LAB_task1"
    (tmp_path / "Other_LAB_task1" / "ckpts").mkdir(parents=True)
    (tmp_path / "Other_LAB_task1" / "__init__.py").write_text("")
    with pytest.raises(SystemExit, match="--package"):
        evaluate_submission.package_beside(tmp_path)
