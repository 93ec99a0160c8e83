"""The fast CPU inference network: batch norms folded into the convolutions before
them (``torch.fx`` trace + ``torch.fx.experimental.optimization.fuse``), used
only where it is exact.

An eval-mode BatchNorm after a convolution is an affine map per channel, so it
can be folded into the convolution's weights and bias: one pass over the
activations less per layer (CP-Mobile at 1 thread: about 1.45x faster for the
network, issue 15). The fused network is checked against the original on a
random input of the model's feature shape; if the trace fails (data-dependent
control flow) or any output differs by more than ``TOLERANCE``, the original
is kept. Not from a paper.

The folded network then runs in onnxruntime where that is exact too
(``onnx_network``): exported in memory (``torch.onnx``, batch and time axes
dynamic), its graph optimised (ORT_ENABLE_ALL: fused convolution + activation
kernels), run with as many intra-op threads as torch has at each call and no
spin waiting. CP-Mobile at 1 thread, measured (issue 15): the 1-s network 0.5 ms
against 1.7-2.3 ms for torch eager or TorchScript-frozen, the 10-s one 5 ms
against 13-25 ms. Accepted only when its logits equal the torch model's within
``TOLERANCE`` on the check input; otherwise the torch network is used.
"""
from __future__ import annotations

import copy
import io
import warnings

import numpy as np
import torch
import torch.fx
from torch.fx.experimental.optimization import fuse
from torch import nn

TOLERANCE = 1e-5  # largest |logit difference| / max(1, |logit|) accepted


def _count_bn(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def fused_for_inference(model: nn.Module, example: torch.Tensor) -> nn.Module | None:
    """An eval-mode copy of ``model`` with conv-BN pairs folded, or None when folding does not
    apply (no batch norm, not traceable, not exact within ``TOLERANCE`` on ``example``)."""
    if model.training or not _count_bn(model):
        return None
    try:
        
        fused = fuse(torch.fx.symbolic_trace(copy.deepcopy(model)), inplace=True).eval()
        with torch.inference_mode():
            ref, got = model(example).float(), fused(example).float()
    except Exception:  # noqa: BLE001 - any trace or fusion failure: keep the original network
        return None
    if ref.shape != got.shape or not torch.isfinite(got).all():
        return None
    err = ((got - ref).abs() / ref.abs().clamp_min(1.0)).max().item()
    if err > TOLERANCE or _count_bn(fused) == _count_bn(model):  # inexact, or nothing was folded
        return None
    return fused



class OnnxNetwork:
    """A network as onnxruntime sessions: ``net(x)`` takes and returns float32 torch tensors
    (features in, logits out), like the eval-mode module it was exported from. It runs with
    torch's current intra-op thread count (one session per count, made on first use), so
    ``--threads`` and ``torch.set_num_threads`` govern it as they govern torch."""

    def __init__(self, model_bytes: bytes, input_name: str = "x") -> None:
        self.model_bytes, self.input_name = model_bytes, input_name
        self.sessions: dict[int, object] = {}

    def session(self, threads: int | None = None):
        import onnxruntime as ort  # optional heavy dependency: loaded only when an ONNX session runs

        n = max(1, int(threads or torch.get_num_threads()))
        if n not in self.sessions:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = n
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting threads
            opts.log_severity_level = 3
            self.sessions[n] = ort.InferenceSession(self.model_bytes, opts, providers=["CPUExecutionProvider"])
        return self.sessions[n]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.detach().to(torch.float32).numpy())
        return torch.from_numpy(self.session().run(None, {self.input_name: arr})[0])


def _relative_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    return ((got - ref).abs() / ref.abs().clamp_min(1.0)).max().item()


def onnx_network(network: nn.Module, reference: nn.Module, example: torch.Tensor) -> OnnxNetwork | None:
    """``network`` (e.g. the folded copy) exported for onnxruntime with dynamic batch and time
    axes, or None when onnxruntime is missing, the export fails, or its logits differ from
    ``reference``'s by more than ``TOLERANCE`` on ``example`` (and on a batch of two)."""
    if network.training or example.ndim != 4:
        return None
    try:
        import onnxruntime  # noqa: F401 - a dependency of asclab; absent only in stripped installs

        buf = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(network, (example,), buf, input_names=["x"], output_names=["logits"],
                              dynamic_axes={"x": {0: "batch", 3: "frames"}, "logits": {0: "batch"}},
                              opset_version=17, dynamo=False)
        net = OnnxNetwork(buf.getvalue(), "x")
        pair = torch.cat([example, example.flip(-1)])
        with torch.inference_mode():
            checks = [(net(x), reference(x).float()) for x in (example, pair)]
    except Exception:  # noqa: BLE001 - any export or runtime failure: keep the torch network
        return None
    for got, ref in checks:
        if got.shape != ref.shape or not torch.isfinite(got).all() or _relative_error(got, ref) > TOLERANCE:
            return None
    return net


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal values, NaN where the other is NaN (an fp16 network can overflow on a random input)."""
    nan = a.isnan()
    return a.shape == b.shape and torch.equal(nan, b.isnan()) and torch.equal(a[~nan], b[~nan])


def channels_last_if_exact(model: nn.Module, example: torch.Tensor) -> bool:
    """Put an eval-mode network (every member of a device container) in channels_last memory
    format, in place, where its outputs on ``example`` stay equal bit for bit; otherwise leave it
    contiguous. For fp16 networks on the CPU: oneDNN then skips the NCHW <-> blocked copies around
    each convolution (the imported DCASE 2025 CP-Mobile, 10-s input, 1 thread: 27 -> 16 ms)."""
    if model.training or example.ndim != 4:
        return False
    nets = list(model.members().values()) if hasattr(model, "members") else [model]
    with torch.no_grad():
        refs = [net(example) for net in nets]
        model.to(memory_format=torch.channels_last)
        same = all(_same_bits(net(example), ref) for net, ref in zip(nets, refs))
    if not same:
        model.to(memory_format=torch.contiguous_format)
    return same
