"""Workflow stages as parts: ``base`` (the interface and the STAGE_PARTS registry), ``plan``
(stages typed, expanded, merged recipes) and one file per part, each registered under the
StageConfig key it implements. Importing this package registers them; a new part is one file
here plus its import below."""
from asclab.train.stages import arcface, balance, device_specific, prune, qat, trainable  # noqa: F401 (registration)
from asclab.train.stages.base import STAGE_PARTS, Phase, RunContext, StageContext, StagePart, stage_parts
from asclab.train.stages.plan import (cap_epochs, plan_phases, prepare_phase, stage_context, stage_list,
                                      stage_recipe)

__all__ = ["STAGE_PARTS", "Phase", "RunContext", "StageContext", "StagePart", "cap_epochs", "plan_phases",
           "prepare_phase", "stage_context", "stage_list", "stage_parts", "stage_recipe"]
