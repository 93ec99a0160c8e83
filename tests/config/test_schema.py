"""The typed recipe schema (asclab.config), and property tests (hypothesis) for it and for
the metadata and manifest parsers."""
from __future__ import annotations

import csv
import tempfile
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asclab.config import DEFAULTS, list_recipes, load_config, load_recipe
from asclab.data.classmaps import TAU_SCENES
from asclab.data.index import open_dataset
from asclab.data.manifest import read_manifest
from asclab.errors import ConfigError, DataError
from asclab.features.config import FeatureConfig
from asclab.config import DataConfig, RecipeConfig, TrainConfig, validate_recipe

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", sorted(list_recipes()))
def test_every_shipped_recipe_validates_into_typed_config(name):
    recipe, cfg = load_config(name)
    assert isinstance(cfg, RecipeConfig)
    assert cfg.features == FeatureConfig.from_dict(recipe["features"])
    assert cfg.train.epochs == recipe["train"]["epochs"] and cfg.train.batch_size == recipe["train"]["batch_size"]
    assert cfg.model.name == recipe["model"]["name"]
    assert {k: v for k, v in recipe["model"].items() if k != "name"} == cfg.model.params


def test_every_default_key_is_in_the_schema():
    """DEFAULTS (config.py) and the dataclasses name the same keys, block by block."""
    for block, cls in (("data", DataConfig), ("train", TrainConfig)):
        assert set(DEFAULTS[block]) <= {f.name for f in fields(cls)}, block
    assert set(DEFAULTS) <= {f.name for f in fields(RecipeConfig)}


