"""``asclab finetune`` (issue 22): the front end and network come from the model file, a new head
when the classes differ, the ancestry recorded, and the result usable by predict."""
from __future__ import annotations

import json

import pytest

from asclab.cli import main
from asclab.data.synth import make_synthetic_dataset
from asclab.train.checkpoint import load_model_file, save_model_file
from conftest import tiny_trained_model, tone_records

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A CP-Mobile trained for one epoch on the synthetic scenes (1-s clips, 16 kHz)."""
    return tiny_trained_model(tmp_path_factory.mktemp("parent"), seed=1)


def _tones(tmp_path):
    recs = tone_records(tmp_path / "tones", 18, 16000, seed=0, f0=300.0, step=40.0)
    lines = ["path,label,split"] + [f"{r.path.name},{r.label},{'test' if i % 3 == 0 else 'train'}"
                                    for i, r in enumerate(recs)]
    (tmp_path / "tones" / "manifest.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "tones" / "manifest.csv", recs


def test_finetune_takes_the_front_end_from_the_model_file_and_records_its_ancestry(parent, tmp_path, capsys,
                                                                                     one_torch_thread):
    manifest, recs = _tones(tmp_path)
    run = tmp_path / "ft"
    assert main(["--threads", "1", "finetune", str(parent), "--data", str(manifest), "--out", str(run), "--quiet",
                 "--epochs", "2"]) == 0
    err = capsys.readouterr().err
    assert "new head 'classifier': classes differ" in err  # said in one line
    mf, pf = load_model_file(run / "model.ckpt"), load_model_file(parent)
    assert mf.feature_config == pf.feature_config  # no features.* key was given: 16 kHz, 40 mels
    assert mf.classes == ["class0", "class1", "class2"] and mf.recipe["name"].startswith("finetune_cp_mobile_1s@")
    chain = mf.extra["ancestry"]
    assert len(chain) == 2 and chain[0]["origin"] == str(parent) and chain[1]["finetuned_from"] == str(parent)
    assert len(chain[1]["sha256"]) == 64
    capsys.readouterr()
    assert main(["predict", str(run / "model.ckpt"), str(recs[0].path), "--jsonl", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] in mf.classes
    # a fine-tune of the fine-tune extends the chain
    assert main(["--threads", "1", "finetune", str(run / "model.ckpt"), "--data", str(manifest), "--out",
                 str(tmp_path / "ft2"), "--quiet", "--epochs", "1"]) == 0
    assert len(load_model_file(tmp_path / "ft2" / "model.ckpt").extra["ancestry"]) == 3


def _container(parent, tmp_path):
    mf = load_model_file(parent)
    mf.state_dict = {**{f"base.{k}": v for k, v in mf.state_dict.items()},
                     **{f"device_models.a.{k}": v for k, v in mf.state_dict.items()}}
    mf.model, mf.devices = {"name": "device_container", "base": dict(mf.model), "devices": ["a"]}, ["a"]
    save_model_file(mf, tmp_path / "container.ckpt")
    return tmp_path / "container.ckpt"


def test_a_device_container_on_data_without_device_ids_needs_general_and_says_so_in_one_line(parent, tmp_path,
                                                                                              capsys):
    container = _container(parent, tmp_path)
    manifest, _ = _tones(tmp_path)
    capsys.readouterr()
    assert main(["finetune", str(container), "--data", str(manifest), "--out", str(tmp_path / "ft")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no device ids" in err[0] and "pass --general" in err[0]
    assert not (tmp_path / "ft").exists()
    # a recipe without a device stage is refused for a container too, naming the recipe
    assert main(["finetune", str(container), "--data", str(manifest), "--out", str(tmp_path / "ft"),
                 "--recipe", "finetune_cp_mobile_1s"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'finetune_cp_mobile_1s' has no device_specific stage" in err[0]


def test_a_device_container_is_fine_tuned_as_a_container(parent, tmp_path, capsys, one_torch_thread):
    """The general model, then one copy per training device (finetune_cp_mobile_1s_devices)."""
    container = _container(parent, tmp_path)
    make_synthetic_dataset(tmp_path / "synth", n_per_class_device=1, n_test_per_class_device=1, seconds=1.0,
                           sample_rate=16000, seed=3)
    run = tmp_path / "ft"
    assert main(["--threads", "1", "finetune", str(container), "--data", str(tmp_path / "synth"), "--out", str(run),
                 "--quiet", "--batch-size", "4", "--set", "train.epochs_cap=1"]) == 0
    mf = load_model_file(run / "model.ckpt")
    assert mf.model["name"] == "device_container" and mf.recipe["name"].startswith("finetune_cp_mobile_1s_devices@")
    from asclab.data import open_dataset

    trained_on = {r.device for r in open_dataset(tmp_path / "synth").records if r.device}
    assert set(mf.devices) <= trained_on
    # each device model was fine-tuned from the general one: they differ from it and from each other
    base = {k[len("base."):]: v for k, v in mf.state_dict.items() if k.startswith("base.")}
    tuned = sorted({k.split(".")[1] for k in mf.state_dict if k.startswith("device_models.")})
    assert len(tuned) >= 2 and set(tuned) <= set(mf.devices)
    dev = {d: {k.split(".", 2)[2]: v for k, v in mf.state_dict.items() if k.startswith(f"device_models.{d}.")}
           for d in tuned}
    w = next(k for k in base if k.endswith("weight") and base[k].dim() == 4)
    assert all(not dev[d][w].equal(base[w]) for d in tuned) and not dev[tuned[0]][w].equal(dev[tuned[1]][w])
    assert mf.extra["ancestry"][0]["origin"] == str(container)
    capsys.readouterr()
    wav = next((tmp_path / "synth").rglob("*.wav"))
    assert main(["predict", str(run / "model.ckpt"), str(wav), "--device", mf.devices[0], "--jsonl", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] in mf.classes
