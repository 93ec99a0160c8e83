"""asclab package: the DCASE 2025 inference package, installed into a fresh venv, against asclab predict."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

from asclab.workflows.predict import classify_recordings
from asclab.cli import main
from asclab.errors import ComplexityError, ConfigError
from asclab.export.package import write_package
from asclab.interop.cpjku import BASELINE_FEATURES, TAU_CLASSES
from asclab.models import create_model
from asclab.train.checkpoint import ModelFile, save_model_file

SHARED = Path(__file__).resolve().parents[3] / "shared"
SYS4 = SHARED / "checkpoints" / "karasin_jku_2025_sys4.ckpt"
SAMPLES = SHARED / "data" / "tau-samples"

USE_PACKAGE = """
import json, sys
sys.modules["asclab"] = None      # the package must not need asclab
sys.modules["torchaudio"] = None  # nor torchaudio
import torch
torch.set_num_threads(1)
import importlib
api = importlib.import_module(sys.argv[1])
files = json.loads(sys.argv[2]); devices = json.loads(sys.argv[3])
model = api.load_model()
inputs = api.load_inputs(files, devices, model)
assert len(inputs) == len(files) and inputs[0].ndim == 4
assert api.get_model_for_device(model, "nope") is api.get_model_for_device(model, None)
logits, classes = api.predict(files, devices, use_cuda=False)
assert isinstance(logits, list) and all(t.shape == (len(classes),) for t in logits)
print(json.dumps({"classes": classes, "logits": [t.tolist() for t in logits], "where": api.__file__}))
"""


def _fresh_venv(tmp: Path) -> Path:
    """A new venv (no pip of its own) that sees this environment's torch/numpy/soundfile through a .pth."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "host_libs.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return py


def _install(py: Path, pkg: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
                    "--no-build-isolation", "--no-index", str(pkg)], check=True, capture_output=True, text=True)


