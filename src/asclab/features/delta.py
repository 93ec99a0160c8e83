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


def deltas(spec, width: int = 9, padding: bool = True, *, order: int = 1) -> Tensor:
    """Local derivative of ``spec`` (..., T) along its last axis; float32 tensor.

    ``padding=True``: (..., T) like ``librosa.feature.delta(spec, width=width,
    order=order, axis=-1)``. ``padding=False``: (..., T - width + 1), the valid
    region only (McDonnell & Gao 2019 sec. 3.1).
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
    valid = None
    for j, c in enumerate(centre.tolist()):
        if c == 0.0:
            continue
        term = x[..., j : j + valid_len]
        valid = term * c if valid is None else valid.add_(term, alpha=c)
    if valid is None:
        valid = torch.zeros_like(x[..., :valid_len])
    if not padding:
        return valid
    left_t = torch.as_tensor(left, dtype=x.dtype, device=x.device)
    right_t = torch.as_tensor(right, dtype=x.dtype, device=x.device)
    head = x[..., :width] @ left_t.T
    tail = x[..., n - width :] @ right_t.T
    return torch.cat([head, valid, tail], dim=-1)
