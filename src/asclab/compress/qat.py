"""Quantisation-aware training to int8 (a workflow stage, ``qat: {backend: x86}``).

The CPJKU 2023 system (Schmid et al., DCASE 2023 technical report) trains
CP-Mobile with quantisation-aware training and deploys 8-bit weights; under
the DCASE 2022-2025 task 1 rule (128 kB of parameters) that allows 128,000
parameters at 1 byte each. asclab follows the idea with PyTorch's own flow:

- torch 2.13 no longer ships the PT2E quantiser API
  (``torch.ao.quantization.quantize_pt2e`` / ``quantizer`` are gone: they moved
  to the separate ``torchao`` package). FX graph mode (``prepare_qat_fx`` /
  ``convert_fx``) is still in torch and runs on its own quantised CPU kernels,
  so asclab uses it and needs no extra package.
- ``prepare_qat``: conv-BN(-ReLU) fused, fake quantisation of weights
  (per-channel int8) and activations (per-tensor uint8) with the default QAT
  qconfig of the chosen backend (``x86``/``fbgemm`` for x86 CPUs, ``qnnpack``
  for ARM); the stage then fine-tunes as usual.
- ``convert_int8``: after the stage, the real int8 model (BN folded into the
  convolutions).

The model file stores the converted state (int8 weight tensors, scales, zero
points) and ``extra.quantization`` (backend, example input shape); loading
rebuilds the same graph from the recipe's model (prepare, convert) and loads
the state into it, so the file stays ``torch.load(weights_only=True)``-safe:
no pickled GraphModule.

Complexity: the parameters counted are those of the float architecture
(the NeSsi count, BN included), stored at 1 byte each (``bits = 8``); a
loaded int8 file counts every one of them as non-zero (the float weights are
not stored), the conservative reading of the 2020/2021 non-zero rules. How many
epochs, which learning rate and when to freeze observers: not stated in the
paper; asclab uses the stage's own ``train``/``optim`` blocks and freezes
nothing.
"""
from __future__ import annotations

import copy
import warnings
from contextlib import contextmanager

import torch
import torch.nn as nn
from torch.ao.quantization import get_default_qat_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_qat_fx

from asclab.errors import CheckpointError, ConfigError

BACKENDS = ("x86", "fbgemm", "qnnpack")
INFO_KEY = "quantization"  # ModelFile.extra key
_FLOAT_ARCH = "_asclab_float_architecture"  # plain attribute of a converted model: not a submodule
_INFO = "_asclab_quantization"
# torch 2.13 announces that quantised tensors will go in a future release; every int8 model file
# load would print it (the note for asclab: such files need the torch the package pins)
warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel")
warnings.filterwarnings("ignore", message=r"TypedStorage is deprecated", module=r"torch\._utils")


@contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ConfigError(f"qat.backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend not in torch.backends.quantized.supported_engines:
        raise ConfigError(f"qat.backend {backend!r}: this torch build has no such quantised engine "
                          f"(it has {', '.join(torch.backends.quantized.supported_engines)})")
    return backend


def prepare_qat(model: nn.Module, example_shape: tuple[int, ...], backend: str = "x86") -> nn.Module:
    """A fake-quantised, trainable copy of ``model`` (FX graph mode, ``backend``'s default QAT qconfig)."""
    if hasattr(model, "model_for_device"):
        raise ConfigError("workflow stage qat: device containers (device_specific) cannot be quantised")
    _check_backend(backend)
    torch.backends.quantized.engine = backend
    float_arch = copy.deepcopy(model).eval()
    src = copy.deepcopy(model).train()
    example = torch.zeros(tuple(int(s) for s in example_shape))
    try:
        with _quiet():
            prepared = prepare_qat_fx(src, get_default_qat_qconfig_mapping(backend), (example,))
    except Exception as exc:  # noqa: BLE001 - tracing failures are a property of the model
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise ConfigError(f"workflow stage qat: model {type(model).__name__} is not FX-traceable "
                          f"({type(exc).__name__}: {first})") from None
    prepared.__dict__[_FLOAT_ARCH] = float_arch
    prepared.__dict__[_INFO] = {"dtype": "int8", "method": "qat", "backend": backend,
                                "example_shape": [int(s) for s in example_shape]}
    return prepared


def convert_int8(prepared: nn.Module) -> nn.Module:
    """The int8 model of a fake-quantised one (eval mode, CPU)."""
    info = prepared.__dict__.get(_INFO)
    if info is None:
        raise ConfigError("convert_int8 needs a model from prepare_qat")
    torch.backends.quantized.engine = info["backend"]
    src = copy.deepcopy(prepared).cpu().eval()
    with _quiet():
        converted = convert_fx(src)
    converted.__dict__[_FLOAT_ARCH] = prepared.__dict__[_FLOAT_ARCH]
    converted.__dict__[_INFO] = dict(info)
    return converted


def rebuild_int8(model: nn.Module, info: dict, state: dict) -> nn.Module:
    """The int8 model a model file stores: ``model`` (the float architecture, fresh) prepared and
    converted like the trained one, then the stored int8 state loaded into it."""
    if info.get("dtype") != "int8" or info.get("method") not in ("qat",):
        raise CheckpointError(f"unknown quantisation in the model file: {info!r}")
    with torch.no_grad():  # its weights are not stored: for the counts, every parameter is non-zero
        for p in model.parameters():
            p.fill_(1.0)
    skeleton = convert_int8(prepare_qat(model, tuple(info["example_shape"]), str(info.get("backend", "x86"))))
    try:
        skeleton.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"int8 weights do not fit the rebuilt model ({str(exc).splitlines()[0][:160]})") from None
    return skeleton.eval()


def quantization_info(model: nn.Module) -> dict | None:
    """``{"dtype": "int8", "method": "qat", "backend", "example_shape"}`` of a prepared/converted model, else None."""
    info = getattr(model, "__dict__", {}).get(_INFO)
    return dict(info) if info is not None else None


def is_int8(model: nn.Module) -> bool:
    return quantization_info(model) is not None


def float_architecture(model: nn.Module) -> nn.Module:
    """The float network a quantised model came from (for parameter and MAC counts); ``model`` itself otherwise."""
    return getattr(model, "__dict__", {}).get(_FLOAT_ARCH, model)


__all__ = ["BACKENDS", "INFO_KEY", "convert_int8", "float_architecture", "is_int8", "prepare_qat",
           "quantization_info", "rebuild_int8"]
