"""Stage keys ``reset_head`` and ``trainable`` (Horvath et al. 2021 sec. 6, stages 2 and 4).

``reset_head: true`` re-initialises the model's top layers (its ``head``) before the stage:
Horvath's stage 4 re-adds the last layers and trains them on balanced data. ``trainable``:
``all`` (the default) or a list of parts among ``model``, ``body``, ``head``, ``arcface``,
``device_head``; the others are frozen, their BatchNorm statistics included (Keras' frozen
layers, as the authors trained them).
"""
from __future__ import annotations

import torch.nn as nn

from asclab.errors import ConfigError
from asclab.train.stages.base import STAGE_PARTS, Phase, StageContext, StagePart


def module_parts(module) -> dict[str, list[nn.Module]]:
    """The trainable parts of the training module by name."""
    model = module.model
    head = getattr(model, "head", None)
    body = [m for name, m in model.named_children() if m is not head]
    return {
        "model": [model],
        "body": body,
        "head": [head] if head is not None else [],
        "arcface": [module.arcface] if module.arcface is not None else [],
        "device_head": [module.device_head] if module.device_head is not None else [],
    }


def reset_parameters(m: nn.Module) -> None:
    for sub in m.modules():
        if hasattr(sub, "reset_parameters"):
            sub.reset_parameters()


@STAGE_PARTS.register("reset_head")
class ResetHead(StagePart):
    key = "reset_head"
    order = 20  # before pruning masks and QAT copies the weights

    def prepare(self, module: nn.Module, ctx: StageContext) -> None:
        head = module_parts(module)["head"]
        if not head:
            raise ConfigError(f"stage {ctx.phase.name!r}: model {ctx.config.model.name!r} has no separate head to reset")
        reset_parameters(head[0])


@STAGE_PARTS.register("trainable")
class Trainable(StagePart):
    key = "trainable"
    order = 60  # after QAT replaced the model: its parts are the ones trained

    def active(self, phase: Phase) -> bool:
        return True  # "all" unfreezes what an earlier stage froze

    def prepare(self, module: nn.Module, ctx: StageContext) -> None:
        parts = module_parts(module)
        trainable = ctx.stage.trainable
        frozen: list[nn.Module] = []
        if trainable != "all":
            names = [trainable] if isinstance(trainable, str) else list(trainable)
            unknown = sorted(set(names) - set(parts))
            if unknown:
                raise ConfigError(f"stage {ctx.phase.name!r}: unknown trainable part(s) {', '.join(unknown)}")
            keep = {id(p) for n in names for m in parts[n] for p in m.parameters()}
            for p in module.parameters():
                p.requires_grad_(id(p) in keep)
            frozen = [m for n, ms in parts.items() if n not in names and n != "model" for m in ms]
            if "model" not in names and "body" not in names:
                frozen += parts["body"]
        else:
            for p in module.parameters():
                p.requires_grad_(True)
        module.frozen_modules = frozen
