"""One model per recording device, with a general model for the rest (DCASE 2025 task 1).

The 2025 task gives the device id at test time and allows one model per
device, each within the complexity limits. ``DeviceContainer`` holds the
general model (``base``) and fine-tuned copies (``device_models[id]``), and
routes each clip of a batch to the model of its device; an unknown device or
``None`` gets ``base``. Its state-dict layout (``base.*``,
``device_models.<id>.*``) follows the organisers' ``MultiDeviceModelContainer``
(CPJKU dcase2025_task1_baseline, ``base_model``/``device_models``) under
asclab's names.

In a model file it is the registered model ``device_container`` with
``model: {name: device_container, base: {name: cp_mobile, ...}, devices: [a, b, ...]}``.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn as nn
from torch import Tensor

from asclab.data.devices import group_by_device
from asclab.errors import ConfigError
from asclab.models.registry import create_model, register_model


class DeviceContainer(nn.Module):
    """``forward(x[B, ...], device_ids=None) -> logits[B, K]``, each clip through its device's model."""

    def __init__(self, base: nn.Module, device_models: dict[str, nn.Module] | None = None) -> None:
        super().__init__()
        self.base = base
        self.device_models = nn.ModuleDict({str(k): v for k, v in (device_models or {}).items()})

    @property
    def devices(self) -> list[str]:
        return list(self.device_models.keys())

    def model_for_device(self, device_id: str | None) -> nn.Module:
        """The model of ``device_id``; ``base`` for None or a device without its own model."""
        if device_id is not None and str(device_id) in self.device_models:
            return self.device_models[str(device_id)]
        return self.base

    def members(self) -> dict[str, nn.Module]:
        """``{"base": base, id: model, ...}``: every network a submission must keep within the limits."""
        return {"base": self.base, **dict(self.device_models.items())}

    def add_device(self, device_id: str, model: nn.Module | None = None) -> nn.Module:
        """Register ``model`` (default: a copy of ``base``) as the model of ``device_id``."""
        self.device_models[str(device_id)] = copy.deepcopy(self.base) if model is None else model
        return self.device_models[str(device_id)]

    def embed(self, x: Tensor, device_ids: Sequence[str | None] | None = None) -> Tensor:
        return self._route(x, device_ids, lambda m, part: m.embed(part))

    def forward(self, x: Tensor, device_ids: Sequence[str | None] | None = None) -> Tensor:
        return self._route(x, device_ids, lambda m, part: m(part))

    def _route(self, x: Tensor, device_ids, call) -> Tensor:
        if device_ids is None:
            return call(self.base, x)
        if len(device_ids) != x.shape[0]:
            raise ConfigError(f"{len(device_ids)} device ids for a batch of {x.shape[0]}")
        groups = group_by_device(device_ids, self.devices)  # unknown ids and None: the base model
        if len(groups) == 1:
            return call(self.model_for_device(next(iter(groups))), x)
        out: Tensor | None = None
        for device, rows in groups.items():
            index = torch.tensor(rows, device=x.device)
            y = call(self.model_for_device(device), x.index_select(0, index))
            if out is None:
                out = y.new_empty((x.shape[0], *y.shape[1:]))
            out[index] = y
        assert out is not None
        return out


def is_device_container(model: nn.Module) -> bool:
    return isinstance(model, DeviceContainer)


@register_model
def device_container(num_classes: int = 10, in_chans: int | None = None, base: dict | None = None,
                     devices: Sequence[str] = ()) -> DeviceContainer:
    """A ``DeviceContainer`` of registered models: ``base`` = ``{name: ..., **kwargs}`` (default
    cp_mobile); one model of the same architecture per id in ``devices`` (weights from the state dict)."""
    base = dict(base or {"name": "cp_mobile"})
    if "name" not in base:
        raise ConfigError("model.base must name the general model, e.g. {name: cp_mobile}")
    kwargs = {k: v for k, v in base.items() if k not in ("name", "num_classes")}

    def build() -> nn.Module:
        return create_model(base["name"], num_classes=num_classes, in_chans=in_chans, **kwargs)

    return DeviceContainer(build(), {str(d): build() for d in devices})
