"""The PT2E int8 mechanics behind :mod:`asclab.compress.qat`: capture, fake quantisation, conversion.

torchao's PT2E flow (``torchao.quantization.pt2e``) on simulated quantisation (Jacob et al.,
CVPR 2018, "Quantization and training of neural networks for efficient integer-arithmetic-only
inference", sec. 3, batch norm folding sec. 3.2):

1. ``capture``: ``torch.export.export(model, (example,)).module()`` in eval mode, the batch and
   time axes dynamic (whole-file inference feeds other lengths than training);
2. ``fold_batch_norm``: every BN that follows a convolution folded into its weights and bias with
   the running statistics, so QAT fine-tunes the folded weights with frozen BN statistics
   (Krishnamoorthi 2018, arXiv:1806.08342, advises freezing them late in QAT; asclab does it
   from the start). Why not torchao's QAT conv-BN pattern: its ``convert_pt2e`` then exports about
   a hundred pattern graphs (12-16 s on a CPU core) on every conversion, and loading a model file
   converts once more; and the folded graph is the same graph at training and at load by construction;
3. ``prepare``: ``prepare_qat_pt2e`` with the backend's quantiser (``X86InductorQuantizer`` for
   x86/fbgemm, torchao's reference ``XNNPACKQuantizer`` for qnnpack/ARM): per-channel symmetric
   int8 weights, per-tensor 8-bit activations, fake quantised;
4. ``convert``: ``convert_pt2e``: the weights constant-folded to ``torch.int8`` tensors (a float32
   scale and an int64 zero point per output channel), the biases float32, the activations'
   quantise/dequantise pairs written into the graph with literal scales and zero points.

The converted graph runs as quantise/dequantise around float kernels (the reference
representation; slower than fp32 in eager, about 3x here); ``torch.compile`` with inductor
lowers it to int8 kernels, which asclab does not do. To make it a storable state, the float
tensors convert leaves behind are deleted, the folded biases become buffers, and the activations'
literal scales and zero points are mirrored into two buffers (``ACT_SCALE``, ``ACT_ZERO``) that
:func:`load_state` writes back into the graph.
"""
from __future__ import annotations

import copy
import logging
import types
import warnings
from contextlib import contextmanager

import torch
import torch.nn as nn

ACT_SCALE = "_asclab_act_scale"  # float64 [n]: the per-tensor activation scales, in graph order
ACT_ZERO = "_asclab_act_zero_point"  # int64 [n]: their zero points
_QUIET_LOGGERS = ("torchao", "torch.utils._pytree", "torch.export", "torch._export")


@contextmanager
def quiet():
    """torchao's import and export log notes that do not concern a CPU user (CUDA kernels that do
    not load on a CPU build, deprecation notes of the pytree registry) and warn of internals."""
    loggers = [logging.getLogger(n) for n in _QUIET_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def quantizer(backend: str):
    """The torchao quantiser of ``backend`` configured for QAT (per-channel int8 weights)."""
    with quiet():
        if backend == "qnnpack":  # torchao ships XNNPACK's quantiser as its reference implementation
            from torchao.testing.pt2e._xnnpack_quantizer import (  # heavy optional part of torchao: QAT/int8 only
                XNNPACKQuantizer,
                get_symmetric_quantization_config,
            )
            return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=True))
        from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (  # torchao: 1.5 s to import, QAT/int8 only
            X86InductorQuantizer,
            get_default_x86_inductor_quantization_config,
        )
        return X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config(is_qat=True))