@pytest.mark.parametrize("override, words", [
    ("train.epoch=1", ["unknown recipe key train.epoch", "did you mean train.epochs?"]),
    ("train.batchsize=4", ["train.batchsize", "did you mean train.batch_size?"]),
    ("train.epochs=abc", ["train.epochs", "'abc'", "an integer"]),
    ("train.batch_size=-4", ["train.batch_size", "-4", ">= 1"]),
    ("train.keep=foo", ["train.keep", "'foo'", "best, last"]),
    ("features.sample_rate=0", ["features.sample_rate", "> 0"]),
    ("features.n_mels=-1", ["features.n_mels", ">= 1"]),
    ("data.duration=0", ["data.duration", "> 0"]),
    ("features.channels=quad", ["features.channels", "mono, stereo"]),
    ("augment.spec=[{name: time_mask, max_fraction: abc}]", ["augment.spec[0].max_fraction", "a number"]),
    ("augment.spec=[{name: tim_mask}]", ["augment.spec[0].name", "did you mean time_mask?"]),
    ("schedule.t_0=3", ["schedule.t_0", "schedule takes"]),
    ("optim.momentum=0.9", ["optim.momentum", "optim takes"]),  # quickstart's optimizer is adam
    ("data.class_map=task2", ["data.class_map", "task1b_3class"]),
    ("inference.openset={weight: 5}", []),  # allowed: a complete block
])
def test_override_errors_name_key_value_and_what_is_allowed(override, words):
    if not words:
        load_recipe("quickstart", [override])
        return
    with pytest.raises(ConfigError) as exc:
        load_recipe("quickstart", [override])
    msg = str(exc.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_settings_that_clash_are_refused_before_any_data_is_read():
    with pytest.raises(ConfigError, match=r"train\.train_crop_frames: 500 is longer than the clip's 65 frames"):
        load_recipe("quickstart", ["train.train_crop_frames=500"])
    with pytest.raises(ConfigError, match=r"augment\.mix\.crop_frames: 400 is larger than"):
        load_recipe("mcdonnell2019_task1b", ["data.duration=1.0"])  # 1 s: 36 frames after unpadded deltas
    with pytest.raises(ConfigError, match=r"features\.fmax: 20000 is above the Nyquist"):
        load_recipe("quickstart", ["features.fmax=20000", "features.sample_rate=32000"])
    load_recipe("mcdonnell2019_task1b", ["data.duration=1.0", "augment.mix.crop_frames=24"])


def test_workflow_stage_blocks_are_checked_against_the_recipe():
    with pytest.raises(ConfigError, match=r"workflow\.stages\[1\]\.schedule\.lr_starts"):
        load_recipe("horvath2021_mnv2_arcface", ["workflow.stages=[{name: a}, {name: b, schedule: {name: "
                                                 "exponential, lr_starts: 1}}]"])
    with pytest.raises(ConfigError, match=r"workflow\.stages\[0\]\.trainable\[0\]: 'heads' is not allowed"):
        load_recipe("quickstart", ["workflow.stages=[{name: a, trainable: [heads]}]"])


def test_duplicate_key_in_a_recipe_file(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("name: r\noptim:\n  lr: 0.1\n  lr: 0.2\n")
    with pytest.raises(ConfigError, match=r"r\.yaml: line 4: key 'lr' is given twice"):
        load_recipe(p)


def test_a_number_written_as_text_is_read_as_a_number():
    assert load_recipe("quickstart", ["optim.lr=1e-3"])["optim"]["lr"] == pytest.approx(1e-3)


# ------------------------------------------------------------------ properties
TRAIN_KEYS = [f.name for f in fields(TrainConfig)]
KEY = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)


@PROPERTY
@given(block=st.sampled_from(["data", "train", "inference", "features"]), key=KEY)
def test_any_unknown_key_is_named(block, key):
    known = {"data": DataConfig, "train": TrainConfig, "features": FeatureConfig}.get(block)
    names = {f.name for f in fields(known)} if known else {"tta", "tta_augment", "openset", "window_hop"}
    if key in names:
        return
    with pytest.raises(ConfigError) as exc:
        load_recipe("quickstart", [f"{block}.{key}=1"])
    assert f"{block}.{key}" in str(exc.value) and "\n" not in str(exc.value)


@PROPERTY
@given(value=st.integers(-10**6, 10**6))
def test_batch_size_is_accepted_exactly_within_its_range(value):
    """Accepted from 1 to 65536 (the bound on batch sizes, issue 21)."""
    if 1 <= value <= 1 << 16:
        assert load_recipe("quickstart", [f"train.batch_size={value}"])["train"]["batch_size"] == value
    else:
        with pytest.raises(ConfigError, match=rf"train\.batch_size: {value} is out of range"):
            load_recipe("quickstart", [f"train.batch_size={value}"])


@PROPERTY
@given(key=st.sampled_from(["epochs", "batch_size", "seed", "val_every", "num_workers"]),
       value=st.one_of(st.text(alphabet="abcxyz", min_size=1, max_size=5), st.booleans(),
                       st.floats(-1e6, 1e6, allow_subnormal=False).filter(lambda f: f != int(f)),
                       st.lists(st.integers(), max_size=2)))
def test_integer_settings_refuse_other_types(key, value):
    recipe = load_recipe("quickstart")
    recipe["train"][key] = value
    with pytest.raises(ConfigError, match=rf"train\.{key}"):
        validate_recipe(recipe)


@PROPERTY
@given(name=st.sampled_from(sorted(list_recipes())), epochs=st.integers(1, 1000), batch=st.integers(1, 512),
       seed=st.integers(0, 2**31))
def test_a_validated_recipe_survives_its_yaml_dump(name, epochs, batch, seed):
    """What a run folder records (recipe.yaml) loads back to the same recipe and typed config."""
    recipe, cfg = load_config(name, [f"train.epochs={epochs}", f"train.batch_size={batch}", f"train.seed={seed}"])
    again = yaml.safe_load(yaml.safe_dump(recipe, sort_keys=False))
    assert validate_recipe(again) == cfg


# ------------------------------------------------------- metadata and manifests
NAME = st.text(alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd"), whitelist_characters=" -_é音",
                                      max_codepoint=0x9fff), min_size=1, max_size=16).map(str.strip).filter(bool)
ROW = st.tuples(NAME, st.sampled_from(list(TAU_SCENES)), st.sampled_from(["train", "test", ""]))


@PROPERTY
@given(rows=st.lists(ROW, min_size=1, max_size=12, unique_by=lambda r: r[0]), delimiter=st.sampled_from([",", "\t"]))
def test_manifest_reads_back_what_was_written(rows, delimiter):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "manifest.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, delimiter=delimiter)
            w.writerow(["path", "label", "split"])
            w.writerows([(f"{n}.wav", label, split) for n, label, split in rows])
        records = read_manifest(path)
        assert [(r.path.name, r.label, r.split) for r in records] == \
            [(f"{n}.wav", label, split or None) for n, label, split in rows]
        assert [r.extra["row"] for r in records] == list(range(2, len(rows) + 2))


