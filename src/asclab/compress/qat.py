"""Quantisation-aware training to int8 (a workflow stage, ``qat: {backend: x86}``).

The CPJKU 2023 system (Schmid et al., DCASE 2023 technical report) trains
CP-Mobile with quantisation-aware training and deploys 8-bit weights; under
the DCASE 2022-2025 task 1 rule (128 kB of parameters) that allows 128,000
parameters at 1 byte each. asclab follows the idea with torchao's PT2E flow
(``torchao.quantization.pt2e``; the mechanics in :mod:`asclab.compress.pt2e_int8`):

- ``prepare_qat``: the model captured with ``torch.export``, each batch norm
  folded into the convolution before it (its statistics frozen from here on),
  prepared with ``prepare_qat_pt2e`` and the backend's quantiser
  (``x86``/``fbgemm``: torchao's X86 inductor quantiser; ``qnnpack``: its
  XNNPACK quantiser): fake quantisation of weights (per-channel symmetric
  int8) and activations (per-tensor 8-bit); the stage then fine-tunes as usual.
- ``convert_int8``: after the stage, ``convert_pt2e``: the weights stored as
  ``torch.int8`` tensors with a float32 scale and a zero point per output
  channel, the biases float32, the activations quantised and dequantised
  around float kernels (the reference representation: the int8 model's
  values, computed at float speed or slower; ``torch.compile`` would lower it
  to int8 kernels).

The model file stores the converted state (int8 weights, their scales and zero
points, the folded float biases, the activations' scales and zero points) and
``extra.quantization`` (backend, example input shape); loading rebuilds the
same graph from the recipe's model (capture, prepare, convert) and loads the
state into it, so the file stays ``torch.load(weights_only=True)``-safe: no
pickled GraphModule, and no quantised tensor types either (plain int8).

Complexity: the parameters counted are those of the float architecture
(the NeSsi count, BN included), stored at 1 byte each (``bits = 8``); a
loaded int8 file counts every one of them as non-zero (the float weights are
not stored), the conservative reading of the 2020/2021 non-zero rules. How many
epochs, which learning rate and when to freeze observers or BN statistics:
not stated in the paper; asclab uses the stage's own ``train``/``optim``
blocks, freezes BN statistics from the start (folded) and observers never.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from asclab.compress import pt2e_int8
from asclab.errors import CheckpointError, ConfigError

BACKENDS = ("x86", "fbgemm", "qnnpack")  # fbgemm: an alias of x86 (torch's older name for its x86 engine)
INFO_KEY = "quantization"  # ModelFile.extra key
_FLOAT_ARCH = "_asclab_float_architecture"  # plain attribute of a quantised model: not a submodule
_INFO = "_asclab_quantization"


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ConfigError(f"qat.backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return backend


def _example(example_shape: tuple[int, ...]) -> torch.Tensor:
    """A capture input of ``example_shape`` with batch 2 (a size-1 axis would be fixed at 1)."""
    shape = [2, *(int(s) for s in example_shape[1:])]
    return torch.linspace(-0.1, 0.1, int(torch.Size(shape).numel())).reshape(shape)  # no draw from the RNG


def _tag(model: nn.Module, float_arch: nn.Module, info: dict) -> nn.Module:
    model.__dict__[_FLOAT_ARCH] = float_arch
    model.__dict__[_INFO] = dict(info)
    return model


def prepare_qat(model: nn.Module, example_shape: tuple[int, ...], backend: str = "x86") -> nn.Module:
    """A fake-quantised, trainable copy of ``model`` (PT2E, ``backend``'s quantiser, QAT config)."""
    if hasattr(model, "model_for_device"):
        raise ConfigError("workflow stage qat: device containers (device_specific) cannot be quantised")
    _check_backend(backend)
    float_arch = copy.deepcopy(model).cpu().eval()
    src = copy.deepcopy(model).cpu()
    try:
        prepared = pt2e_int8.prepare(src, _example(example_shape), backend)
    except Exception as exc:  # noqa: BLE001 - capture failures are a property of the model
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise ConfigError(f"workflow stage qat: model {type(model).__name__} cannot be captured by torch.export "
                          f"({type(exc).__name__}: {first})") from None
    return _tag(prepared, float_arch, {"dtype": "int8", "method": "qat", "flow": "pt2e", "backend": backend,
                                       "example_shape": [int(s) for s in example_shape]})


def convert_int8(prepared: nn.Module) -> nn.Module:
    """The int8 model of a fake-quantised one (eval mode, CPU)."""
    info = prepared.__dict__.get(_INFO)
    if info is None:
        raise ConfigError("convert_int8 needs a model from prepare_qat")
    return _tag(pt2e_int8.convert(prepared), prepared.__dict__[_FLOAT_ARCH], info)


def rebuild_int8(model: nn.Module, info: dict, state: dict) -> nn.Module:
    """The int8 model a model file stores: ``model`` (the float architecture, fresh) prepared and
    converted like the trained one, then the stored int8 state loaded into it."""
    if info.get("flow") is None and any(getattr(v, "is_quantized", False) for v in state.values()):
        raise CheckpointError("an int8 file of asclab's earlier FX-mode QAT (quantised tensor types); "
                              "PT2E cannot rebuild it: run the qat stage again")
    if info.get("dtype") != "int8" or info.get("method") != "qat" or info.get("flow", "pt2e") != "pt2e":
        raise CheckpointError(f"unknown quantisation in the model file: {info!r}")
    with torch.no_grad():  # its weights are not stored: for the counts, every parameter is non-zero
        for p in model.parameters():
            p.fill_(1.0)
    prepared = prepare_qat(model, tuple(info["example_shape"]), str(info.get("backend", "x86")))
    prepared.eval()
    with torch.no_grad():  # one pass: every observer has seen a tensor, so each scale has its shape
        prepared(_example(info["example_shape"]))
    skeleton = convert_int8(prepared)
    try:
        pt2e_int8.load_state(skeleton, state)
    except RuntimeError as exc:
        raise CheckpointError(f"int8 weights do not fit the rebuilt model ({str(exc).splitlines()[0][:160]})") from None
    return skeleton.eval()


def quantization_info(model: nn.Module) -> dict | None:
    """``{"dtype": "int8", "method": "qat", "flow": "pt2e", "backend", "example_shape"}`` of a
    prepared/converted model, else None."""
    info = getattr(model, "__dict__", {}).get(_INFO)
    return dict(info) if info is not None else None


def is_int8(model: nn.Module) -> bool:
    return quantization_info(model) is not None


def float_architecture(model: nn.Module) -> nn.Module:
    """The float network a quantised model came from (for parameter and MAC counts); ``model`` itself otherwise."""
    return getattr(model, "__dict__", {}).get(_FLOAT_ARCH, model)


__all__ = ["BACKENDS", "INFO_KEY", "convert_int8", "float_architecture", "is_int8", "prepare_qat",
           "quantization_info", "rebuild_int8"]
