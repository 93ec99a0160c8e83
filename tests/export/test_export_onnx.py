"""ONNX export: every registered model, both input kinds, the self-check, fp16 and int8 variants.

The reference is always the torch model with asclab's own (fast) feature
extractor; onnxruntime runs the exported files on fresh random inputs of
other batch sizes and lengths than the export saw (dynamic axes).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from asclab.cli import main
from asclab.config import list_recipes, load_recipe
from asclab.errors import AsclabError
from asclab.export import onnx_export
from asclab.export.frontend import ExportableFeatures
from asclab.features import FeatureExtractor
from asclab.features.config import FeatureConfig
from asclab.models import create_model, list_models
from asclab.train.checkpoint import ModelFile, save_model_file
from conftest import SHARED_DATA

CLASSES = [f"class{i}" for i in range(4)]


def _recipe_features(model_name: str | None = None, recipe: str | None = None) -> FeatureConfig:
    if recipe is None:
        recipe = next((r for r in sorted(list_recipes()) if load_recipe(r)["model"]["name"] == model_name), None)
    return FeatureConfig.from_dict(load_recipe(recipe)["features"]) if recipe else FeatureConfig()


def _model_file(path, name: str, features: FeatureConfig, duration: float = 1.0, seed: int = 0):
    """Random weights and random batch-norm statistics, so the outputs are far from trivial."""
    torch.manual_seed(seed)
    model = create_model(name, num_classes=len(CLASSES), in_chans=features.in_chans)
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if key.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif key.endswith("running_mean"):
                t.normal_(0.0, 0.5)
    mf = ModelFile(state_dict=model.state_dict(), classes=CLASSES, features=features.to_dict(),
                   model={"name": name}, recipe={"name": "test"}, duration=duration)
    return save_model_file(mf, path)


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


# ---- the export-friendly front end --------------------------------------------------------------

FRONT_ENDS = {
    "cp_mobile_2024": dict(recipe="gao_lee2024_split100"),               # 32 kHz, 4096 FFT, win 3072, 256 mels, ln
    "two_path_2019_1a": dict(recipe="mcdonnell2019_task1a"),             # 48 kHz stereo, dB, deltas without padding
    "mnv2_hpss_2021": dict(recipe="horvath2021_mnv2_focal"),             # log01 + HPSS
    "qti_2020": dict(recipe="qti2020_task1b"),                           # 256 Slaney mels, stereo
    "padded_deltas_reflect": dict(cfg=FeatureConfig(sample_rate=16000, n_fft=512, win_length=400, hop_length=160,
                                                    n_mels=40, deltas=True, pad_mode="reflect", scale="db01")),
}


@pytest.mark.parametrize("name", list(FRONT_ENDS))
def test_exportable_front_end_equals_fast_extractor(name):
    spec = FRONT_ENDS[name]
    cfg = spec.get("cfg") or _recipe_features(recipe=spec["recipe"])
    n = 2 * cfg.sample_rate
    channels = 2 if cfg.channels == "stereo" else 1
    if (SHARED_DATA / "tau-samples").exists():
        from asclab.data import load_audio
        wave = load_audio(SHARED_DATA / "tau-samples" / "tut2018-48k-stereo" / "park.wav", cfg.sample_rate,
                          channels=cfg.channels, duration=2.0)[None]
    else:  # noise with a steep spectral tilt
        wave = np.cumsum(np.random.default_rng(0).standard_normal((1, channels, n)), axis=-1).astype(np.float32)
        wave /= np.abs(wave).max()
    x = torch.from_numpy(np.concatenate([wave, 0.01 * wave[:, :, ::-1].copy()]))
    fast = FeatureExtractor(cfg)
    with torch.no_grad():
        ref, got = fast(x), ExportableFeatures(fast)(x)
    assert got.shape == ref.shape
    assert float((got - ref).abs().max()) <= 1e-4


# ---- every model, features input --------------------------------------------------------------

@pytest.mark.parametrize("name", list_models())
def test_every_model_exports_with_features_input(name, tmp_path):
    cfg = _recipe_features(name)
    ckpt = _model_file(tmp_path / "m.ckpt", name, cfg)
    out = tmp_path / f"{name}.onnx"
    result = onnx_export.export_onnx(ckpt, out, input_kind="features")
    (f,) = result["files"]
    assert f["max_abs_diff"] <= 1e-4
    meta = json.loads(onnx.load(str(out)).metadata_props[0].value)
    assert meta["input"] == "features" and meta["classes"] == CLASSES and meta["duration"] == 1.0
    assert FeatureConfig.from_dict(meta["features"]) == cfg
    assert json.loads((tmp_path / f"{name}.json").read_text())["max_abs_diff"] == f["max_abs_diff"]
    # a fresh input, with a batch size and length the export never saw
    from asclab.evaluate.inference import Predictor
    pred = Predictor.load(ckpt)
    x = torch.randn(5, cfg.in_chans, cfg.n_mels, pred.features.frames_for(1.7))
    with torch.no_grad():
        ref = pred.model(x).numpy()
    got = _session(out).run(None, {"features": x.numpy()})[0]
    assert np.abs(got - ref).max() <= 1e-4 and np.abs(ref).max() > 1e-3


def test_int8_export_of_a_model_with_shared_weights(tmp_path):
    """QTI's Shared Residual Blocks reuse one conv weight; the exporter routes it
    through Identity nodes, which the int8 quantiser must see through."""
    cfg = _recipe_features("shared_resnet_ssn")
    ckpt = _model_file(tmp_path / "m.ckpt", "shared_resnet_ssn", cfg)
    result = onnx_export.export_onnx(ckpt, tmp_path / "srn.onnx", input_kind="features", int8=True)
    fp32, int8 = result["files"]
    assert int8["precision"] == "int8" and int8["size_bytes"] < 0.5 * fp32["size_bytes"]
    q = onnx.load(str(tmp_path / "srn.int8.onnx"))
    assert any(n.op_type == "ConvInteger" for n in q.graph.node)


# ---- waveform input ----------------------------------------------------------------------------

@pytest.mark.parametrize("name,recipe", [("cp_mobile", "gao_lee2024_split100"),
                                         ("mobilenetv2_small", "horvath2021_mnv2_focal"),  # 128 mels + HPSS
                                         pytest.param("two_path_resnet", "mcdonnell2019_task1a",  # stereo, deltas
                                                      marks=pytest.mark.slow)])  # about 11 s
def test_waveform_export(name, recipe, tmp_path):
    cfg = _recipe_features(recipe=recipe)
    ckpt = _model_file(tmp_path / "m.ckpt", name, cfg)
    out = tmp_path / "w.onnx"
    (f,) = onnx_export.export_onnx(ckpt, out)["files"]
    assert f["max_abs_diff"] <= 1e-4
    sess = _session(out)
    (inp,) = sess.get_inputs()
    assert inp.name == "waveform" and len(inp.shape) == 3 and not isinstance(inp.shape[0], int)
    assert not isinstance(inp.shape[2], int)  # dynamic time axis
    from asclab.evaluate.inference import Predictor
    pred = Predictor.load(ckpt)
    chans = 2 if cfg.channels == "stereo" else 1
    x = (0.05 * torch.randn(2, chans, int(1.3 * cfg.sample_rate))).float()
    with torch.no_grad():
        ref = pred.logits(x).numpy()
    assert np.abs(sess.run(None, {"waveform": x.numpy()})[0] - ref).max() <= 1e-4


def test_self_check_refuses_a_wrong_graph(tmp_path, monkeypatch):
    cfg = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=64)
    ckpt = _model_file(tmp_path / "m.ckpt", "cp_mobile", cfg)
    real = onnx_export._export_network

    def export_other_weights(pred):  # the graph of a different network than the file's
        other = create_model("cp_mobile", num_classes=len(CLASSES), in_chans=1)
        pred.model, original = other.eval(), pred.model
        try:
            return real(pred)
        finally:
            pred.model = original

    monkeypatch.setattr(onnx_export, "_export_network", export_other_weights)
    out = tmp_path / "bad.onnx"
    out.write_bytes(b"an earlier export")
    with pytest.raises(AsclabError, match="differs from the torch model"):
        onnx_export.export_onnx(ckpt, out, input_kind="features")
    assert out.read_bytes() == b"an earlier export"  # left as it was
    assert not (tmp_path / "bad.json").exists() and {p.name for p in tmp_path.iterdir()} == {"m.ckpt", "bad.onnx"}


def test_fp16_and_int8_variants_with_validation(tmp_path, capsys):
    import shutil

    from asclab.data.synth import make_synthetic_dataset

    synth = make_synthetic_dataset(tmp_path / "synth", n_per_class_device=1, seconds=1.0, sample_rate=16000)
    classes = synth.classes[:3]
    data = tmp_path / "val"  # class folders: 3 classes x 4 clips
    for c in classes:
        (data / c).mkdir(parents=True)
        for r in [r for r in synth.test if r.label == c][:4]:
            shutil.copy(r.path, data / c / r.path.name)
    cfg = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=64)
    torch.manual_seed(0)
    model = create_model("cp_mobile", num_classes=len(classes), in_chans=1)
    ckpt = save_model_file(ModelFile(model.state_dict(), classes, cfg.to_dict(), {"name": "cp_mobile"}, {},
                                     duration=1.0), tmp_path / "m.ckpt")
    out = tmp_path / "model.onnx"
    assert main(["export", str(ckpt), "--out", str(out), "--fp16", "--int8", "--val-data", str(data),
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    files = {f["precision"]: f for f in r["files"]}
    assert set(files) == {"fp32", "fp16", "int8"}
    for p in ("fp16", "int8"):
        assert files[p]["size_bytes"] < files["fp32"]["size_bytes"]
        assert files[p]["size_bytes"] == (tmp_path / f"model.{p}.onnx").stat().st_size
        assert r["validation"][f"{p}_change"] == pytest.approx(files[p]["accuracy"] - files["fp32"]["accuracy"])
    fp16 = onnx.load(str(tmp_path / "model.fp16.onnx"))
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in fp16.graph.initializer)
    int8_ops = {n.op_type for n in onnx.load(str(tmp_path / "model.int8.onnx")).graph.node}
    assert int8_ops & {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}
    # the fp32 accuracy is the accuracy of `asclab predict` on the same files
    assert main(["predict", str(ckpt), str(data), "--jsonl", "--quiet"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    labels = [r["label"] for r in rows]
    truth = [Path(r["file"]).parent.name for r in rows]
    assert r["validation"]["n_files"] == len(truth)
    assert files["fp32"]["accuracy"] == pytest.approx(np.mean([a == b for a, b in zip(labels, truth)]))
