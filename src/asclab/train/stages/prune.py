"""Stage key ``prune: {amount: 0.6}``: global L1 pruning, then fine-tuning (QTI 2020 sec. 5.1).

Before the stage the smallest-magnitude ``amount`` of all convolution weights, across layers
together, are masked to zero (``asclab.compress.prune``); the stage fine-tunes with the masks in
place, and after it the masks are folded into the weights. The complexity of the model before
pruning and after pruning and fine-tuning is logged (QTI 2020 sec. 5: the size check), the run's
``FitResult.pruning``.
"""
from __future__ import annotations

import torch.nn as nn

from asclab.compress.complexity import complexity_report
from asclab.compress.prune import finalize_pruning, global_l1_prune
from asclab.train.stages.base import STAGE_PARTS, StageContext, StagePart

LOG = "pruning"  # RunContext.logs key


@STAGE_PARTS.register("prune")
class Prune(StagePart):
    key = "prune"
    order = 30  # after reset_head, before QAT

    def begin(self, module: nn.Module, ctx: StageContext) -> None:
        self._log(module, ctx, "before pruning")

    def prepare(self, module: nn.Module, ctx: StageContext) -> None:
        global_l1_prune(module.model, float(ctx.stage.prune.amount))

    def finish(self, module: nn.Module, ctx: StageContext) -> None:
        finalize_pruning(module.model)
        self._log(module, ctx, "after pruning and fine-tuning")

    def restore(self, module: nn.Module, ctx: StageContext) -> None:
        finalize_pruning(module.model)

    @staticmethod
    def _log(module: nn.Module, ctx: StageContext, when: str) -> None:
        ctx.run.logs.setdefault(LOG, []).append({"stage": ctx.phase.name, "when": when,
                                                 **complexity_report(module.model, ctx.run.input_shape)})