def capture(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """``model`` (eval mode) as an exported graph module; batch and last (time) axes dynamic."""
    auto = torch.export.Dim.AUTO
    with quiet():
        ep = torch.export.export(model.eval(), (example,), dynamic_shapes=({0: auto, example.dim() - 1: auto},))
    return ep.module()


def fold_batch_norm(gm: nn.Module) -> nn.Module:
    """Every batch norm that follows a convolution folded into its weights and bias (in place)."""
    with quiet():
        from torchao.quantization.pt2e.utils import (
            fold_bn_weights_into_conv_node,  # torchao: QAT/int8 only
        )
    bn_ops = (torch.ops.aten._native_batch_norm_legit_no_training.default, torch.ops.aten.batch_norm.default)
    conv_ops = (torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default)
    folded = set()
    for bn in list(gm.graph.nodes):
        if bn.op != "call_function" or bn.target not in bn_ops:
            continue
        conv = bn.args[0]
        if getattr(conv, "op", None) != "call_function" or conv.target not in conv_ops or len(conv.users) != 1:
            continue
        weight, bias = conv.args[1], conv.args[2] if len(conv.args) > 2 else None
        fold_bn_weights_into_conv_node(conv, weight, bias, bn, gm, weight in folded)
        folded.add(weight)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return gm


def _train(self: nn.Module, mode: bool = True) -> nn.Module:
    """``train`` of an exported graph: torchao swaps the BN and dropout patterns (``training``
    branches were fixed at capture), and, unlike its own override, returns the module."""
    with quiet():
        from torchao.quantization.pt2e import (  # torchao: QAT/int8 only
            move_exported_model_to_eval,
            move_exported_model_to_train,
        )
        (move_exported_model_to_train if mode else move_exported_model_to_eval)(self)
    for m in self.modules():
        m.training = mode
    return self


def _eval(self: nn.Module) -> nn.Module:
    return _train(self, False)


def _switchable(gm: nn.Module) -> nn.Module:
    gm.train, gm.eval = types.MethodType(_train, gm), types.MethodType(_eval, gm)
    return gm


def prepare(model: nn.Module, example: torch.Tensor, backend: str) -> nn.Module:
    """The fake-quantised, trainable graph of ``model``; ``.train()``/``.eval()`` switch BN and dropout."""
    graph = fold_batch_norm(capture(model, example))
    with quiet():
        from torchao.quantization.pt2e.quantize_pt2e import (
            prepare_qat_pt2e,  # torchao: QAT/int8 only
        )
        prepared = prepare_qat_pt2e(graph, quantizer(backend))
    return _switchable(prepared).train()


def _act_nodes(gm: nn.Module) -> list:
    ops = (torch.ops.quantized_decomposed.quantize_per_tensor.default,
           torch.ops.quantized_decomposed.dequantize_per_tensor.default)
    return [n for n in gm.graph.nodes if n.op == "call_function" and n.target in ops]


def _keep_used_as_buffers(gm: nn.Module) -> None:
    """Delete the parameters and buffers no ``get_attr`` node reads (convert leaves the float weights
    and BN tensors behind); the folded biases, still parameters, become buffers: nothing trains."""
    used = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    for name, tensor in list(gm.state_dict(keep_vars=True).items()):
        owner, _, attr = name.rpartition(".")
        mod = gm.get_submodule(owner)
        if attr in mod._parameters:
            del mod._parameters[attr]
            if name in used:
                mod.register_buffer(attr, tensor.detach())
        elif name not in used:
            del mod._buffers[attr]


def convert(prepared: nn.Module) -> nn.Module:
    """The int8 graph of a prepared (and trained or calibrated) one, CPU, eval mode (``.eval()`` allowed)."""
    with quiet():
        from torchao.quantization.pt2e.quantize_pt2e import (
            convert_pt2e,  # torchao: QAT/int8 only
        )
        src = _switchable(copy.deepcopy(prepared)).cpu().eval()
        gm = convert_pt2e(src)
    _keep_used_as_buffers(gm)
    nodes = _act_nodes(gm)
    gm.register_buffer(ACT_SCALE, torch.tensor([float(n.args[1]) for n in nodes], dtype=torch.float64))
    gm.register_buffer(ACT_ZERO, torch.tensor([int(n.args[2]) for n in nodes], dtype=torch.int64))
    return _switchable(gm).eval()


def load_state(gm: nn.Module, state: dict) -> None:
    """Load an int8 state into a converted graph of the same model: its tensors, then the
    activation scales and zero points written back into the graph's quantise/dequantise nodes."""
    gm.load_state_dict(state)
    nodes = _act_nodes(gm)
    scales, zeros = getattr(gm, ACT_SCALE).tolist(), getattr(gm, ACT_ZERO).tolist()
    if len(nodes) != len(scales):
        raise RuntimeError(f"{len(scales)} activation scales stored, the rebuilt graph has {len(nodes)}")
    for node, s, z in zip(nodes, scales, zeros):
        node.args = (node.args[0], float(s), int(z), *node.args[3:])
    gm.recompile()


__all__ = ["ACT_SCALE", "ACT_ZERO", "capture", "convert", "fold_batch_norm", "load_state", "prepare", "quantizer", "quiet"]
