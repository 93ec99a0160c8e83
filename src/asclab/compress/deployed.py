"""Complexity at the precision a model is deployed in, one rule for every command (train, complexity,
submit, package): the bit width is that of the dtype its parameters are stored in (the widest
floating parameter tensor of the model file; an int8 model: 8). A device container passes only
if each device model passes on its own (DCASE 2025)."""
from __future__ import annotations

import copy

import torch

from asclab.compress.complexity import (
    CHALLENGE_LIMITS,
    complexity_report,
    default_input_shape,
)
from asclab.compress.qat import float_architecture, is_int8
from asclab.errors import ComplexityError, ConfigError
from asclab.features.config import FeatureConfig
from asclab.models.device_container import DeviceContainer


def stored_bits(model: torch.nn.Module, state: dict) -> int:
    """Bits per parameter as stored: 8 for an int8 model, else the widest floating parameter
    tensor of ``state`` (the state dict the model file holds or will hold; 32 without one)."""
    if is_int8(model):
        return 8
    names = {n for n, _ in model.named_parameters()}
    bits = [torch.finfo(v.dtype).bits for k, v in state.items() if k in names and torch.is_floating_point(v)]
    return max(bits, default=32)


def model_complexity(model: torch.nn.Module, fcfg: FeatureConfig, *, bits: int,
                     input_shape: tuple[int, ...] | None = None) -> dict:
    """Complexity at ``bits`` per parameter (:func:`stored_bits`) for ``input_shape``, or else one
    second of audio at the feature settings ``fcfg`` (the DCASE convention)."""
    if is_int8(model):  # asclab.compress.qat: 1 byte per parameter of the float architecture
        bits, model = 8, float_architecture(model)
    shape = tuple(input_shape) if input_shape is not None else default_input_shape(fcfg, 1.0)
    if isinstance(model, DeviceContainer):  # 2025 rule: each device model within the limits on its own
        per = {k: complexity_report(m, shape, bits=bits) for k, m in model.members().items()}
        report = copy.deepcopy(per["base"])
        for key, verdict in report["challenges"].items():
            verdict["pass"] = all(r["challenges"][key]["pass"] for r in per.values())
        report["per_device"] = per
        return report
    return complexity_report(model, shape, bits=bits)


YEAR_RULES: dict[int, str | None] = {2019: None, 2020: "dcase2020_1b", 2021: "dcase2021_1a",
                                     **{y: "dcase2022_2025_1" for y in range(2022, 2026)}}


def year_verdict(model: torch.nn.Module, fcfg: FeatureConfig, bits: int, year: int) -> dict | None:
    """A DCASE year's verdict for ``model`` at ``bits`` per parameter (None for a year without
    limits; each device model of a container on its own, 2025); ComplexityError naming the first
    model that breaks the limits."""
    if year not in YEAR_RULES:
        raise ConfigError(f"--year must be one of {', '.join(map(str, YEAR_RULES))}, got {year}")
    key = YEAR_RULES[year]
    if key is None:
        return None
    report = model_complexity(model, fcfg, bits=bits)
    container = "per_device" in report
    verdict = None
    for member, rep in (report["per_device"] if container else {"": report}).items():
        verdict = dict(rep["challenges"][key], bits=rep.get("bits", bits), params=rep["params"],
                       nonzero_params=rep["nonzero_params"])
        if not verdict["pass"]:
            limit = next(lim for lim in CHALLENGE_LIMITS if lim.key == key)
            which = f"device model {member!r}" if container else "model"
            raise ComplexityError(f"{which} breaks the {limit.title} limits for {year}: {_excess(verdict)}")
    return verdict


def _excess(v: dict) -> str:
    parts = []
    counted = v["nonzero_params"] if v["counted"] == "nonzero" else v["params"]
    if v["margin_bytes"] < 0:
        parts.append(f"{'non-zero ' if v['counted'] == 'nonzero' else ''}parameter memory {v['param_bytes']:,} bytes "
                     f"({counted:,} parameters x {v['bits']} bits) exceeds the {v['max_param_bytes']:,}-byte limit "
                     f"by {-v['margin_bytes']:,} bytes")
    if v["max_macs"] is not None and v["margin_macs"] < 0:
        parts.append(f"{v['macs'] / 1e6:,.2f} MMAC per 1-s clip exceeds the {v['max_macs'] / 1e6:,.0f} MMAC limit "
                     f"by {-v['margin_macs'] / 1e6:,.2f} MMAC")
    return "; ".join(parts)
