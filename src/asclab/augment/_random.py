"""Random draws that honour an optional ``torch.Generator``.

With ``generator=None`` every draw uses torch's global RNG (seeded by the
trainer); with a generator, draws are made on the generator's device and moved
to ``device``. No numpy RNG anywhere. torch's own Beta/Gamma samplers take no
generator, so :func:`beta` samples Gamma variates itself (Marsaglia & Tsang 2000).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from asclab.errors import ConfigError


def _where(generator: torch.Generator | None, device: torch.device | str | None) -> torch.device | str | None:
    return generator.device if generator is not None else device


def rand(n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
    """``n`` float32 draws from U[0, 1)."""
    return torch.rand(n, generator=generator, device=_where(generator, device)).to(device)


def uniform(n: int, low: float, high: float, generator: torch.Generator | None = None, device=None) -> Tensor:
    """``n`` float32 draws from U[low, high] (exactly ``low`` when low == high)."""
    return low + (high - low) * rand(n, generator, device)


def bernoulli(n: int, p: float, generator: torch.Generator | None = None, device=None) -> Tensor:
    """``n`` booleans, each True with probability ``p``."""
    if p >= 1.0:
        return torch.ones(n, dtype=torch.bool, device=device)
    return rand(n, generator, device) < p


def randint(n: int, high: Tensor | int, generator: torch.Generator | None = None, device=None) -> Tensor:
    """``n`` integers, element i uniform in {0, ..., high_i - 1} (``high`` may be per element)."""
    high_t = torch.as_tensor(high, dtype=torch.float64, device=device)
    u = rand(n, generator, device).double()
    return torch.minimum((u * high_t).floor(), high_t - 1).clamp_min(0).long()


def randperm(n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
    return torch.randperm(n, generator=generator, device=_where(generator, device)).to(device)


def choice(n: int, k: int, generator: torch.Generator | None = None, device=None) -> Tensor:
    """``n`` indices drawn uniformly from {0, ..., k-1} with replacement."""
    return randint(n, k, generator, device)


def _log_gamma_variates(shape: float, n: int, generator: torch.Generator | None) -> Tensor:
    """log of ``n`` Gamma(shape, 1) variates (float64, on the generator's/CPU device).

    Marsaglia & Tsang's squeeze-free rejection method for shape >= 1; for
    shape < 1, G(a) = G(a + 1) * U^(1/a), kept in log space so tiny shapes do
    not underflow to 0.
    """
    dev = generator.device if generator is not None else torch.device("cpu")
    a = shape + 1.0 if shape < 1.0 else shape
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    out = torch.empty(n, dtype=torch.float64, device=dev)
    todo = torch.arange(n, device=dev)
    while todo.numel():
        m = todo.numel()
        z = torch.randn(m, generator=generator, device=dev, dtype=torch.float64)
        u = torch.rand(m, generator=generator, device=dev, dtype=torch.float64)
        v = (1.0 + c * z) ** 3
        safe_v = v.clamp_min(1e-300)
        ok = (v > 0) & (torch.log(u) < 0.5 * z * z + d - d * safe_v + d * torch.log(safe_v))
        out[todo[ok]] = math.log(d) + torch.log(safe_v[ok])
        todo = todo[~ok]
    if shape < 1.0:
        u = torch.rand(n, generator=generator, device=dev, dtype=torch.float64).clamp_min(1e-300)
        out = out + torch.log(u) / shape
    return out


def beta(n: int, alpha: float, beta_: float | None = None, generator: torch.Generator | None = None, device=None) -> Tensor:
    """``n`` float32 draws from Beta(alpha, beta_) (beta_ defaults to alpha)."""
    b = alpha if beta_ is None else beta_
    if alpha <= 0 or b <= 0:
        raise ConfigError(f"Beta parameters must be positive, got ({alpha}, {b})")
    lg_a = _log_gamma_variates(alpha, n, generator)
    lg_b = _log_gamma_variates(b, n, generator)
    return torch.sigmoid(lg_a - lg_b).float().to(device)  # G_a / (G_a + G_b)


def pair(value: float | Sequence[float], name: str) -> tuple[float, float]:
    """A YAML range: a number (fixed value) or a [low, high] list."""
    if isinstance(value, (int, float)):
        return float(value), float(value)
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number or a [low, high] pair, got {value!r}") from None
    if low > high:
        raise ConfigError(f"{name}: low {low} is above high {high}")
    return low, high


def probability(p: float, name: str = "p") -> float:
    if not 0.0 <= float(p) <= 1.0:
        raise ConfigError(f"{name} must lie in [0, 1], got {p!r}")
    return float(p)
