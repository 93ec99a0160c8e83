"""Delta and delta-delta features along the time axis, batched in torch.

``padding=True`` equals ``librosa.feature.delta(spec, width=width, order=order,
mode="interp")``: a Savitzky-Golay derivative of polynomial order ``order``
over ``width`` frames, and at the first and last ``width // 2`` frames the
derivative of the polynomial fitted to the first/last ``width`` frames. Note
that librosa's ``order=2`` is that second-derivative filter, not a delta of a
delta.

``padding=False`` is McDonnell & Gao 2019 sec. 3.1's "deltas ... without
padding": only frames whose whole window lies inside the input are kept, so
the output has ``T - (width - 1)`` frames, output frame ``j`` being centred on
input frame ``j + width // 2``. The authors' released code
(McDonnell-Lab/DCASE2019-Task1, ``deltas()``) used the width-5 regression
``(x[t+1] - x[t-1]) / 10 + (x[t+2] - x[t-2]) / 5`` (= this with width=5,
order=1) and formed delta-deltas as the valid delta of the valid delta; see
``FeatureExtractor`` for how the channels are aligned.
"""
from __future__ import annotations

import functools

import numpy as np
import scipy.signal
import torch
from torch import Tensor


@functools.lru_cache(maxsize=16)
def _savgol_rows(width: int, order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centre, left-edge, right-edge) coefficient rows, applied as dot products
    with a window of ``width`` frames. Edge rows evaluate the derivative at the
    first/last ``width // 2`` positions of the window, as mode="interp" does."""
    half = width // 2
    rows = [scipy.signal.savgol_coeffs(width, order, deriv=order, pos=p, use="dot") for p in range(width)]
    return rows[half], np.stack(rows[:half]), np.stack(rows[half + 1 :])


# Output frames per matmul in the eager CPU path (``_operator_chunks``): wide enough that
# a call's fixed cost is spread, narrow enough that the band's zeros cost little.
_CHUNK_FRAMES = 64


@functools.lru_cache(maxsize=32)
def _operator_chunks(n: int, width: int, order: int, padding: bool) -> tuple[tuple[int, int, int, int, dict], ...]:
    """The derivative as a linear map ``y = x @ D`` (D: n x n_out, banded; the edge rows of
    mode="interp" included), cut into ``(s0, s1, c0, c1, D[s0:s1, c0:c1])`` blocks of
    ``_CHUNK_FRAMES`` output frames and the input frames they read, each block in float32 and
    float64 (issue 15: one matmul per block and order replaces a pass per tap; about 1.8x
    faster per clip)."""
    centre, left, right = _savgol_rows(width, order)
    half = width // 2
    n_out = n if padding else n - width + 1
    op = np.zeros((n, n_out))
    shift = half if padding else 0
    for t in range(n - width + 1):
        op[t : t + width, t + shift] = centre
    if padding:
        op[:width, :half] = left.T
        op[n - width :, n - half :] = right.T
    chunks = []
    for c0 in range(0, n_out, _CHUNK_FRAMES):
        c1 = min(n_out, c0 + _CHUNK_FRAMES)
        rows = np.flatnonzero(op[:, c0:c1].any(axis=1))
        s0, s1 = (int(rows[0]), int(rows[-1]) + 1) if len(rows) else (0, 1)
        block = torch.from_numpy(np.ascontiguousarray(op[s0:s1, c0:c1]))
        chunks.append((s0, s1, c0, c1, {torch.float64: block, torch.float32: block.float()}))
    return tuple(chunks)