def _run(py: Path, module: str, files: list[Path], devices: list[str], cwd: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    out = subprocess.run([str(py), "-c", USE_PACKAGE, module, json.dumps([str(f) for f in files]),
                          json.dumps(devices)], check=True, capture_output=True, text=True, cwd=cwd, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _small_model(tmp: Path, *, base_channels: int = 32, devices=("a",)) -> Path:
    torch.manual_seed(0)
    kw = {"name": "cp_mobile", "base_channels": base_channels}
    c = create_model("device_container", num_classes=10, in_chans=1, base=kw, devices=list(devices))
    model_cfg = {"name": "device_container", "base": kw, "devices": list(devices)}
    recipe = {"name": "small", "features": dict(BASELINE_FEATURES), "model": model_cfg, "data": {"duration": 1.0},
              "inference": {"whole_file": True, "precision": "fp16"}, "compress": {"fp16": True}}
    state = {k: v.half() if v.is_floating_point() else v for k, v in c.state_dict().items()}  # 2025: fp16
    mf = ModelFile(state_dict=state, classes=list(TAU_CLASSES), features=dict(BASELINE_FEATURES),
                   model=model_cfg, recipe=recipe, duration=1.0, devices=list(devices))
    return save_model_file(mf, tmp / "small.ckpt")


def test_complexity_and_name_are_checked_before_anything_is_written(tmp_path):
    big = _small_model(tmp_path, base_channels=64)  # ~4x the parameters: over 128 kB per device model
    with pytest.raises(ComplexityError, match="device model 'base'.*nothing written"):
        write_package(big, tmp_path / "pkg", name="Doe_LAB_task1")
    assert not (tmp_path / "pkg").exists() and not (tmp_path / "pkg.partial").exists()
    with pytest.raises(ConfigError, match="Lastname_INST_task1"):
        write_package(big, tmp_path / "pkg", name="my-package")
    assert main(["package", str(big), "--name", "Doe_LAB_task1", "--out", str(tmp_path / "pkg")]) == 2


def test_package_layout_and_api_in_process(tmp_path, one_torch_thread, monkeypatch):
    model = _small_model(tmp_path)
    s = write_package(model, tmp_path / "pkg", name="Doe_LAB_task1", index=2)
    pkg = tmp_path / "pkg"
    for rel in ("pyproject.toml", "evaluate_submission.py", "Doe_LAB_task1/Doe_LAB_task1_2.py",
                "Doe_LAB_task1/ckpts/Doe_LAB_task1_2.pt", "Doe_LAB_task1/resources/dummy.wav"):
        assert (pkg / rel).is_file(), rel
    assert s["devices"] == ["a"] and set(s["complexity"]) == {"base", "a"}
    sources = "".join(p.read_text() for p in pkg.rglob("*.py"))
    assert "asclab" not in sources.replace("(written by asclab)", "") and "torchaudio" not in sources
    monkeypatch.syspath_prepend(str(pkg))
    import importlib
    api = importlib.import_module("Doe_LAB_task1.Doe_LAB_task1_2")
    dummy = str(pkg / "Doe_LAB_task1/resources/dummy.wav")
    logits, classes = api.predict([dummy, dummy], ["a", "zz"], use_cuda=False)
    assert classes == TAU_CLASSES and len(logits) == 2
    results, _ = classify_recordings(model, [dummy], device="a", progress=False)
    assert np.abs(logits[0].numpy() - results[0].logits).max() < 1e-3
    results, _ = classify_recordings(model, [dummy], device="zz", progress=False)
    assert np.abs(logits[1].numpy() - results[0].logits).max() < 1e-3


def test_sys4_package_in_a_fresh_venv_reproduces_asclab_predict(tmp_path, one_torch_thread):
    if not SYS4.exists() or not SAMPLES.exists():
        pytest.skip(f"../shared not available: {SYS4} or {SAMPLES} absent")
    model = tmp_path / "sys4.ckpt"
    assert main(["import", str(SYS4), "--out", str(model)]) == 0
    assert main(["package", str(model), "--name", "Karasin_JKU_task1", "--out", str(tmp_path / "pkg")]) == 0
    py = _fresh_venv(tmp_path)
    _install(py, tmp_path / "pkg")
    files = sorted(SAMPLES.rglob("*.wav"))
    devices = [("a", "b", "c", "s1", "s2", "s3", "d")[i % 7] for i in range(len(files))]  # every model, once+
    got = _run(py, "Karasin_JKU_task1.Karasin_JKU_task1_1", files, devices, cwd=tmp_path)
    assert "site-packages" in got["where"] and got["classes"] == TAU_CLASSES
    worst = 0.0
    for dev in dict.fromkeys(devices):
        rows = [i for i, d in enumerate(devices) if d == dev]
        want, _ = classify_recordings(model, [files[i] for i in rows], device=dev, progress=False)
        for i, r in zip(rows, want):
            assert TAU_CLASSES[int(np.argmax(got["logits"][i]))] == r.label, (r.path, dev)
            worst = max(worst, float(np.abs(np.array(got["logits"][i]) - r.logits).max()))
    assert worst < 0.02, worst
    print(f"package in fresh venv vs asclab predict: largest |logit difference| {worst:.4f}")
    # the evaluation script: the submission CSV for a folder (no device in these names: the general model)
    out = tmp_path / "output.csv"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    subprocess.run([str(py), str(tmp_path / "pkg" / "evaluate_submission.py"), "--data", str(SAMPLES),
                    "--out", str(out)], check=True, capture_output=True, text=True, cwd=tmp_path, env=env)
    rows = list(csv.DictReader(out.open(), delimiter="\t"))
    assert [r["filename"] for r in rows] == [f.relative_to(SAMPLES).as_posix() for f in files]
    general, _ = classify_recordings(model, files, progress=False)  # these names carry no device id
    assert [r["scene_label"] for r in rows] == [w.label for w in general]
