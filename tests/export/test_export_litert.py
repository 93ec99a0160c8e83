"""LiteRT export (asclab.export.litert_export) and static int8 ONNX of a CP-Mobile trained on a tiny
SYNTHETIC set, checked with the LiteRT interpreter / onnxruntime against torch on the real TAU clips."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from asclab.workflows.train import train_run
from asclab.cli import main
from asclab.export.litert_export import litert_available
from conftest import shared_data
from test_qat import TINY

pytestmark = pytest.mark.slow

FLOAT = {**{k: v for k, v in TINY.items() if k != "workflow"}, "name": "tiny_float",
         "train": {"epochs": 1, "batch_size": 8, "seed": 0}}


@pytest.fixture(scope="module")
def float_run(tmp_path_factory) -> Path:
    from asclab.data.synth import make_synthetic_dataset

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("lite") / "synth"
    make_synthetic_dataset(root, n_per_class_device=1, n_test_per_class_device=1, seconds=1.0,
                           sample_rate=16000, seed=4)
    out = tmp_path_factory.mktemp("lite_run") / "run"
    train_run(FLOAT, root, out, progress=False)
    return out


def test_litert_export_matches_torch_on_real_tau_clips(float_run, capsys):
    why = litert_available()
    if why is not None:
        pytest.skip(why)
    tau = shared_data("tau-samples")
    out = float_run / "model.tflite"
    assert main(["export", str(float_run), "--format", "litert", "--fp16", "--int8", "--check-clips", str(tau),
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    files = {f["precision"]: f for f in r["files"]}
    assert set(files) == {"fp32", "fp16", "int8"}
    assert "real clips" in r["check"] and r["input"]["kind"] == "features"
    assert files["fp32"]["top1_agreement"] == 1.0 and files["fp32"]["max_abs_diff"] < 1e-3
    assert files["fp16"]["top1_agreement"] >= 0.9
    for f in files.values():
        assert Path(f["path"]).stat().st_size == f["size_bytes"]
        assert f["limit_bytes"] == 128_000 and f["within_limit"] == (f["size_bytes"] <= 128_000)
    assert files["int8"]["size_bytes"] < files["fp16"]["size_bytes"] < files["fp32"]["size_bytes"]
    # the interpreter, run here independently, gives torch's top-1 on each real clip
    from asclab.evaluate.inference import Predictor
    from asclab.export.clips import clip_features, clip_paths
    from asclab.export.litert_export import open_interpreter, run_interpreter

    pred = Predictor.load(float_run)
    feats = clip_features(pred, clip_paths(tau, split="all"), 1.0)
    it = open_interpreter(out)
    lite = np.concatenate([run_interpreter(it, x[None]) for x in feats])
    with torch.no_grad():
        ref = pred.model(torch.from_numpy(feats)).numpy()
    assert len(feats) >= 10 and (lite.argmax(1) == ref.argmax(1)).all()


def test_litert_refuses_int8_qat_model_and_bad_name(float_run, tmp_path):
    if litert_available() is not None:
        pytest.skip(litert_available())
    assert main(["export", str(float_run), "--format", "litert", "--out", str(tmp_path / "m.onnx")]) == 2


def test_static_int8_onnx_is_calibrated_and_checked_on_real_clips(float_run, capsys):
    tau = shared_data("tau-samples")
    assert main(["export", str(float_run), "--input", "features", "--int8", "--int8-static",
                 "--check-clips", str(tau), "--out", str(float_run / "m.onnx"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    files = {f["precision"]: f for f in r["files"]}
    assert set(files) == {"fp32", "int8", "int8_static"}
    import onnx
    ops = {n.op_type for n in onnx.load(files["int8_static"]["path"]).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format
    assert files["fp32"]["real_clips"]["top1_agreement"] == 1.0
    assert files["int8_static"]["real_clips"]["n_clips"] >= 10
    assert files["int8_static"]["size_bytes"] < files["fp32"]["size_bytes"]  # graph overhead dominates a tiny net


def test_deploy_report_measures_every_backend(float_run, tmp_path):
    from asclab.workflows.deploy_report import deploy_report

    data = Path(load_model_data(float_run))
    out = tmp_path / "report"
    r = deploy_report(float_run, data, out, repeats=2, litert=litert_available() is None)
    names = {row["backend"] for row in r["rows"]}
    assert {"torch eager", "ONNX fp32", "ONNX int8 static (QDQ)"} <= names
    if litert_available() is None:
        assert {"LiteRT fp32", "LiteRT fp16", "LiteRT int8 (static)"} <= names
    for row in r["rows"]:
        assert 0.0 <= row["accuracy"] <= 1.0 and row["size_bytes"] > 0
        # latencies are measured, not compared: timings on a shared CI machine are noise
        assert all(math.isfinite(v) and v > 0 for v in row["latency_ms"].values())
    eager = next(row for row in r["rows"] if row["backend"] == "torch eager")
    onnx32 = next(row for row in r["rows"] if row["backend"] == "ONNX fp32")
    assert onnx32["accuracy"] == eager["accuracy"]  # the same network, verified to 1e-4
    md = (out / "report.md").read_text()
    assert "| ONNX int8 static (QDQ) | int8 PTQ |" in md
    assert (out / "accuracy_vs_size.png").read_bytes()[:4] == b"\x89PNG"


def load_model_data(run: Path) -> str:
    from asclab.train.checkpoint import load_model_file
    return load_model_file(run / "model.ckpt").data_summary["data"]
