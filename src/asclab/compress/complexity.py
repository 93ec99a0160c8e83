"""Model complexity as the DCASE low-complexity tasks measure it.

- parameters, all and non-zero (pruning masks of ``torch.nn.utils.prune``
  are applied), and their storage in bytes at a given precision;
- multiply-accumulates (MACs) for one forward pass, in two conventions:

  ``"conv_linear"``: the MACs of convolution and linear layers only,
  ``output elements x (in_channels / groups) x kernel area`` for a
  convolution and ``output elements x in_features`` for a linear layer (no
  bias, norm, activation or pooling). ``FlopCounterMode`` reports exactly
  twice this for networks whose only matrix products are these layers.

  ``"nessi"``: the convention of the challenge's NeSsi tool, which is
  torchinfo's "mult-adds". Every call of a leaf module (one without child
  modules) adds, for each of its parameters named ``weight`` or ``bias``,
  ``n x batch x prod(output spatial dims)`` when the module's class name
  contains "Conv", else ``n x batch``; other parameters whose name contains
  "weight"/"bias" add ``n x batch x output.shape[1]``. ``n`` is the number of
  parameter elements (the number of ones in the mask for pruned
  ``*_orig`` parameters). So a convolution counts ``(weights + bias) x output
  positions``, a BatchNorm ``2 x channels``, a Linear ``weights + bias``, and
  parameter-free layers nothing. This reproduces the official 29,419,156
  MACs of the DCASE 2024 baseline (``cp_mobile``) for a 1x1x256x65 input.

- ``CHALLENGE_LIMITS``: the parameter-memory and MAC limits of the DCASE tasks,
  with ``complexity_report`` checking a model against each.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch import Tensor

from asclab.errors import ConfigError
from asclab.features.config import FeatureConfig

CONVENTIONS = ("conv_linear", "nessi")
STORAGE_BITS = {"fp32": 32, "fp16": 16, "int8": 8}


@dataclass(frozen=True)
class ChallengeLimit:
    """One DCASE task's complexity rule.

    ``max_param_bytes``: parameter memory at the precision the model is stored
    in; ``nonzero_only``: whether zero-valued parameters are exempt;
    ``max_macs``: MACs for one inference on the task's clip length (1 s from
    2022), ``None`` where there was no such limit.
    """

    key: str
    title: str
    max_param_bytes: int
    nonzero_only: bool
    max_macs: int | None
    source: str


CHALLENGE_LIMITS: tuple[ChallengeLimit, ...] = (
    ChallengeLimit(
        "dcase2020_1b", "DCASE 2020 task 1b", 500 * 1024, True, None,
        "DCASE 2020 task 1b rules: 500 KB (KB = 1024 bytes, i.e. 128,000 float32 parameters) for the "
        "non-zero classifier parameters at their stored precision; QTI 2020 sec. 1 and 5",
    ),
    ChallengeLimit(
        "dcase2021_1a", "DCASE 2021 task 1a", 128 * 1024, True, None,
        "DCASE 2021 task 1a rules: 128 KB (131,072 bytes) of non-zero parameters; Horvath et al. 2021 sec. 1",
    ),
    ChallengeLimit(
        "dcase2022_2025_1", "DCASE 2022-2025 task 1", 128_000, False, 30_000_000,
        "DCASE 2022-2025 task 1 rules: 128 kB for all parameters (zeros included) and 30 million MACs per "
        "1-s clip; the organisers' checker (NeSsi; CPJKU dcase2024_task1_baseline helpers/nessi.py) uses "
        "MAX_PARAMS_MEMORY = 128_000 bytes and MAX_MACS = 30_000_000 with torchinfo's mult-adds; "
        "Gao & Lee 2024 sec. 1",
    ),
)


def _unique_params(model: nn.Module) -> Iterator[tuple[nn.Module, str, nn.Parameter]]:
    seen: set[int] = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                yield module, name, p


def _effective(module: nn.Module, name: str, p: Tensor) -> Tensor:
    """A parameter as the forward pass sees it: ``orig * mask`` for pruned ``*_orig`` ones."""
    if name.endswith("_orig"):
        mask = getattr(module, name[: -len("_orig")] + "_mask", None)
        if isinstance(mask, Tensor):
            return p.detach() * mask
    return p.detach()


def count_params(model: nn.Module) -> int:
    """Number of parameter elements (shared parameters counted once)."""
    return sum(p.numel() for _, _, p in _unique_params(model))


def count_nonzero_params(model: nn.Module) -> int:
    """Number of non-zero parameter elements, pruning masks applied."""
    return sum(int(torch.count_nonzero(_effective(m, n, p))) for m, n, p in _unique_params(model))


def param_bytes(model: nn.Module, dtype_bits: int, *, nonzero: bool = False) -> int:
    """Bytes to store the (non-zero) parameters at ``dtype_bits`` bits each."""
    if dtype_bits <= 0:
        raise ConfigError(f"bits per parameter must be positive, got {dtype_bits}")
    n = count_nonzero_params(model) if nonzero else count_params(model)
    return math.ceil(n * dtype_bits / 8)


def _first_tensor(out) -> Tensor | None:
    if isinstance(out, Tensor):
        return out
    if isinstance(out, (list, tuple)):
        for o in out:
            t = _first_tensor(o)
            if t is not None:
                return t
    if isinstance(out, dict):
        return _first_tensor(list(out.values()))
    return None


def _conv_linear_macs(module: nn.Module, inputs: tuple, out: Tensor) -> int:
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return inputs[0].numel() * math.prod(module.weight.shape[1:])
    if isinstance(module, nn.modules.conv._ConvNd):
        return out.numel() * math.prod(module.weight.shape[1:])
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    return 0


def _nessi_macs(module: nn.Module, out: Tensor) -> int:
    if any(True for _ in module.children()):
        return 0
    shape = list(out.shape)
    is_conv = "Conv" in type(module).__name__
    total = 0
    for name, p in module.named_parameters():
        n = p.numel()
        if name.endswith("_orig"):
            mask = getattr(module, name[: -len("_orig")] + "_mask", None)
            if isinstance(mask, Tensor):
                n, name = int(mask.sum()), name[: -len("_orig")]
        if name in ("weight", "bias"):
            total += n * (math.prod(shape[:1] + shape[2:]) if is_conv else shape[0])
        elif "weight" in name or "bias" in name:
            total += n * math.prod(shape[:2])
    return total


def count_macs(model: nn.Module, input_shape: tuple[int, ...], convention: str = "conv_linear") -> int:
    """MACs of one forward pass on a zero tensor of ``input_shape`` (batch included), eval mode.

    Modules called several times (shared weights) count on every call.
    """
    if convention not in CONVENTIONS:
        raise ConfigError(f"unknown MAC convention {convention!r}; known: {', '.join(CONVENTIONS)}")
    first = next(model.parameters(), None)
    if first is not None and first.dtype not in (torch.float32, torch.float64):
        model = copy.deepcopy(model).float()  # e.g. fp16 storage; count in full precision like NeSsi
        first = next(model.parameters())
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None else torch.float32
    total = 0

    def hook(module: nn.Module, inputs: tuple, output) -> None:
        nonlocal total
        out = _first_tensor(output)
        if out is None:
            return
        total += _conv_linear_macs(module, inputs, out) if convention == "conv_linear" else _nessi_macs(module, out)

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(tuple(int(s) for s in input_shape), device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return int(total)


def default_input_shape(feature_cfg: FeatureConfig, seconds: float = 1.0) -> tuple[int, int, int, int]:
    """``(1, in_chans, n_mels, frames)`` for ``seconds`` of audio.

    Frames as librosa's STFT gives them (``1 + n // hop`` when centred,
    ``1 + (n - n_fft) // hop`` otherwise); deltas computed without padding
    (``FeatureConfig.delta_padding=False``) remove ``delta_width - 1`` frames per
    pass, two passes (delta, delta-delta): 2 (delta_width - 1), e.g. 431 -> 423 for width 5,
    as the feature extractor gives.
    """
    n = int(round(seconds * feature_cfg.sample_rate))
    hop = feature_cfg.hop_length
    frames = 1 + n // hop if feature_cfg.center else 1 + (n - feature_cfg.n_fft) // hop
    if feature_cfg.deltas and not feature_cfg.delta_padding:
        frames -= 2 * (feature_cfg.delta_width - 1)
    if frames < 1:
        raise ConfigError(f"{seconds} s of audio gives no frames with these feature settings")
    return (1, feature_cfg.in_chans, feature_cfg.n_mels, frames)


def check_limit(limit: ChallengeLimit, params: int, nonzero: int, bits: int, macs_nessi: int) -> dict:
    """Pass/fail of one challenge rule for a model stored at ``bits`` per parameter."""
    counted = nonzero if limit.nonzero_only else params
    used = math.ceil(counted * bits / 8)
    result = {
        "title": limit.title,
        "counted": "nonzero" if limit.nonzero_only else "all",
        "param_bytes": used,
        "max_param_bytes": limit.max_param_bytes,
        "margin_bytes": limit.max_param_bytes - used,
        "max_bits": (limit.max_param_bytes * 8) // counted if counted else None,
        "macs": macs_nessi if limit.max_macs is not None else None,
        "max_macs": limit.max_macs,
        "margin_macs": (limit.max_macs - macs_nessi) if limit.max_macs is not None else None,
    }
    result["pass"] = result["margin_bytes"] >= 0 and (limit.max_macs is None or result["margin_macs"] >= 0)
    return result


def complexity_report(model: nn.Module, input_shape: tuple[int, ...], bits: int = 32) -> dict:
    """Parameters, storage, MACs (both conventions) and each challenge's verdict, JSON-ready.

    ``bits``: precision the model is (to be) stored at, used for the verdicts.
    MAC limits concern one clip of the task's length: pass that clip's shape.
    """
    params, nonzero = count_params(model), count_nonzero_params(model)
    macs = {c: count_macs(model, input_shape, c) for c in CONVENTIONS}
    return {
        "params": params,
        "nonzero_params": nonzero,
        "bits": int(bits),
        "bytes": {k: math.ceil(params * b / 8) for k, b in STORAGE_BITS.items()},
        "nonzero_bytes": {k: math.ceil(nonzero * b / 8) for k, b in STORAGE_BITS.items()},
        "input_shape": [int(s) for s in input_shape],
        "macs": macs,
        "challenges": {lim.key: check_limit(lim, params, nonzero, bits, macs["nessi"]) for lim in CHALLENGE_LIMITS},
    }


def _num(n: float | None, scale: float = 1.0, digits: int = 0) -> str:
    return "-" if n is None else f"{n / scale:,.{digits}f}"


def format_report(reports: dict[str, dict]) -> str:
    """A terminal table: one row per model, one verdict column per challenge."""
    keys = [lim.key for lim in CHALLENGE_LIMITS]
    header = ["model", "params", "non-zero", "KiB@bits", "MACs nessi", "MMAC conv", "input"] + keys
    rows = [header]
    for name, r in reports.items():
        size = math.ceil(r["params"] * r["bits"] / 8)
        row = [
            name, _num(r["params"]), _num(r["nonzero_params"]), f"{size / 1024:,.1f}@{r['bits']}",
            _num(r["macs"]["nessi"]), _num(r["macs"]["conv_linear"], 1e6, 2),
            "x".join(str(s) for s in r["input_shape"][1:]),
        ]
        for k in keys:
            c = r["challenges"][k]
            margin = f"{c['margin_bytes'] / 1024:+,.1f} KiB"
            if c["max_macs"] is not None:
                margin += f", {c['margin_macs'] / 1e6:+,.2f} MMAC"
            row.append(("ok" if c["pass"] else "FAIL") + f" ({margin})")
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"{lim.key}: {lim.title}, {lim.max_param_bytes:,} bytes of "
             f"{'non-zero' if lim.nonzero_only else 'all'} parameters"
             + (f", {lim.max_macs:,} MACs" if lim.max_macs else "") for lim in CHALLENGE_LIMITS]
    inputs = [f"{name}: input {'x'.join(str(s) for s in r['input_shape'][1:])}, {r['input_source']}"
              for name, r in reports.items() if r.get("input_source")]
    return "\n".join(lines + [""] + notes + ([""] + inputs if inputs else []))