@PROPERTY
@given(rows=st.lists(ROW, min_size=2, max_size=8, unique_by=lambda r: r[0]), bad=st.integers(0, 7),
       split=st.text(alphabet="xyz", min_size=1, max_size=4))
def test_manifest_bad_split_names_its_row(rows, bad, split):
    bad %= len(rows)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "manifest.csv"
        lines = ["path,label,split"] + [f"{n}.wav,{label},{split if i == bad else s}"
                                        for i, (n, label, s) in enumerate(rows)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        with pytest.raises(DataError, match=rf"manifest\.csv: row {bad + 2}: split '{split}'"):
            read_manifest(path)


@PROPERTY
@given(labels=st.lists(st.sampled_from(list(TAU_SCENES)), min_size=2, max_size=10),
       stranger=st.text(alphabet="qwxz", min_size=3, max_size=8), at=st.integers(0, 9))
def test_tau_metadata_label_outside_the_scenes_names_file_and_row(labels, stranger, at):
    at %= len(labels)
    labels = list(labels)
    labels[at] = stranger
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        rows = [f"audio/{lab}-c-{i}-0-a.wav\t{lab}\t{lab}-c-{i}\ta" for i, lab in enumerate(labels)]
        (root / "meta.csv").write_text("filename\tscene_label\tidentifier\tsource_label\n" + "\n".join(rows) + "\n")
        with pytest.raises(DataError, match=rf"meta\.csv: row {at + 2}: label '{stranger}' of audio/{stranger}-c-{at}"):
            open_dataset(root, check_files=False)


def test_train_run_parses_its_recipe_once_and_hands_the_typed_config_down(tmp_path, monkeypatch):
    """Each recipe file is read once per training (not once per stop on the way to the model),
    and fit receives the RecipeConfig parsed from it."""
    import asclab.config.recipes as config
    import asclab.workflows.train as fit_module  # train_run calls the fit it imported
    from asclab.workflows.train import train_run
    from asclab.data.synth import make_synthetic_dataset

    data = tmp_path / "synth"
    make_synthetic_dataset(data, n_per_class_device=1, n_test_per_class_device=1, seconds=1.0, sample_rate=16000,
                           seed=3)
    reads: list[str] = []
    real_read = config._read_yaml
    monkeypatch.setattr(config, "_read_yaml", lambda p: reads.append(Path(p).name) or real_read(p))
    handed: list = []
    real_fit = fit_module.fit
    monkeypatch.setattr(fit_module, "fit", lambda *a, **kw: handed.append(kw.get("config")) or real_fit(*a, **kw))
    train_run("quickstart", data, tmp_path / "run", overrides=["train.epochs_cap=1", "train.batch_size=16"],
              cache_dir=tmp_path / "cache", progress=False)
    assert reads and all(reads.count(name) == 1 for name in reads), reads
    assert len(handed) == 1 and isinstance(handed[0], RecipeConfig)
    assert handed[0].train.epochs_cap == 1 and handed[0].train.batch_size == 16


def test_typed_tta_block_gives_the_builders_the_recipe_mappings():
    """evaluate reads inference.tta/tta_augment typed (asclab.api.inference_settings); the
    mappings handed to the augmentation builders are the recipe's own."""
    from asclab.workflows.evaluate import inference_settings, tta_augment_mapping

    recipe, cfg = load_config("horvath2021_mnv2_arcface")
    assert tta_augment_mapping(cfg.inference.tta_augment) == recipe["inference"]["tta_augment"]
    inf = inference_settings(Path("m.ckpt"), recipe)
    assert inf.tta == recipe["inference"]["tta"] == 10
    assert tta_augment_mapping(inf.tta_augment) == recipe["inference"]["tta_augment"]
    assert tta_augment_mapping(load_config("quickstart")[1].inference.tta_augment) is None
    assert inference_settings(Path("m.ckpt"), {}).tta == 0  # a model file without a recipe: defaults
