"""DCASE submission files: format, file names, agreement with ``asclab predict``, and the complexity rules."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from asclab.cli import main
from asclab.compress.complexity import count_macs, default_input_shape
from asclab.compress.prune import to_fp16_state
from asclab.data.synth import make_synthetic_dataset
from asclab.errors import ComplexityError
from asclab.features.config import FeatureConfig
from asclab.models import create_model
from asclab.workflows.submit import evaluation_files, write_submission
from asclab.train.checkpoint import ModelFile, save_model_file

FEATURES = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=64)


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory):
    """A TAU-layout evaluation set: 12 SYNTHETIC clips (22.05 kHz) listed, without labels, in
    evaluation_setup/fold1_test.csv, as the DCASE evaluation sets are."""
    tmp = tmp_path_factory.mktemp("eval")
    synth = make_synthetic_dataset(tmp / "synth", n_per_class_device=1, seconds=1.0, sample_rate=22050)
    root = tmp / "data"
    (root / "audio").mkdir(parents=True)
    (root / "evaluation_setup").mkdir()
    names = [r.extra["filename"] for r in synth.test[::7]][:12]
    for name in names:
        shutil.copy(synth.root / name, root / name)
    (root / "evaluation_setup" / "fold1_test.csv").write_text("filename\n" + "".join(n + "\n" for n in names))
    return root, synth.classes


@pytest.fixture(scope="module")
def small_eval(eval_set, tmp_path_factory):
    """Three of the evaluation files in a plain folder (no metadata)."""
    root, classes = eval_set
    small = tmp_path_factory.mktemp("small")
    (small / "audio").mkdir()
    for name, p in evaluation_files(root)[:3]:
        shutil.copy(p, small / name)
    return small, classes


def _model_file(path, name: str, classes: list[str], *, fp16: bool = False, features: FeatureConfig = FEATURES,
                prune: float = 0.0):
    torch.manual_seed(0)
    model = create_model(name, num_classes=len(classes), in_chans=features.in_chans)
    if prune:
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.Conv2d):
                    w = m.weight
                    w[w.abs() <= w.abs().flatten().quantile(prune)] = 0.0
    state = to_fp16_state(model.state_dict()) if fp16 else model.state_dict()
    mf = ModelFile(state_dict=state, classes=classes, features=features.to_dict(), model={"name": name},
                   recipe={}, duration=1.0)
    return save_model_file(mf, path), model


def _read(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    return rows[0], rows[1:]


def test_submission_file_parses_back(eval_set, tmp_path, capsys):
    root, classes = eval_set
    ckpt, _ = _model_file(tmp_path / "m.ckpt", "cp_mobile", classes, fp16=True)
    out = tmp_path / "output.csv"
    assert main(["submit", str(ckpt), "--data", str(root), "--out", str(out), "--year", "2024", "--quiet"]) == 0
    assert "DCASE 2022-2025 task 1: ok" in capsys.readouterr().out
    header, rows = _read(out)
    assert header == ["filename", "scene_label", *classes]
    listed = (root / "evaluation_setup" / "fold1_test.csv").read_text().split()[1:]
    assert [r[0] for r in rows] == listed and all(r[0].startswith("audio/") for r in rows)
    probs = np.array([[float(v) for v in r[2:]] for r in rows])
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert [r[1] for r in rows] == [classes[i] for i in probs.argmax(axis=1)]
    # the same numbers as `asclab predict` on those files
    assert main(["predict", str(ckpt), *[str(root / f) for f in listed[:5]], "--jsonl", "--quiet"]) == 0
    ref = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert np.allclose(probs[:5], [[d["probs"][c] for c in classes] for d in ref], atol=2e-6)


def test_meta_csv_and_plain_folder(eval_set, tmp_path):
    root, classes = eval_set
    listed = [(name, p) for name, p in evaluation_files(root)]
    meta_only = tmp_path / "meta_only"
    (meta_only / "audio").mkdir(parents=True)
    for name, p in listed[:3]:
        shutil.copy(p, meta_only / name)
    (meta_only / "meta.csv").write_text("filename\tscene_label\n" + "".join(f"{n}\tx\n" for n, _ in listed[:3]))
    assert [n for n, _ in evaluation_files(meta_only)] == [n for n, _ in listed[:3]]
    (meta_only / "meta.csv").unlink()
    assert sorted(n for n, _ in evaluation_files(meta_only)) == sorted(n for n, _ in listed[:3])
    ckpt, _ = _model_file(tmp_path / "m.ckpt", "cp_mobile", classes, fp16=True)
    s = write_submission(ckpt, meta_only, tmp_path / "o.csv", progress=False)
    assert s["n_files"] == 3 and len(_read(tmp_path / "o.csv")[1]) == 3


def test_same_model_counts_at_its_stored_precision(small_eval, tmp_path):
    """cp_mobile (61 K parameters) fits 128 kB in fp16 but not in fp32."""
    root, classes = small_eval
    ckpt32, model = _model_file(tmp_path / "m32.ckpt", "cp_mobile", classes)
    n = sum(p.numel() for p in model.parameters())
    out = tmp_path / "o.csv"
    with pytest.raises(ComplexityError) as info:
        write_submission(ckpt32, root, out, year=2024, progress=False)
    msg = str(info.value)
    assert "128,000-byte limit" in msg and f"by {4 * n - 128_000:,} bytes" in msg and "32 bits" in msg
    assert not out.exists()
    ckpt16, _ = _model_file(tmp_path / "m16.ckpt", "cp_mobile", classes, fp16=True)
    s = write_submission(ckpt16, root, out, year=2024, progress=False)
    assert s["complexity"]["param_bytes"] == 2 * n and s["complexity"]["bits"] == 16 and out.exists()


def test_over_the_limits_model_is_refused(small_eval, tmp_path, capsys):
    root, classes = small_eval
    ckpt, model = _model_file(tmp_path / "big.ckpt", "two_path_resnet", classes, features=FeatureConfig(deltas=True))
    n = sum(p.numel() for p in model.parameters())
    macs = count_macs(model, default_input_shape(FeatureConfig(deltas=True), 1.0), "nessi")
    out = tmp_path / "o.csv"
    assert main(["submit", str(ckpt), "--data", str(root), "--out", str(out), "--year", "2025"]) == 2
    err = capsys.readouterr().err
    assert "DCASE 2022-2025 task 1" in err and f"by {4 * n - 128_000:,} bytes" in err
    assert f"by {(macs - 30_000_000) / 1e6:,.2f} MMAC" in err and err.count("\n") == 1
    nonzero = sum(int((p != 0).sum()) for p in model.parameters())
    with pytest.raises(ComplexityError, match=f"DCASE 2020 task 1b.*512,000-byte limit by {4 * nonzero - 512_000:,} bytes"):
        write_submission(ckpt, root, out, year=2020, progress=False)
    assert not out.exists()


def test_2021_counts_only_nonzero_parameters(small_eval, tmp_path):
    root, classes = small_eval
    ckpt, model = _model_file(tmp_path / "p.ckpt", "cp_mobile", classes, prune=0.7)
    nonzero = sum(int((p != 0).sum()) for p in model.parameters())
    assert 4 * nonzero <= 131_072 < 4 * sum(p.numel() for p in model.parameters())
    s = write_submission(ckpt, root, tmp_path / "o.csv", year=2021, progress=False)
    assert s["complexity"]["param_bytes"] == 4 * nonzero
    with pytest.raises(ComplexityError):
        write_submission(ckpt, root, tmp_path / "o2.csv", year=2022, progress=False)


def test_year_without_limits_and_unknown_year(small_eval, tmp_path):
    small, classes = small_eval
    ckpt, _ = _model_file(tmp_path / "m32.ckpt", "cp_mobile", classes)  # too big for 2022-2025 in fp32
    s = write_submission(ckpt, small, tmp_path / "o.csv", year=2019, progress=False)
    assert s["complexity"] is None and s["n_files"] == 3
    assert main(["submit", str(ckpt), "--data", str(small), "--out", str(tmp_path / "x.csv"), "--year", "2018"]) == 2
