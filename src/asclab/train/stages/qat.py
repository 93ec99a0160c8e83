"""Stage key ``qat: {backend: x86 | fbgemm | qnnpack}``: quantisation-aware fine-tuning to int8.

The CPJKU 2023 system (Schmid et al., DCASE 2023 technical report) trains CP-Mobile with
quantisation-aware training and deploys 8-bit weights. Before the stage the model becomes its
fake-quantised copy (``asclab.compress.qat.prepare_qat``: torchao's PT2E flow, captured with
``torch.export``, batch norm folded into the convolutions, the backend's quantiser); after it, the
int8 model (``convert_int8``). The model is int8 from then on, so the stage is the workflow's last.
"""
from __future__ import annotations

import torch.nn as nn

from asclab.compress.complexity import default_input_shape
from asclab.compress.qat import convert_int8, prepare_qat
from asclab.train.stages.base import STAGE_PARTS, StageContext, StagePart


@STAGE_PARTS.register("qat")
class QuantisationAware(StagePart):
    key = "qat"
    order = 40  # after pruning and reset_head, before trainable parts are chosen (of the new model)
    last = "the model is int8 after it"

    def prepare(self, module: nn.Module, ctx: StageContext) -> None:
        shape = default_input_shape(module.fcfg, 1.0)  # the module's FeatureConfig (the recipe's typed one)
        module.model = prepare_qat(module.model, shape, ctx.stage.qat.backend)

    def finish(self, module: nn.Module, ctx: StageContext) -> None:
        module.model = convert_int8(module.model)

    restore = finish
