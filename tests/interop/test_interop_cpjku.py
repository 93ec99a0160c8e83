"""asclab import of CPJKU-family checkpoints, the windowed-sinc front end, and THE check against
the Karasin_JKU 2025 system 4 reference logits (../shared/checkpoints)."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asclab.workflows.predict import classify_recordings
from asclab.cli import main
from asclab.data.sinc_resample import sinc_kernel, sinc_resample
from asclab.errors import CheckpointError
from asclab.evaluate.inference import Predictor
from asclab.interop.cpjku import TAU_CLASSES, import_checkpoint
from asclab.models import create_model

CKPTS = Path(__file__).resolve().parents[3] / "shared" / "checkpoints"
SYS4 = CKPTS / "karasin_jku_2025_sys4.ckpt"
REFERENCE = CKPTS / "karasin_jku_2025_sys4.reference.json"
SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "tau-samples"
DEVICES = ["a", "b", "c", "s1", "s2", "s3", "d"]


def _to_cpjku(state: dict) -> dict:
    """asclab cp_mobile keys -> the CPJKU baseline's (the inverse of the importer's mapping)."""
    stage_of = {0: (1, 1), 1: (1, 2), 2: (1, 3), 3: (2, 4), 4: (2, 5), 5: (3, 6)}
    out = {}
    for k, v in state.items():
        k2 = re.sub(r"^stem\.", "in_c.", k)
        k2 = re.sub(r"^classifier\.", "feed_forward.", k2)
        m = re.match(r"stages\.(\d+)\.(.+)", k2)
        if m:
            s, b = stage_of[int(m.group(1))]
            k2 = f"stages.s{s}.b{b}.{m.group(2)}"
        out[k2] = v
    return out


def _randomised_cp_mobile(seed: int):
    torch.manual_seed(seed)
    m = create_model("cp_mobile", num_classes=10)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.normal_(0, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    return m.eval()


def test_sinc_resampler_matches_its_definition():
    # a float64-built kernel: the window x sinc formula evaluated directly for one phase and tap
    k, width = sinc_kernel(48000, 32000, kernel_dtype=None)
    assert k.shape == (2, 1, 2 * width + 3) and width == math.ceil(6 * 3 / (2 * 0.99))
    t = (-1 / 2 + (-width + 5) / 3) * 2 * 0.99  # phase 1, tap 5, in cut-off periods
    want = np.sinc(t) * np.cos(np.pi * t / 12) ** 2 * (2 * 0.99 / 3)
    assert abs(float(k[1, 0, 5]) - want) < 1e-6
    # a tone well below the cut-off survives 48 -> 32 kHz; the length is ceil(n * 2 / 3)
    x = torch.sin(2 * torch.pi * 440 * torch.arange(4800) / 48000)
    y = sinc_resample(x, 48000, 32000)
    assert y.shape[-1] == 3200
    ref = torch.sin(2 * torch.pi * 440 * torch.arange(3200) / 32000)
    assert float((y[200:-200] - ref[200:-200]).abs().max()) < 2e-3
    assert sinc_resample(x, 32000, 32000) is x


def test_imports_2024_layout_and_reproduces_the_network(tmp_path, one_torch_thread):
    net = _randomised_cp_mobile(0)
    sd = {f"model.{k}": v for k, v in _to_cpjku(net.state_dict()).items()}
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "b24.ckpt")
    s = import_checkpoint(tmp_path / "b24.ckpt", tmp_path / "m.ckpt")
    assert s["layout"] == "dcase2024 baseline" and s["precision"] == "fp32" and s["devices"] == []
    pred = Predictor.load(tmp_path / "m.ckpt")
    assert pred.classes == TAU_CLASSES and pred.fcfg.resampler == "sinc_hann" and pred.whole_file
    x = torch.randn(2, 1, 256, 65)
    with torch.no_grad():
        assert torch.allclose(pred.model(x), net(x), atol=1e-5)


def test_imports_2025_container_fp16(tmp_path, one_torch_thread):
    base, dev = _randomised_cp_mobile(1), _randomised_cp_mobile(2)
    sd = {f"multi_device_model.base_model.{k}": v.half() if v.is_floating_point() else v
          for k, v in _to_cpjku(base.state_dict()).items()}
    sd.update({f"multi_device_model.device_models.s1.{k}": v.half() if v.is_floating_point() else v
               for k, v in _to_cpjku(dev.state_dict()).items()})
    torch.save({"state_dict": sd}, tmp_path / "b25.ckpt")
    s = import_checkpoint(tmp_path / "b25.ckpt", tmp_path / "m.ckpt")
    assert s["devices"] == ["s1"] and s["precision"] == "fp16"
    pred = Predictor.load(tmp_path / "m.ckpt")
    x = torch.randn(1, 1, 256, 65)
    with torch.no_grad():
        got = pred.for_device("s1").model(x.half()).float()
        assert torch.allclose(got, dev.half()(x.half()).float(), atol=1e-2)
        assert pred.for_device("zz").model is pred.model.base


def test_unknown_layout_and_bad_shapes_are_one_line_errors(tmp_path):
    torch.save({"state_dict": {"encoder.w": torch.zeros(3)}}, tmp_path / "x.ckpt")
    with pytest.raises(CheckpointError, match="unknown layout.*encoder"):
        import_checkpoint(tmp_path / "x.ckpt", tmp_path / "m.ckpt")
    sd = {f"model.{k}": v for k, v in _to_cpjku(_randomised_cp_mobile(0).state_dict()).items()}
    sd["model.stages.s1.b1.block.0.0.weight"] = torch.zeros(48, 32, 1, 1)
    sd["model.head.fc.weight"] = torch.zeros(2)
    torch.save({"state_dict": sd}, tmp_path / "y.ckpt")
    with pytest.raises(CheckpointError, match="head.fc.weight") as err:
        import_checkpoint(tmp_path / "y.ckpt", tmp_path / "m.ckpt")
    assert "\n" not in str(err.value)
    sd.pop("model.head.fc.weight")
    torch.save({"state_dict": sd}, tmp_path / "y.ckpt")
    with pytest.raises(CheckpointError, match=r"shape of stages\.0\.block\.0\.0\.weight"):
        import_checkpoint(tmp_path / "y.ckpt", tmp_path / "m.ckpt")
    assert main(["import", str(tmp_path / "x.ckpt"), "--out", str(tmp_path / "m.ckpt")]) == 2


# ---- THE check: the published Karasin_JKU 2025 system 4 -------------------------------------

def _real():
    if not SYS4.exists() or not REFERENCE.exists() or not SAMPLES.exists():
        pytest.skip(f"../shared not available: {SYS4} / {REFERENCE} / {SAMPLES} absent")
    return json.loads(REFERENCE.read_text())


@pytest.fixture(scope="module")
def sys4_model(tmp_path_factory):
    _real()
    out = tmp_path_factory.mktemp("sys4") / "sys4.ckpt"
    assert main(["import", str(SYS4), "--out", str(out)]) == 0
    return out


def test_sys4_whole_file_matches_the_package_for_every_file_and_device(sys4_model, one_torch_thread):
    ref = _real()
    files = [SAMPLES / f for f in ref["files"]]
    worst = 0.0
    for dev in DEVICES:
        results, skipped = classify_recordings(sys4_model, files, device=dev, progress=False)
        assert not skipped and len(results) == len(files)
        for name, r in zip(ref["files"], results):
            want = ref["files"][name]["by_device"][dev]["whole_file"]
            assert len(r.windows) == 1  # whole file by default
            assert r.label == want["argmax"], (name, dev)
            worst = max(worst, float(np.abs(r.logits - np.array(want["logits"])).max()))
    # fp16 network: the front end's float32 rounding flips some fp16 input roundings -> <= ~1 fp16 ulp
    assert worst < 0.02, worst
    print(f"sys4 whole_file: largest |logit - reference| = {worst:.4f} over {len(files) * len(DEVICES)} pairs")


def test_sys4_one_second_windows_match_the_package(sys4_model, one_torch_thread, tmp_path):
    ref = _real()
    name = "tut2018-48k-stereo/park.wav"
    for dev in ("s3", "d"):
        timeline = tmp_path / f"{dev}.jsonl"
        assert main(["predict", str(sys4_model), str(SAMPLES / name), "--device", dev, "--hop", "1",
                     "--timeline", str(timeline), "--quiet"]) == 0
        rows = [json.loads(line) for line in timeline.read_text().splitlines()]
        want = ref["files"][name]["by_device"][dev]["windows_1s"]
        assert [r["label"] for r in rows] == want["argmax"]
        results, _ = classify_recordings(sys4_model, [SAMPLES / name], device=dev, hop=1.0, progress=False)
        got = np.array([w.logits for w in results[0].windows])
        assert np.abs(got - np.array(want["logits"])).max() < 0.02


def test_sys4_wav_in_other_formats_gives_same_decision(sys4_model, tmp_path, one_torch_thread):
    """The same clip as 16-bit FLAC: the decision holds (asclab reads any soundfile format)."""
    ref = _real()
    name = "tut2018-48k-stereo/bus.wav"
    y, sr = sf.read(SAMPLES / name, dtype="float32")
    sf.write(tmp_path / "bus.flac", y, sr, subtype="PCM_16")
    results, _ = classify_recordings(sys4_model, [tmp_path / "bus.flac"], device="b", progress=False)
    assert results[0].label == ref["files"][name]["by_device"]["b"]["whole_file"]["argmax"]


# ---- fine-tuning from an imported model -----------------------------------------------------

def test_train_init_from_an_imported_model_with_a_new_head(tmp_path, one_torch_thread, capsys):
    from asclab.workflows.train import train_run
    from asclab.config import load_recipe
    from asclab.train.init_from import init_from
    from conftest import tone_records

    net = _randomised_cp_mobile(3)
    torch.save({"state_dict": {f"model.{k}": v for k, v in _to_cpjku(net.state_dict()).items()}}, tmp_path / "b.ckpt")
    import_checkpoint(tmp_path / "b.ckpt", tmp_path / "m.ckpt")
    features = load_recipe("quickstart")["features"]
    fresh = create_model("cp_mobile", num_classes=3)
    head_before = fresh.classifier[0].weight.clone()
    info = init_from(fresh, str(tmp_path / "m.ckpt"), ["class0", "class1", "class2"], features)
    assert info["new_head"] and all(k.startswith("classifier.") for k in info["fresh"]) and info["fresh"]
    assert torch.equal(fresh.stem[0][0].weight, net.stem[0][0].weight)
    assert torch.equal(fresh.classifier[0].weight, head_before)
    with pytest.raises(Exception, match="front end differs.*n_mels"):
        init_from(create_model("cp_mobile", num_classes=3), str(tmp_path / "m.ckpt"), ["x"], {**features, "n_mels": 128})
    # end to end: `asclab train quickstart --set train.init_from=MODEL` on a 3-class manifest
    recs = tone_records(tmp_path / "clips", 9, 32000, seed=0, f0=300, step=150)
    manifest = tmp_path / "data.csv"
    manifest.write_text("path,label,device,split\n" + "".join(
        f"{r.path},{r.label},a,{'test' if i >= 6 else 'train'}\n" for i, r in enumerate(recs)))
    capsys.readouterr()
    s = train_run("quickstart", manifest, tmp_path / "run", progress=False,
                  overrides=[f"train.init_from={tmp_path / 'm.ckpt'}", "train.epochs=1", "train.batch_size=4"])
    assert Path(s["model"]).exists()
    err = capsys.readouterr().err  # the run started from the imported weights, with a new 3-class head
    assert "tensors copied" in err and "new head 'classifier'" in err


def test_sys4_evaluate_submit_and_export_a_device_model(sys4_model, tmp_path, one_torch_thread):
    """evaluate routes each record by its device (1-s crops: the reference's first_1s), submit uses
    whole files and checks each device model against the 2025 rule, export writes one device's ONNX."""
    from asclab.workflows.evaluate import evaluate_run
    from asclab.export.onnx_export import export_onnx
    from asclab.workflows.submit import write_submission

    ref = _real()
    import shutil
    labelled = [f for f in ref["files"] if ref["files"][f]["label"] is not None and f.startswith("tut2018")][:5]
    for f in labelled:  # a manifest lists files inside its own folder
        shutil.copy(SAMPLES / f, tmp_path / Path(f).name)
    manifest = tmp_path / "tut.csv"
    manifest.write_text("path,label,device,split\n" + "".join(
        f"{Path(f).name},{ref['files'][f]['label']},b,test\n" for f in labelled))
    m = evaluate_run(sys4_model, manifest, out_dir=tmp_path / "eval", progress=False)
    want = sum(ref["files"][f]["by_device"]["b"]["first_1s"]["argmax"] == ref["files"][f]["label"] for f in labelled)
    assert round(m["accuracy"] * len(labelled)) == want
    out = tmp_path / "output.csv"
    s = write_submission(sys4_model, SAMPLES, out, year=2025, progress=False)
    assert s["complexity"]["param_bytes"] == 61148 * 2  # one device model at fp16, not the whole container
    rows = [line.split("\t") for line in out.read_text().splitlines()[1:]]
    assert {r[0]: r[1] for r in rows} == {f: ref["files"][f]["by_device"]["d"]["whole_file"]["argmax"]
                                          for f in ref["files"]}
    r = export_onnx(sys4_model, tmp_path / "s3.onnx", input_kind="features", device="s3")
    assert r["files"][0]["max_abs_diff"] < 1e-4
