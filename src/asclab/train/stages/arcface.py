"""Stage keys ``mode`` and ``arcface``: train through an ArcFace head (Horvath et al. 2021 sec. 6).

``mode: arcface`` trains the model's embedding through an additive angular margin head
(``asclab.losses.ArcFaceHead``, built the first time with scale ``s`` and margin ``m``: the
workflow's ``arcface`` block, overridden key by key by the stage's); ``mode: classify`` (the
default) uses the model's own head again, as Horvath's stage 4 does once the ArcFace head is
dropped. Every stage sets its mode.
"""
from __future__ import annotations

import torch.nn as nn

from asclab.config import ArcFaceConfig, parse_block
from asclab.train.stages.base import STAGE_PARTS, Phase, StageContext, StagePart


@STAGE_PARTS.register("mode", "arcface")
class ArcFaceMode(StagePart):
    key = "mode"
    order = 10  # the ArcFace head exists before trainable parts are chosen

    def active(self, phase: Phase) -> bool:
        return True  # classify switches the ArcFace head off again

    def prepare(self, module: nn.Module, ctx: StageContext) -> None:
        # merged on the mappings: a stage's {m: 0.3} keeps the workflow's s
        written = {**((ctx.run.recipe.get("workflow") or {}).get("arcface") or {}),
                   **(ctx.phase.raw.get("arcface") or {})}
        module.set_mode(ctx.stage.mode, parse_block(ArcFaceConfig, written, "workflow.arcface"))
