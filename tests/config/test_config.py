import pytest

from asclab.config import apply_overrides, list_recipes, load_recipe
from asclab.errors import ConfigError
from asclab.features.config import FeatureConfig


def test_every_recipe_loads_and_has_a_description():
    recipes = list_recipes()
    assert len(recipes) >= 19
    for name, desc in recipes.items():
        r = load_recipe(name)
        assert desc, name
        assert r["model"]["name"]
        FeatureConfig.from_dict(r["features"])


def test_base_recipe_is_merged_and_overridden():
    r = load_recipe("gao_lee2024_split25")
    assert r["data"]["split"] == "split25"
    assert r["train"]["batch_size"] == 78 and r["optim"]["lr"] == 0.005
    assert r["features"]["hop_length"] == 472  # inherited from the 100 % recipe
    r100 = load_recipe("gao_lee2024_split100")
    assert r100["train"]["batch_size"] == 130 and r100["optim"]["lr"] == 0.01


def test_paper_values_in_2019_recipes():
    a = load_recipe("mcdonnell2019_task1a")
    assert a["features"]["channels"] == "stereo" and a["features"]["sample_rate"] == 48000
    assert FeatureConfig.from_dict(a["features"]).in_chans == 6
    assert a["schedule"]["restarts"] == [2, 6, 14, 30, 62, 126, 254]
    assert a["train"]["epochs"] == 510
    c = load_recipe("mcdonnell2019_task1c")
    assert c["inference"]["openset"]["weight"] == 5.0


def test_overrides_parse_yaml_values():
    r = load_recipe("quickstart", ["train.epochs=2", "model.base_channels=8", "augment.mix=null"])
    assert r["train"]["epochs"] == 2 and r["model"]["base_channels"] == 8 and r["augment"]["mix"] is None


def test_bad_override_and_unknown_recipe():
    with pytest.raises(ConfigError, match="key.sub=value"):
        apply_overrides({}, ["train.epochs"])
    with pytest.raises(ConfigError, match="unknown top-level key"):
        load_recipe("quickstart", ["nonsense.x=1"])
    with pytest.raises(ConfigError, match="unknown recipe"):
        load_recipe("no_such_recipe")


def test_unknown_feature_key_is_an_error():
    with pytest.raises(ConfigError, match="unknown feature setting"):
        FeatureConfig.from_dict({"nfft": 1024})


def test_recipe_file_with_unknown_key(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("model: {name: cp_mobile}\nmodle: {}\n")
    with pytest.raises(ConfigError, match="unknown recipe key"):
        load_recipe(p)


def test_every_recipe_stage_builds_its_parts():
    """Every block of every recipe (and each workflow stage) is accepted by its builder."""
    import torch

    from asclab.augment import build_batch_mix, build_spec_augment, build_waveform_augment
    from asclab.losses import build_loss
    from asclab.optim.optimizers import build_optimizer
    from asclab.optim.schedules import build_scheduler
    from asclab.train.stages import stage_list, stage_recipe

    for name in list_recipes():
        r = load_recipe(name)
        for st in stage_list(r):
            rr = stage_recipe(r, st)
            a = rr["augment"]
            build_waveform_augment(a.get("waveform") or [], sample_rate=rr["features"].get("sample_rate"))
            build_spec_augment(a.get("spec") or [])
            build_batch_mix(a.get("mix"))
            build_loss(rr["loss"], class_counts=[10] * 10)
            opt = build_optimizer(torch.nn.Conv2d(1, 1, 3), rr["optim"])
            build_scheduler(opt, rr["schedule"], epochs=int(rr["train"]["epochs"]), steps_per_epoch=3)
        tta = r["inference"].get("tta_augment") or {}
        build_waveform_augment(tta.get("waveform") or [])
        build_spec_augment(tta.get("spec") or [])


def test_stage_with_another_loss_replaces_the_block():
    from asclab.train.stages import stage_list, stage_recipe

    r = load_recipe("horvath2021_mnv2_arcface")
    stages = stage_list(r)
    assert [s["name"] for s in stages] == ["focal_pretrain", "arcface_head", "arcface_finetune", "retrain_top"]
    last = stage_recipe(r, stages[-1])
    assert last["loss"] == {"name": "ce"} and last["train"]["epochs"] == 30
    assert stage_recipe(r, stages[1])["augment"] == {"waveform": [], "spec": [], "mix": None}
    assert load_recipe("horvath2021_cpresnet_arcface")["workflow"]["arcface"] == {"s": 30.0, "m": 0.35}