def deltas(spec, width: int = 9, padding: bool = True, *, order: int = 1, out: Tensor | None = None) -> Tensor:
    """Local derivative of ``spec`` (..., T) along its last axis; float32 tensor.

    ``padding=True``: (..., T) like ``librosa.feature.delta(spec, width=width,
    order=order, axis=-1)``. ``padding=False``: (..., T - width + 1), the valid
    region only (McDonnell & Gao 2019 sec. 3.1). ``out``: a contiguous tensor of
    the result's shape and dtype to write into (saves a copy when the caller
    stacks channels).
    """
    x = torch.as_tensor(spec)
    if not x.is_floating_point():
        x = x.float()
    if width < 3 or width % 2 != 1:
        raise ValueError(f"width must be an odd integer >= 3, got {width}")
    if order < 1:
        raise ValueError(f"order must be a positive integer, got {order}")
    n = x.shape[-1]
    if n < width:
        raise ValueError(f"need at least width={width} frames, got {n}")
    centre, left, right = _savgol_rows(int(width), int(order))
    valid_len = n - width + 1
    n_out = n if padding else valid_len
    shape = (*x.shape[:-1], n_out)
    if out is None:
        out = torch.empty(shape, dtype=x.dtype, device=x.device) if blocked_ok(x) else None
    elif tuple(out.shape) != shape or out.dtype != x.dtype or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous {x.dtype} tensor of shape {shape}, got {tuple(out.shape)}")
    if not blocked_ok(x):
        taps = [(j, c) for j, c in enumerate(centre.tolist()) if c != 0.0]
        res = _deltas_functional(x, width, padding, taps, left, right)
        return res if out is None else out.copy_(res)
    rows_x = x.reshape(-1, n)
    rows_y = out.view(-1, n_out)
    for s0, s1, c0, c1, blocks in _operator_chunks(n, int(width), int(order), bool(padding)):
        block = blocks.get(x.dtype)
        torch.mm(rows_x[:, s0:s1], block if block is not None else blocks[torch.float64].to(x.dtype),
                 out=rows_y[:, c0:c1])
    return out


def deltas_into(x: Tensor, dst: Tensor, width: int = 9, padding: bool = True, *, order: int = 1) -> Tensor:
    """``deltas(x, ...)`` written into ``dst`` (an eager CPU float32/float64 view of the result's
    shape, e.g. some channels of a larger feature tensor; need not be contiguous): one
    matmul per block of output frames for the whole batch (issue 15: a call per clip and
    block cost about a third of the deltas' time in batches of 32)."""
    n = x.shape[-1]
    n_out = n if padding else n - width + 1
    if tuple(dst.shape) != (*x.shape[:-1], n_out) or dst.dtype != x.dtype or not blocked_ok(x):
        raise ValueError(f"dst must be an eager CPU {x.dtype} tensor of shape {(*x.shape[:-1], n_out)}")
    if width < 3 or width % 2 != 1 or n < width:
        raise ValueError(f"width must be an odd integer >= 3 and at most the {n} frames, got {width}")
    for s0, s1, c0, c1, blocks in _operator_chunks(n, int(width), int(order), bool(padding)):
        block = blocks.get(x.dtype)
        block = block if block is not None else blocks[torch.float64].to(x.dtype)
        if x.is_contiguous():  # matmul folds this into one 2-D product, whose out= cannot be a strided view
            dst[..., c0:c1].copy_(torch.matmul(x[..., s0:s1], block))
        else:  # e.g. the first channels of the feature tensor: batched, straight into dst
            torch.matmul(x[..., s0:s1], block, out=dst[..., c0:c1])
    return dst


def blocked_ok(x: Tensor) -> bool:
    """The in-place, blocked CPU code applies: eager CPU tensors without autograd (a trace for
    ONNX or TorchScript, or a graph being compiled, records the plain tensor ops instead)."""
    return (x.device.type == "cpu" and not x.requires_grad and not torch.jit.is_tracing()
            and not torch.onnx.is_in_onnx_export() and not torch.compiler.is_compiling())


def _deltas_functional(x: Tensor, width: int, padding: bool, taps, left, right) -> Tensor:
    """The same result from whole-array tensor ops (traceable, differentiable)."""
    n = x.shape[-1]
    valid_len = n - width + 1
    valid = torch.zeros_like(x[..., :valid_len])
    for j, c in taps:
        valid = valid + x[..., j : j + valid_len] * c
    if not padding:
        return valid
    head = x[..., :width] @ torch.as_tensor(left, dtype=x.dtype, device=x.device).T
    tail = x[..., n - width :] @ torch.as_tensor(right, dtype=x.dtype, device=x.device).T
    return torch.cat([head, valid, tail], dim=-1)
