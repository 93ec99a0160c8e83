"""Weights are never chosen on the reported split: ``train.keep: best`` needs a validation
split carved from the training records, whole recordings at a time (issue 10 item 1)."""
from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from asclab.cli import main
from asclab.config import load_config, load_recipe
from asclab.data.records import Record
from asclab.data.validation import ValidationSpec, carve_validation, kept_weights, recording_id
from asclab.errors import ConfigError, DataError

LIGHT = ["features.sample_rate=16000", "features.n_fft=512", "features.win_length=512", "features.hop_length=256",
         "features.n_mels=32", "train.batch_size=8", "data.duration=0.5"]


def fake_records(seed: int, n_classes: int = 4) -> list[Record]:
    """Recordings of 1-7 clips each (TAU-like identifiers city-location), 3-9 per class."""
    rng = np.random.default_rng(seed)
    recs = []
    for c in range(n_classes):
        for loc in range(int(rng.integers(3, 10))):
            ident = f"city{loc % 3}-{c}{loc:03d}"
            for seg in range(int(rng.integers(1, 8))):
                recs.append(Record(path=Path(f"audio/s{c}-{ident}-{seg}-a.wav"), label=f"s{c}", device="a",
                                   identifier=ident))
    order = rng.permutation(len(recs))
    return [recs[i] for i in order]


@pytest.mark.parametrize("seed,fraction", list(itertools.product(range(4), (0.05, 0.1, 0.3, 0.6))))
def test_validation_never_shares_a_recording_with_training(seed, fraction):
    records = fake_records(seed)
    spec = ValidationSpec(fraction)
    train, val = carve_validation(records, spec, seed=seed)
    assert {recording_id(r) for r in train}.isdisjoint({recording_id(r) for r in val})
    assert sorted(map(str, (r.path for r in train + val))) == sorted(str(r.path) for r in records)
    per_class = Counter(r.label for r in val)
    assert set(per_class) == {r.label for r in records}  # stratified: every class (3+ recordings) is validated
    assert {r.label for r in train} == {r.label for r in records}  # ... and keeps training clips
    assert carve_validation(records, spec, seed=seed) == (train, val)  # deterministic
    if fraction >= 0.3:
        assert 0.5 * fraction < len(val) / len(records) < 1.6 * fraction + 0.1


def test_seed_changes_the_split_and_ids_fall_back_to_names_then_files():
    records = fake_records(0)
    splits = {tuple(str(r.path) for r in carve_validation(records, ValidationSpec(0.2), seed=s)[1]) for s in range(5)}
    assert len(splits) > 1
    tau = Record(path=Path("audio/airport-lisbon-1000-40000-a.wav"), label="airport")
    assert recording_id(tau) == "airport-lisbon-1000"
    other = Record(path=Path("esc/1-100038-A-14.ogg"), label="dog")
    assert recording_id(other) == str(other.path)
    assert recording_id(Record(path=Path("x.wav"), identifier="lisbon-1000")) == "lisbon-1000"
    single = [Record(path=Path(f"c{i}.wav"), label=f"c{i}", identifier=f"r{i}") for i in range(3)]
    with pytest.raises(DataError, match="data.validation"):
        carve_validation(single, ValidationSpec(0.5))


