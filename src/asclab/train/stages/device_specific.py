"""Stage key ``device_specific: {layers: all | [names], devices: [ids]}``: device-specific
fine-tuning (DCASE 2025 task 1; the organisers' baseline, CPJKU dcase2025_task1_baseline
``train_device_specific.py``).

The stage comes after the general model's stages. For each training device (or each listed
in ``devices``) it starts again from the general model's weights, fine-tunes the chosen layers
(``all``, as the baseline does, or module names of the model such as ``[classifier,
stages.5]``; the rest is frozen, BatchNorm statistics included) on that device's training
clips only, with the stage's own ``optim``, ``schedule``, ``train`` and ``augment`` blocks, and
validates on that device's test clips, as the baseline does. The run's model is then a
``DeviceContainer``: one fine-tuned copy per device and the general model for every other
(unseen) device.

The stage is expanded into one phase per device (``NAME_a``, ``NAME_b``, ...), each with its
own folder, log and checkpoints, so an interrupted run resumes at the device it stopped in.
"""
from __future__ import annotations

import copy
from dataclasses import replace

import torch.nn as nn
from torch.utils.data import Dataset, Subset

from asclab.data.records import Record
from asclab.errors import ConfigError
from asclab.models.device_container import DeviceContainer
from asclab.train.stages.base import STAGE_PARTS, Phase, RunContext, StageContext, StagePart

KEY = "device_specific"


def device_of(phase: Phase) -> str | None:
    """The device a (expanded) device-specific phase fine-tunes for; None for other phases."""
    return phase.extra.get("device")


def expand_device_phases(phases: list[Phase], train_records: list[Record]) -> list[Phase]:
    """Replace each ``device_specific`` stage by one phase per device it fine-tunes for."""
    present = sorted({r.device for r in train_records if r.device is not None})
    out: list[Phase] = []
    for ph in phases:
        i, spec = ph.index, ph.stage.device_specific
        if spec is None:
            if out and device_of(out[-1]) is not None:
                raise ConfigError(f"workflow stage {i + 1}: a device_specific stage must be the last stage")
            out.append(ph)
            continue
        if out and device_of(out[-1]) is not None:
            raise ConfigError(f"workflow stage {i + 1}: only one device_specific stage per workflow")
        devices = [str(d) for d in (spec.devices or present)]
        if not devices:
            raise ConfigError(f"workflow stage {i + 1}: device_specific needs training clips with device ids")
        missing = [d for d in devices if d not in present]
        if missing:
            raise ConfigError(f"workflow stage {i + 1}: device_specific.devices {', '.join(missing)} "
                              f"have no training clips; training devices: {', '.join(present)}")
        written = ph.raw.get(KEY) or {}
        for d in devices:
            name = f"{ph.name or 'device'}_{d}"
            out.append(replace(ph, stage=replace(ph.stage, name=name), name=name, extra={**ph.extra, "device": d},
                               raw={**ph.raw, "name": name, KEY: {**written, "device": d}}))
    return out


def restrict_to_device(ds: Dataset | None, records: list[Record], device: str | None) -> Dataset | None:
    """A device's phase reads only that device's items of ``ds`` (built from ``records``,
    same order); other phases read all of it. None when the device has no items."""
    if device is None or ds is None:
        return ds
    rows = [i for i, r in enumerate(records) if r.device == device]
    return Subset(ds, rows) if rows else None


def freeze_layers(model: nn.Module, layers) -> list[nn.Module]:
    """Train only the parameters under ``layers`` (module names of ``model``, or ``all``);
    returns the modules to keep in inference mode (frozen BatchNorm statistics)."""
    if layers in (None, "all"):
        for p in model.parameters():
            p.requires_grad_(True)
        return []
    names = [layers] if isinstance(layers, str) else [str(n) for n in layers]
    known = dict(model.named_modules())
    unknown = [n for n in names if n not in known or n == ""]
    if unknown:
        top = ", ".join(n for n, _ in model.named_children())
        raise ConfigError(f"device_specific.layers: no layer(s) {', '.join(unknown)} in the model "
                          f"(its top-level layers: {top}; nested ones as e.g. stages.0)")

    def trained(name: str) -> bool:
        return any(name == n or name.startswith(n + ".") for n in names)

    for pname, p in model.named_parameters():
        p.requires_grad_(trained(pname))
    # frozen: modules neither trained nor holding a trained layer inside
    return [m for n, m in model.named_modules()
            if n and not trained(n) and not any(t.startswith(n + ".") for t in names)]


@STAGE_PARTS.register(KEY)
class DeviceSpecific(StagePart):
    """The general weights and each device's fine-tuned weights across the device phases."""

    key = KEY
    order = 70  # last: back to the general weights after every other part, its layers frozen on top

    def __init__(self) -> None:
        self.general: dict | None = None
        self.tuned: dict[str, dict] = {}

    def active(self, phase: Phase) -> bool:
        return device_of(phase) is not None

    def expand(self, phases: list[Phase], run: RunContext) -> list[Phase]:
        return expand_device_phases(phases, run.records)

    def prepare(self, module: nn.Module, ctx: StageContext) -> None:
        """A device's phase starts again from the general weights, its layers frozen as asked."""
        if self.general is None:
            self.general = _copy_state(module.model)
        else:
            module.model.load_state_dict(self.general)
        frozen = freeze_layers(module.model, ctx.stage.device_specific.layers)
        module.frozen_modules = list(module.frozen_modules) + frozen

    def datasets(self, train: Dataset, val: Dataset | None, ctx: StageContext) -> tuple[Dataset, Dataset | None]:
        device = device_of(ctx.phase)
        return (restrict_to_device(train, ctx.run.records, device),
                restrict_to_device(val, ctx.run.val_records, device))

    def finish(self, module: nn.Module, ctx: StageContext) -> None:
        self.tuned[device_of(ctx.phase)] = _copy_state(module.model)  # that device's model

    restore = finish

    def end(self, module: nn.Module, run: RunContext) -> None:
        container = self.container(module.model)  # DCASE 2025: the general model + one model per device
        if container is not None:
            module.model = container

    def container(self, model: nn.Module) -> DeviceContainer | None:
        """The general model plus one fine-tuned copy per device; None without device phases."""
        if not self.tuned:
            return None
        base = copy.deepcopy(model)
        base.load_state_dict(self.general)
        models = {}
        for device, state in self.tuned.items():
            models[device] = copy.deepcopy(model)
            models[device].load_state_dict(state)
        out = DeviceContainer(base, models).train(model.training)
        for p in out.parameters():
            p.requires_grad_(True)
        return out


def _copy_state(model: nn.Module) -> dict:
    return {k: v.detach().clone().cpu() for k, v in model.state_dict().items()}
