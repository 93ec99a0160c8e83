"""Device-specific fine-tuning (DCASE 2025): the stage, its container and its evaluation."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from asclab.config import as_config, load_recipe
from asclab.data.records import Record
from asclab.errors import ConfigError
from asclab.models import create_model
from asclab.train.stages import RunContext, plan_phases, stage_parts
from asclab.train.stages.device_specific import freeze_layers


def recs(*devices: str) -> list[Record]:
    return [Record(path=Path(f"x{i}.wav"), label="c", device=d) for i, d in enumerate(devices)]


def phases(stages: list[dict], records: list[Record]) -> list:
    """The run's phases, as fit() plans them (the device stage expanded by its part)."""
    recipe = load_recipe({"workflow": {"stages": stages}})
    return plan_phases(RunContext(recipe, as_config(recipe), records, records), stage_parts())


def test_a_device_specific_stage_becomes_one_stage_per_training_device():
    stages = [{"name": "general"}, {"name": "dev", "device_specific": {"layers": "all"}, "optim": {"lr": 1e-4}}]
    out = phases(stages, recs("b", "a", "s1", "a", None))
    assert [p.name for p in out] == ["general", "dev_a", "dev_b", "dev_s1"]
    assert [p.stage.name for p in out] == ["general", "dev_a", "dev_b", "dev_s1"]
    assert [p.extra.get("device") for p in out] == [None, "a", "b", "s1"]
    assert out[1].raw["device_specific"] == {"layers": "all", "device": "a"} and out[1].raw["optim"] == {"lr": 1e-4}
    assert out[1].stage.device_specific.layers == "all" and all(p.index == 1 for p in out[1:])
    chosen = phases([{"name": "d", "device_specific": {"devices": ["s1"]}}], recs("a", "s1"))
    assert [p.name for p in chosen] == ["d_s1"]
    unnamed = phases([{"device_specific": {}}], recs("a"))
    assert [p.name for p in unnamed] == ["device_a"]


def test_device_specific_stage_errors_name_the_problem():
    with pytest.raises(ConfigError, match="s4 have no training clips"):
        phases([{"device_specific": {"devices": ["s4"]}}], recs("a"))
    with pytest.raises(ConfigError, match="workflow stage 2: a device_specific stage must be the last stage"):
        phases([{"device_specific": {}}, {"name": "after"}], recs("a"))
    with pytest.raises(ConfigError, match="workflow stage 2: only one device_specific stage"):
        phases([{"device_specific": {}}, {"device_specific": {}}], recs("a"))
    with pytest.raises(ConfigError, match="unknown recipe key workflow.stages.0..device_specific.layer"):
        phases([{"device_specific": {"layer": "all"}}], recs("a"))
    with pytest.raises(ConfigError, match="device ids"):
        phases([{"device_specific": {}}], recs(None))


def test_freeze_layers_trains_only_the_named_layers():
    model = create_model("cp_mobile", num_classes=10, in_chans=1)
    frozen = freeze_layers(model, ["classifier", "stages.2"])
    for name, p in model.named_parameters():
        assert p.requires_grad == (name.startswith("classifier.") or name.startswith("stages.2.")), name
    names = {id(m): n for n, m in model.named_modules()}
    frozen_names = {names[id(m)] for m in frozen}
    assert "stem" in frozen_names and "stages.0" in frozen_names
    assert "stages" not in frozen_names and "classifier" not in frozen_names  # holds a trained layer / trained
    assert freeze_layers(model, "all") == [] and all(p.requires_grad for p in model.parameters())
    with pytest.raises(ConfigError, match="no layer"):
        freeze_layers(model, ["head"])


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    from asclab.data.synth import make_synthetic_dataset

    root = tmp_path_factory.mktemp("devspec") / "synth"
    make_synthetic_dataset(root, n_per_class_device=1, n_test_per_class_device=1, seconds=1.0,
                           sample_rate=16000, seed=2)
    return root


RECIPE = {
    "name": "devspec_test",
    "data": {"duration": 1.0},
    "features": {"sample_rate": 16000, "n_fft": 1024, "hop_length": 512, "n_mels": 32, "scale": "log"},
    "model": {"name": "cp_mobile"},
    "optim": {"name": "adam", "lr": 0.01},
    "schedule": {"name": "cosine"},
    "train": {"epochs": 1, "batch_size": 16, "seed": 0},
    "workflow": {"stages": [
        {"name": "general"},
        {"name": "device", "device_specific": {"layers": ["classifier"]}, "optim": {"lr": 0.05}},
    ]},
}


