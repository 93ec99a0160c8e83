"""Horvath et al. 2021 sec. 6: which records and augmentations each ArcFace workflow stage trains with."""
from __future__ import annotations

from pathlib import Path

import pytest

from asclab.config import as_config, load_recipe
from asclab.data.records import Record
from asclab.errors import ConfigError
from asclab.train.data import select_training_records
from asclab.train.module import ASCModule
from asclab.train.stages import RunContext, plan_phases, prepare_phase, stage_context, stage_parts
from asclab.train.stages.balance import stage_records

CLASSES = ["c0", "c1"]


def is_off(aug) -> bool:
    """No augmentation: none built, or an empty composition."""
    return aug is None or len(getattr(aug, "transforms", [aug])) == 0


def contexts(recipe: dict, recs: list[Record]) -> dict:
    """Each stage's context by name, as fit() builds them (the run's records: data.balance applied)."""
    run = RunContext(recipe, as_config(recipe), recs, select_training_records(recs, recipe, 0))
    phases = plan_phases(run, stage_parts())
    return {p.name: stage_context(run, p, i) for i, p in enumerate(phases)}


def apply_stage(module: ASCModule, ctx) -> dict:
    """The stage's parts prepare the module, as fit() does before the phase; its merged recipe."""
    parts = [p for p in stage_parts() if p.active(ctx.phase)]
    prepare_phase(module, parts, ctx)
    return ctx.recipe


def records() -> list[Record]:
    """3 clips per (city, device, label) cell: 2 x 2 x 2 cells, 24 clips."""
    out = []
    for city in ("x", "y"):
        for device in ("a", "b"):
            for label in CLASSES:
                for k in range(3):
                    out.append(Record(path=Path(f"{city}-{device}-{label}-{k}.wav"), label=label,
                                      device=device, city=city))
    return out


@pytest.mark.parametrize("name", ["horvath2021_mnv2_arcface", "horvath2021_cpresnet_arcface"])
def test_arcface_stage_trains_on_the_full_split_without_augmentation(name):
    recipe = load_recipe(name, ["data.balance.per_cell=1"])
    recs = records()
    balanced = select_training_records(recs, recipe, 0)
    assert len(balanced) == 8 < len(recs)  # the run's records: one per cell
    stages = contexts(recipe, recs)
    assert [c.index for c in stages.values()] == [0, 1, 2, 3]
    assert stage_records(stages["arcface_head"]) == recs  # stage 2: every training record
    assert stage_records(stages["focal_pretrain"]) is None  # stages 1, 4: the balanced run set
    assert stage_records(stages["retrain_top"]) is None

    module = ASCModule(recipe, CLASSES, devices=["a", "b"], class_counts=[4, 4])
    apply_stage(module, stages["focal_pretrain"])
    assert not is_off(module.wave_aug) and not is_off(module.spec_aug) and module.mix is not None
    srecipe = apply_stage(module, stages["arcface_head"])
    assert is_off(module.wave_aug) and is_off(module.spec_aug) and module.mix is None  # no augmentation
    assert srecipe["augment"] == {"waveform": [], "spec": [], "mix": None}
    assert module.mode == "arcface" and (module.arcface.s, module.arcface.m) == tuple(recipe["workflow"]["arcface"].values())
    trained = {n.split(".")[0] for n, p in module.named_parameters() if p.requires_grad}
    assert trained == {"arcface"}  # stage 2: the body frozen, the ArcFace header trained
    apply_stage(module, stages["retrain_top"])  # stage 4: "used all of the augmentations"
    assert not is_off(module.wave_aug) and module.mix is not None
    assert module.mode == "classify"


def test_full_split_without_balancing_reuses_the_run_set_and_clashes_with_balance():
    recipe = load_recipe("horvath2021_mnv2_arcface", ["data.balance=null"])
    assert stage_records(contexts(recipe, records())["arcface_head"]) is None
    both = load_recipe("horvath2021_mnv2_arcface",
                       ["data.balance=null", "workflow.stages=[{name: s, full_split: true, balance: {per_cell: 1}}]"])
    with pytest.raises(ConfigError, match="'s': full_split and balance exclude each other"):
        stage_records(contexts(both, records())["s"])


def test_a_stage_balance_draws_with_the_phase_seed_over_the_recipes_keys():
    recipe = load_recipe("horvath2021_mnv2_arcface",
                         ["data.balance={per_cell: 3, keys: [device, label]}",
                          "workflow.stages=[{name: a}, {name: b, balance: {per_cell: 1}}]"])
    recs = records()
    got = stage_records(contexts(recipe, recs)["b"])
    want = select_training_records(recs, {**recipe, "data": {**recipe["data"], "balance": {"per_cell": 1,
                                                                                            "keys": ["device", "label"]}}}, 1)
    assert got == want and len(got) == 4  # one per (device, label) cell: the recipe's keys kept
