"""A run's phases: the workflow's stages checked, typed, expanded by their parts, and each
stage's merged recipe. A recipe without a workflow is one stage, ``train``."""
from __future__ import annotations

from collections.abc import Mapping

import torch.nn as nn

from asclab.config import StageConfig, as_config, parse_block
from asclab.config.stage_merge import cap_epochs, stage_recipe  # noqa: F401  (re-exported)
from asclab.errors import ConfigError
from asclab.train.stages.base import (PHASE_KEYS, STAGE_FIELDS, STAGE_PARTS, Phase, RunContext, StageContext,
                                      StagePart)


def stage_list(recipe: dict) -> list[dict]:
    """The recipe's stages as it writes them (``[{"name": "train"}]`` without a workflow):
    every key a StageConfig field, a part that must end the workflow (``last``) at its end."""
    wf = recipe.get("workflow")
    if not wf or not wf.get("stages"):
        return [{"name": "train"}]
    stages = wf.get("stages") or []
    last = [cls for cls in dict.fromkeys(STAGE_PARTS.get(n) for n in STAGE_PARTS) if cls.last]
    for i, st in enumerate(stages):
        unknown = sorted(set(st) - set(STAGE_FIELDS))
        if unknown:
            raise ConfigError(f"workflow stage {i + 1}: unknown key(s) {', '.join(unknown)}")
        for cls in last:
            if _written(st, cls.key) not in (None, False) and i != len(stages) - 1:
                raise ConfigError(f"workflow stage {i + 1}: {cls.key} must be the last stage ({cls.last})")
    return [dict(s) for s in stages]


def _written(stage: Mapping, key: str):
    return stage.get(key) if key in STAGE_FIELDS else (stage.get("parts") or {}).get(key)


def plan_phases(run: RunContext, parts: list[StagePart]) -> list[Phase]:
    """One phase per stage, typed (``run.config``'s StageConfig objects beside the recipe's
    mappings), ``parts:`` entries checked, then each part's ``expand``."""
    raws = stage_list(run.recipe)
    wf = run.config.workflow
    typed = list(wf.stages) if wf is not None and wf.stages else [StageConfig(name="train")]
    phases = [Phase(stage, raw, i, raw.get("name"), _typed_parts(stage, i))
              for i, (stage, raw) in enumerate(zip(typed, raws))]
    for part in parts:
        phases = part.expand(phases, run)
    return phases


def _typed_parts(stage: StageConfig, i: int) -> dict:
    out = {}
    for name, value in (stage.parts or {}).items():
        if name not in STAGE_PARTS or name in STAGE_FIELDS:
            hint = f"; give it as the stage key {name}" if name in STAGE_FIELDS and name not in PHASE_KEYS else ""
            raise ConfigError(f"workflow stage {i + 1}: parts: unknown stage part {name!r}{hint}; "
                              f"registered: {', '.join(n for n in STAGE_PARTS.names() if n not in STAGE_FIELDS)}")
        cls = STAGE_PARTS.get(name).config
        out[name] = parse_block(cls, value, f"workflow.stages[{i}].parts.{name}") if cls is not None else value
    return out


def stage_context(run: RunContext, phase: Phase, index: int) -> StageContext:
    """The phase's context: its stage's merged recipe, validated once."""
    srecipe = stage_recipe(run.recipe, phase.raw)
    return StageContext(run, phase, index, srecipe, as_config(srecipe))


def prepare_phase(module: nn.Module, parts: list[StagePart], ctx: StageContext) -> None:
    """The stage's parts change the module (``begin``, then ``prepare``, in order), then its
    loss and augmentation are rebuilt from the stage's recipe."""
    for part in parts:
        part.begin(module, ctx)
    for part in parts:
        part.prepare(module, ctx)
    module.configure_training(ctx.config)