def test_device_specific_run_end_to_end(synth, tmp_path, one_torch_thread):
    from asclab.workflows.complexity import complexity_targets
    from asclab.workflows.evaluate import evaluate_run
    from asclab.workflows.train import train_run
    from asclab.evaluate.inference import Predictor
    from asclab.train.checkpoint import load_model_file

    out = tmp_path / "run"
    summary = train_run(RECIPE, synth, out, progress=False)
    mf = load_model_file(out / "model.ckpt")
    assert mf.model == {"name": "device_container", "base": {"name": "cp_mobile"},
                        "devices": ["a", "b", "c", "s1", "s2", "s3"]}
    # the general model is the first stage's result; each device model differs from it only
    # in the fine-tuned layer (the classifier), frozen BatchNorm statistics included
    general = torch.load(out / "stages" / "1_general" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    sd = mf.state_dict
    for key, value in general.items():
        if key.startswith("model."):
            assert torch.equal(sd["base." + key[6:]], value), key
    for dev in mf.model["devices"]:
        changed = {k for k in general if k.startswith("model.")
                   and not torch.equal(sd[f"device_models.{dev}." + k[6:]], general[k])}
        assert changed and all(k.startswith("model.classifier.") for k in changed), (dev, sorted(changed)[:3])
        assert (out / "stages" / f"{2 + mf.model['devices'].index(dev)}_device_{dev}" / "logs" / "metrics.csv").exists()
    # evaluation: every device's accuracy through its own model and through the general one
    cmp = summary["metrics"]["device_specific"]
    assert set(cmp["per_device"]) == {"a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6"}
    for dev, row in cmp["per_device"].items():
        assert row["own_model"] == (dev in mf.model["devices"])
        if not row["own_model"]:  # unseen devices go to the general model: both columns agree
            assert row["general_accuracy"] == row["specific_accuracy"]
    assert json.loads((out / "metrics.json").read_text())["device_specific"] == cmp
    again = evaluate_run(out, synth, progress=False)
    assert again["device_specific"]["per_device"] == cmp["per_device"]
    # routing: a device-b clip gets the b model's logits, an unknown device the general model's
    pred = Predictor.load(out / "model.ckpt")
    clip = torch.randn(1, 1, 16000)
    x = pred.features(clip)
    with torch.no_grad():
        own = pred.model.device_models["b"](x)
        base = pred.model.base(x)
        assert torch.allclose(pred.logits(clip, ["b"]), own, atol=1e-5)
        assert torch.allclose(pred.logits(clip, ["s5"]), base, atol=1e-5)
        assert not torch.allclose(own, base)
    # complexity: one report per member model, each against the 2025 limits
    reps = complexity_targets([str(out / "model.ckpt")])
    assert len(reps) == 7


def test_an_interrupted_device_specific_run_resumes_at_its_device(synth, tmp_path, one_torch_thread):
    from asclab.workflows.train import resume_run, train_run
    from asclab.train.checkpoint import load_model_file

    recipe = {**RECIPE, "workflow": {"stages": [RECIPE["workflow"]["stages"][0],
                                                {**RECIPE["workflow"]["stages"][1],
                                                 "device_specific": {"layers": "all", "devices": ["a", "b"]}}]}}
    out = tmp_path / "run"
    train_run(recipe, synth, out, progress=False)
    first = load_model_file(out / "model.ckpt").state_dict
    # as if stopped during device b's stage: no model file, b's stage unfinished
    (out / "model.ckpt").unlink()
    (out / "stages" / "3_device_b" / "stage_done.json").unlink()
    resume_run(out, progress=False)
    mf = load_model_file(out / "model.ckpt")
    assert mf.model["devices"] == ["a", "b"]
    for key, value in first.items():
        if key.startswith(("base.", "device_models.a.")):  # restored from the finished stages
            assert torch.equal(mf.state_dict[key], value), key
    assert any(not torch.equal(mf.state_dict[k], first[k.replace("device_models.b.", "base.")])
               for k in first if k.startswith("device_models.b.") and torch.is_floating_point(first[k]))
