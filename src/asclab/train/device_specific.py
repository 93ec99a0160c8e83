"""Device-specific fine-tuning, a workflow stage (DCASE 2025 task 1; the organisers'
baseline, CPJKU dcase2025_task1_baseline ``train_device_specific.py``).

A stage with ``device_specific: {layers: all | [names], devices: [ids]}`` comes
after the general model's stages. For each training device (or each listed in
``devices``) it starts again from the general model's weights, fine-tunes the
chosen layers (``all``, as the baseline does, or module names of the model such
as ``[classifier, stages.5]``; the rest is frozen, BatchNorm statistics
included) on that device's training clips only, with the stage's own ``optim``,
``schedule``, ``train`` and ``augment`` blocks, and validates on that device's
test clips, as the baseline does. The run's model is then a
``DeviceContainer``: one fine-tuned copy per device and the general model for
every other (unseen) device.

The stage is expanded into one sub-stage per device (``NAME_a``, ``NAME_b``,
...), each with its own folder, log and checkpoints, so an interrupted run
resumes at the device it stopped in.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch.nn as nn
from torch.utils.data import Dataset, Subset

from asclab.data.records import Record
from asclab.errors import ConfigError
from asclab.models.device_container import DeviceContainer

STAGE_KEY = "device_specific"
SPEC_KEYS = {"layers", "devices"}


def device_of(stage: dict) -> str | None:
    """The device a (expanded) device-specific sub-stage fine-tunes for; None for other stages."""
    spec = stage.get(STAGE_KEY)
    return spec.get("device") if isinstance(spec, dict) else None


def expand_device_stages(stages: list[dict], train_records: list[Record]) -> list[dict]:
    """Replace each ``device_specific`` stage by one stage per device it fine-tunes for."""
    present = sorted({r.device for r in train_records if r.device is not None})
    out: list[dict] = []
    for i, st in enumerate(stages):
        spec = st.get(STAGE_KEY)
        if spec is None:
            if out and device_of(out[-1]) is not None:
                raise ConfigError(f"workflow stage {i + 1}: a device_specific stage must be the last stage")
            out.append(st)
            continue
        if out and device_of(out[-1]) is not None:
            raise ConfigError(f"workflow stage {i + 1}: only one device_specific stage per workflow")
        if spec is True:
            spec = {}
        if not isinstance(spec, dict):
            raise ConfigError(f"workflow stage {i + 1}: device_specific must be a mapping "
                              f"{{layers: all | [names], devices: [ids]}}, got {spec!r}")
        unknown = sorted(set(spec) - SPEC_KEYS)
        if unknown:
            raise ConfigError(f"workflow stage {i + 1}: device_specific: unknown key(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(SPEC_KEYS))}")
        devices = [str(d) for d in (spec.get("devices") or present)]
        if not devices:
            raise ConfigError(f"workflow stage {i + 1}: device_specific needs training clips with device ids")
        missing = [d for d in devices if d not in present]
        if missing:
            raise ConfigError(f"workflow stage {i + 1}: device_specific.devices {', '.join(missing)} "
                              f"have no training clips; training devices: {', '.join(present)}")
        name = st.get("name", "device")
        out += [{**st, "name": f"{name}_{d}", STAGE_KEY: {**spec, "device": d}} for d in devices]
    return out


def restrict_to_device(ds: Dataset | None, records: list[Record], stage: dict) -> Dataset | None:
    """A device's sub-stage reads only that device's items of ``ds`` (built from ``records``,
    same order); other stages read all of it. None when the device has no items."""
    device = device_of(stage)
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


@dataclass
class DeviceTuning:
    """The general weights and each device's fine-tuned weights across the sub-stages."""

    general: dict | None = None
    tuned: dict[str, dict] = field(default_factory=dict)

    def begin(self, module, stage: dict) -> None:
        """Before a device's sub-stage: back to the general weights, freeze as asked."""
        device = device_of(stage)
        if device is None:
            return
        if self.general is None:
            self.general = _copy_state(module.model)
        else:
            module.model.load_state_dict(self.general)
        frozen = freeze_layers(module.model, stage[STAGE_KEY].get("layers", "all"))
        module.frozen_modules = list(module.frozen_modules) + frozen

    def finish(self, module, stage: dict) -> None:
        """After a device's sub-stage: keep its weights as that device's model."""
        device = device_of(stage)
        if device is not None:
            self.tuned[device] = _copy_state(module.model)

    def container(self, model: nn.Module) -> DeviceContainer | None:
        """The general model plus one fine-tuned copy per device; None without device stages."""
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

