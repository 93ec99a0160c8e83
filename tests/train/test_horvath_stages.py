"""Horvath et al. 2021 sec. 6: which records and augmentations each ArcFace workflow stage trains with."""
from __future__ import annotations

from pathlib import Path

import pytest

from asclab.config import load_recipe
from asclab.data.records import Record
from asclab.errors import ConfigError
from asclab.train.data import select_training_records
from asclab.train.module import ASCModule
from asclab.train.stages import apply_stage, stage_list, stage_records

CLASSES = ["c0", "c1"]


def is_off(aug) -> bool:
    """No augmentation: none built, or an empty composition."""
    return aug is None or len(getattr(aug, "transforms", [aug])) == 0


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
    stages = {s["name"]: s for s in stage_list(recipe)}
    assert stage_records(recs, recipe, stages["arcface_head"], 1) == recs  # stage 2: every training record
    assert stage_records(recs, recipe, stages["focal_pretrain"], 0) is None  # stages 1, 4: the balanced run set
    assert stage_records(recs, recipe, stages["retrain_top"], 3) is None

    module = ASCModule(recipe, CLASSES, devices=["a", "b"], class_counts=[4, 4])
    apply_stage(module, recipe, stages["focal_pretrain"])
    assert not is_off(module.wave_aug) and not is_off(module.spec_aug) and module.mix is not None
    srecipe = apply_stage(module, recipe, stages["arcface_head"])
    assert is_off(module.wave_aug) and is_off(module.spec_aug) and module.mix is None  # no augmentation
    assert srecipe["augment"] == {"waveform": [], "spec": [], "mix": None}
    apply_stage(module, recipe, stages["retrain_top"])  # stage 4: "used all of the augmentations"
    assert not is_off(module.wave_aug) and module.mix is not None


def test_full_split_without_balancing_reuses_the_run_set_and_clashes_with_balance():
    recipe = load_recipe("horvath2021_mnv2_arcface", ["data.balance=null"])
    assert stage_records(records(), recipe, {"name": "s", "full_split": True}, 0) is None
    with pytest.raises(ConfigError, match="full_split"):
        stage_records(records(), recipe, {"name": "s", "full_split": True, "balance": {"per_cell": 1}}, 0)
