"""Stages as parts (asclab.train.stages): a part registered here, in a test, trains through
fit() without fit() knowing it; every stage key has its part; unknown keys are one-line errors."""
from __future__ import annotations

from dataclasses import dataclass, fields

import pytest
import torch

from conftest import tone_records

from asclab.config import StageConfig, load_recipe
from asclab.errors import ConfigError
from asclab.train.fit import fit
from asclab.train.stages import STAGE_PARTS, StagePart, stage_list
from asclab.train.stages.base import PHASE_KEYS

CALLS: list[tuple[str, str]] = []  # (hook, phase name) as the toy part saw them


@dataclass
class ToyConfig:
    scale: float = 1.0


@STAGE_PARTS.register("toy_scale")
class ToyScale(StagePart):
    """Scales the classifier's weights after the phase (and again when a resume skips it)."""

    key = "toy_scale"
    config = ToyConfig
    order = 55

    def prepare(self, module, ctx) -> None:
        assert ctx.phase.setting(self.key) == ToyConfig(scale=0.0) and ctx.config.train.epochs == 1
        CALLS.append(("prepare", ctx.phase.name))

    def datasets(self, train, val, ctx):
        CALLS.append(("datasets", ctx.phase.name))
        return train, val

    def finish(self, module, ctx) -> None:
        CALLS.append(("finish", ctx.phase.name))
        self.scale(module, ctx)

    def restore(self, module, ctx) -> None:
        CALLS.append(("restore", ctx.phase.name))
        self.scale(module, ctx)

    def end(self, module, run) -> None:
        CALLS.append(("end", None))

    def scale(self, module, ctx) -> None:
        with torch.no_grad():
            for p in module.model.classifier.parameters():
                p.mul_(ctx.phase.setting(self.key).scale)


RECIPE = {
    "name": "toy_part",
    "data": {"duration": 1.0},
    "features": {"sample_rate": 16000, "n_fft": 1024, "hop_length": 512, "n_mels": 32, "scale": "log"},
    "model": {"name": "cp_mobile", "base_channels": 8},
    "optim": {"name": "adam", "lr": 0.01},
    "schedule": {"name": "cosine"},
    "train": {"epochs": 1, "batch_size": 8, "seed": 0},
    "workflow": {"stages": [{"name": "general"}, {"name": "toy", "parts": {"toy_scale": {"scale": 0.0}}}]},
}


def test_a_part_registered_in_a_test_trains_through_fit_and_is_restored_on_resume(tmp_path, one_torch_thread):
    recs = tone_records(tmp_path / "clips", 12, 16000, seed=0, f0=300, step=150)
    classes = sorted({r.label for r in recs})
    recipe = load_recipe(RECIPE)
    CALLS.clear()
    result = fit(recipe, recs, [], classes, tmp_path / "run", progress=False)
    assert CALLS == [("prepare", "toy"), ("datasets", "toy"), ("finish", "toy"), ("end", None)]
    zeroed = [p for p in result.module.model.classifier.parameters()]
    assert zeroed and all(torch.count_nonzero(p) == 0 for p in zeroed)
    assert [s["name"] for s in result.stages] == ["general", "toy"]
    assert (tmp_path / "run" / "stages" / "2_toy" / "stage_done.json").exists()
    # resume of the finished run: the toy phase is not trained again, its effect is restored
    CALLS.clear()
    again = fit(recipe, recs, [], classes, tmp_path / "run", progress=False, resume=True)
    assert CALLS == [("prepare", "toy"), ("restore", "toy"), ("end", None)]
    assert all(torch.count_nonzero(p) == 0 for p in again.module.model.classifier.parameters())
    other = [k for k in result.module.model.state_dict() if not k.startswith("classifier.")]
    assert all(torch.equal(result.module.model.state_dict()[k], again.module.model.state_dict()[k]) for k in other)


def test_every_stage_key_is_a_registered_part():
    keys = [f.name for f in fields(StageConfig) if f.name not in PHASE_KEYS]
    assert keys and all(k in STAGE_PARTS for k in keys), [k for k in keys if k not in STAGE_PARTS]


@pytest.mark.parametrize("stages, message", [
    ([{"name": "a", "bogus": 1}], r"^unknown recipe key workflow\.stages\[0\]\.bogus; workflow\.stages\[0\] takes: "),
    ([{"name": "a", "prune": {"amout": 0.5}}], r"^unknown recipe key workflow\.stages\[0\]\.prune\.amout "
                                                r"\(did you mean workflow\.stages\[0\]\.prune\.amount\?\)"),
])
def test_unknown_stage_keys_are_one_line_errors(stages, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_recipe({**RECIPE, "workflow": {"stages": stages}})
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="workflow stage 1: unknown key.s. bogus$"):
        stage_list({"workflow": {"stages": [{"name": "a", "bogus": 1}]}})  # an unvalidated recipe


def test_unknown_or_mistyped_parts_entries_are_one_line_errors(tmp_path):
    recs = tone_records(tmp_path / "clips", 3, 16000, seed=0, f0=300, step=150)
    classes = sorted({r.label for r in recs})
    for entry, message in [({"nope": {}}, r"^workflow stage 2: parts: unknown stage part 'nope'; registered: .*toy_scale"),
                           ({"prune": {"amount": 0.5}}, r"^workflow stage 2: parts: unknown stage part 'prune'; "
                                                        r"give it as the stage key prune"),
                           ({"toy_scale": {"scale": "x"}}, r"^recipe key workflow\.stages\[1\]\.parts\.toy_scale\.scale"),
                           ({"toy_scale": {"size": 1}}, r"^unknown recipe key workflow\.stages\[1\]\.parts\.toy_scale\.size")]:
        recipe = load_recipe({**RECIPE, "workflow": {"stages": [{"name": "a"}, {"name": "b", "parts": entry}]}})
        with pytest.raises(ConfigError, match=message) as err:
            fit(recipe, recs, [], classes, tmp_path / "run", progress=False)
        assert "\n" not in str(err.value)