def test_keep_best_without_validation_is_refused(tmp_path, capsys):
    assert kept_weights(load_config("quickstart")[1]) == ["last"]  # the default keeps the last epoch
    with pytest.raises(ConfigError, match="train.keep"):
        kept_weights(load_config("quickstart", ["train.keep=best"])[1])
    stage_best = {"name": "t", "model": {"name": "cp_mobile"},
                  "workflow": {"stages": [{"name": "a"}, {"name": "b", "keep": "best"}]}}
    with pytest.raises(ConfigError, match="train.keep"):
        kept_weights(load_config(stage_best)[1])
    ok = load_recipe("quickstart", ["train.keep=best", "data.validation={fraction: 0.1, by: identifier}"])
    assert kept_weights(load_config(ok)[1]) == ["best"]
    # the command line refuses before any data is read: one line, exit status 2
    rc = main(["train", "quickstart", "--data", str(tmp_path / "absent"), "--out", str(tmp_path / "run"),
               "--set", "train.keep=best", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "train.keep" in err[0]


def test_no_paper_recipe_keeps_a_best_epoch_without_validation():
    from asclab.config import list_recipes

    for name in list_recipes():
        kept_weights(load_config(name)[1])  # raises for best without data.validation


@pytest.mark.slow
def test_best_epoch_is_chosen_on_the_carved_split(tmp_path, monkeypatch):
    from asclab.workflows.train import train_run
    from asclab.data.synth import make_synthetic_dataset
    import asclab.workflows.train as fit_module  # train_run calls the fit it imported
    from asclab.train.checkpoint import load_model_file

    data = tmp_path / "synth"
    index = make_synthetic_dataset(data, n_per_class_device=1, seconds=0.5, sample_rate=16000, seed=0)
    seen = {}
    real_fit = fit_module.fit

    def spy(recipe, train_records, val_records, *args, **kwargs):
        seen["train"], seen["val"] = list(train_records), list(val_records)
        return real_fit(recipe, train_records, val_records, *args, **kwargs)

    monkeypatch.setattr(fit_module, "fit", spy)
    summary = train_run("quickstart", data, tmp_path / "run", progress=False,
                        overrides=LIGHT + ["train.epochs=2", "train.keep=best",
                                           "data.validation={fraction: 0.2, by: identifier}"])
    test_paths = {str(r.path) for r in index.test}
    train_paths = {str(r.path) for r in index.train}
    val_paths = {str(r.path) for r in seen["val"]}
    assert val_paths and val_paths <= train_paths and not (val_paths & test_paths)  # carved from training
    assert {recording_id(r) for r in seen["val"]}.isdisjoint({recording_id(r) for r in seen["train"]})
    assert summary["weights"].startswith("best epoch on the validation split")
    assert (tmp_path / "run" / "checkpoints" / "best.ckpt").exists()
    assert summary["metrics"]["n"] == len(index.test)  # the test split is evaluated at the end
    mf = load_model_file(tmp_path / "run" / "model.ckpt")
    assert mf.data_summary["n_validation"] == len(seen["val"]) and mf.data_summary["weights"] == summary["weights"]
    run_info = json.loads((tmp_path / "run" / "run_info.json").read_text())
    assert run_info["n_validation"] == len(seen["val"]) and run_info["n_train"] == len(seen["train"])


@pytest.mark.slow
def test_open_set_weight_is_tuned_on_the_carved_split_and_stored(tmp_path):
    from asclab.workflows.train import train_run
    from asclab.data import TAU_SCENES
    from asclab.data.synth import make_synthetic_dataset
    from asclab.evaluate.inference import Predictor
    from asclab.evaluate.openset import TUNE_WEIGHTS

    data = tmp_path / "synth"
    make_synthetic_dataset(data, n_per_class_device=1, seconds=0.5, sample_rate=16000, seed=0)
    mapping = {s: s for s in TAU_SCENES}
    mapping["tram"] = "unknown"
    common = LIGHT + ["train.epochs=1", "data.class_map=" + str(mapping),
                      "inference.openset={unknown_label: unknown, weight: 5.0, tune: true}"]
    with pytest.raises(ConfigError, match="inference.openset.tune"):
        train_run("quickstart", data, tmp_path / "refused", progress=False, overrides=common)
    summary = train_run("quickstart", data, tmp_path / "run", progress=False,
                        overrides=common + ["data.validation={fraction: 0.3}"])
    rule = Predictor.load(tmp_path / "run" / "model.ckpt").openset
    assert rule.unknown_label == "unknown" and rule.weight in TUNE_WEIGHTS and rule.tune
    assert rule.tuned_on.startswith("validation split") and summary["openset"]["weight"] == rule.weight
