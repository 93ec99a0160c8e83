"""One shortened run per recipe on a tiny SYNTHETIC set: train, evaluate, predict.

Every stage of every workflow runs for one epoch (``train.epochs_cap=1``,
which compresses the recipe's learning-rate schedule into that epoch) on
one-second clips; the models are the papers' full-size ones.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from asclab.workflows.predict import predict_files
from asclab.workflows.train import train_run
from asclab.compress.prune import conv_sparsity
from asclab.config import list_recipes, load_recipe
from asclab.data import TAU_SCENES
from asclab.evaluate.inference import Predictor
from asclab.train.checkpoint import load_model_file

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    from asclab.data.synth import make_synthetic_dataset

    root = tmp_path_factory.mktemp("tiny") / "synth"
    make_synthetic_dataset(root, n_per_class_device=1, n_test_per_class_device=1, seconds=1.0,
                           sample_rate=32000, seed=1)
    # Keep 3 training and 2 test clips per class (the rest stay in meta.csv, unassigned).
    for name, keep in (("fold1_train.csv", 3), ("fold1_evaluate.csv", 2)):
        path = root / "evaluation_setup" / name
        header, *rows = path.read_text().splitlines()
        seen: dict[str, int] = {}
        kept = []
        for row in rows:
            label = row.split("\t")[1]
            if seen.get(label, 0) < keep:
                seen[label] = seen.get(label, 0) + 1
                kept.append(row)
        path.write_text("\n".join([header, *kept]) + "\n")
    return root


def shortening(name: str) -> list[str]:
    r = load_recipe(name)
    out = ["train.epochs_cap=1", "train.batch_size=8", "data.duration=1.0", "data.split=null",
           "inference.tta=" + str(min(2, int(r["inference"].get("tta") or 0)))]
    mix = r["augment"].get("mix") or {}
    if mix.get("crop_frames"):
        out.append("augment.mix.crop_frames=24")  # 1 s gives 44 frames, 36 after deltas without padding
    spec = r["augment"].get("spec") or []
    if any(a.get("name") == "time_crop" for a in spec):
        short = [{**a, "frames": 24} if a.get("name") == "time_crop" else a for a in spec]
        out.append("augment.spec=" + json.dumps(short))
    if r["data"].get("balance"):
        out.append("data.balance.per_cell=1")
    if r["inference"].get("openset"):  # task 1c: one synthetic scene plays the 'unknown' class
        mapping = {s: s for s in TAU_SCENES}
        mapping["tram"] = "unknown"
        out.append("data.class_map=" + str(mapping))
    return out


def random_teacher_file(data: Path, out: Path) -> Path:
    from asclab.data import open_dataset
    from asclab.data.teacher_file import TeacherFile, clip_key

    index = open_dataset(data)
    keys = [clip_key(r.path, index.root) for r in index.records]
    logits = np.random.default_rng(0).standard_normal((1, len(keys), len(index.classes)))
    return TeacherFile(keys=keys, classes=list(index.classes), logits=logits).write(out)


@pytest.mark.parametrize("name", sorted(list_recipes()))
def test_recipe_runs_end_to_end(name, tiny_set, tmp_path):
    run = tmp_path / "run"
    extra = []
    if load_recipe(name)["loss"]["name"] == "kd":  # a distilled student: random teacher logits for every clip
        extra.append(f"data.teacher_logits={random_teacher_file(tiny_set, tmp_path / 'teachers.h5')}")
    summary = train_run(name, tiny_set, run, overrides=shortening(name) + extra, progress=False)
    metrics = summary["metrics"]
    assert 0.0 <= metrics["macro_accuracy"] <= 1.0 and metrics["n"] > 0
    assert (run / "metrics.json").exists() and (run / "confusion.png").stat().st_size > 1000
    recipe = load_recipe(name)
    members = (recipe.get("workflow") or {}).get("ensemble")
    ckpt = run / "members" / members[0] / "model.ckpt" if members else run / "model.ckpt"
    mf = load_model_file(ckpt)
    per_device = any(st.get("device_specific") for st in (recipe.get("workflow") or {}).get("stages") or [])
    assert mf.model["name"] == ("device_container" if per_device else recipe["model"]["name"])
    if per_device:  # DCASE 2025: a model per training device, the general model for the others
        assert mf.model["base"] == recipe["model"] and "device_specific" in metrics
    if members:
        assert metrics["ensemble_size"] == len(members)
    clip = sorted((tiny_set / "audio").glob("*.wav"))[0]
    rows = predict_files(ckpt, [clip], progress=False)
    assert rows[0]["label"] in mf.classes
    assert abs(sum(rows[0]["probs"].values()) - 1.0) < 1e-5
    if (recipe.get("compress") or {}).get("fp16"):
        assert all(v.dtype == torch.float16 for v in mf.state_dict.values() if torch.is_floating_point(v))
    if name == "qti2020_task1b_pruned":
        assert conv_sparsity(Predictor.load(ckpt).model) >= 0.6 - 1e-3
        assert summary["complexity"]["nonzero_params"] < 0.5 * summary["complexity"]["params"]
        log = json.loads((run / "complexity.json").read_text())["pruning"]
        assert [e["when"] for e in log] == ["before pruning", "after pruning and fine-tuning"]
        assert not log[0]["challenges"]["dcase2020_1b"]["pass"]  # 601 K fp32 is over 500 KB ...
        assert log[1]["nonzero_params"] < 0.5 * log[0]["nonzero_params"]
        assert summary["complexity"]["challenges"]["dcase2020_1b"]["pass"]  # ... pruned + FP16 is under
    if recipe["inference"].get("openset"):
        assert "unknown" in mf.classes
