"""Batch-level mixing: each example i is mixed with partner ``perm[i]`` (a random
permutation of the batch without fixed points, :func:`partners`: a clip is never
mixed with itself) and the targets become soft: Tensor[B, K], rows summing to one.
A batch of one example is not mixed.

Every mix module is called as ``mix(x, targets, generator=None, num_classes=None)``
and returns ``(x_mixed, soft_targets)``; ``targets`` are class indices
(Tensor[B], then ``num_classes`` is needed) or soft targets Tensor[B, K].
Mixing weights are drawn per example; an example not selected (probability
1 - p) keeps its own input and target.
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn
from torch import Tensor

from asclab.augment._random import bernoulli, beta, probability, randint, randperm, uniform
from asclab.augment.spectrogram import crop_frames
from asclab.errors import ConfigError


def one_hot(labels: Tensor, num_classes: int) -> Tensor:
    """Float one-hot targets Tensor[B, K] from class indices Tensor[B]."""
    return torch.nn.functional.one_hot(labels.long(), num_classes).float()


def soft_targets(targets: Tensor, num_classes: int | None = None) -> Tensor:
    """Targets as float Tensor[B, K]: indices are one-hot encoded, soft targets pass through."""
    if targets.is_floating_point() and targets.dim() == 2:
        return targets
    if num_classes is None:
        raise ValueError("class-index targets need num_classes to be mixed")
    return one_hot(targets, num_classes)


def partners(n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
    """A random permutation without fixed points (``perm[i] != i`` for n >= 2): the examples in a
    random order, each paired with the next one in it (one cycle through the batch). The
    papers do not state how partners are drawn; a plain ``randperm`` pairs an example with
    itself in about 63 % of batches, which wastes that example's mixing. n = 1 gives [0]."""
    order = randperm(n, generator, device)
    perm = torch.empty_like(order)
    perm[order] = order.roll(-1)
    return perm


def _expand(w: Tensor, like: Tensor) -> Tensor:
    return w.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


class BatchMix(nn.Module):
    """Base: draws the partner permutation and delegates to ``mix``."""

    def __init__(self, p: float = 1.0) -> None:
        super().__init__()
        self.p = probability(p)

    def forward(self, x: Tensor, targets: Tensor, generator: torch.Generator | None = None,
                num_classes: int | None = None) -> tuple[Tensor, Tensor]:
        y = soft_targets(targets, num_classes).to(x.device)
        perm = partners(x.shape[0], generator, x.device)
        apply = bernoulli(x.shape[0], self.p, generator, x.device)
        if x.shape[0] < 2:  # no partner: not mixed (a crop still applies)
            apply = torch.zeros_like(apply)
        return self.mix(x, y, perm, apply, generator)

    def mix(self, x: Tensor, y: Tensor, perm: Tensor, apply: Tensor,
            generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class Mixup(BatchMix):
    """mixup (Zhang et al. 2018): x = lam x_i + (1 - lam) x_perm(i), same for targets.

    lam ~ Beta(alpha, alpha), drawn per example. McDonnell & Gao 2019 sec. 3.5
    use alpha = 0.2, Horvath 2021 sec. 3 alpha = 0.4. With ``crop_frames`` set,
    the two partners are first cropped independently (see :class:`MixupWithCrop`).
    """

    def __init__(self, alpha: float = 0.2, p: float = 1.0, crop_frames: int | None = None) -> None:
        super().__init__(p)
        if float(alpha) <= 0:
            raise ConfigError(f"mixup alpha must be positive, got {alpha!r}")
        if crop_frames is not None and int(crop_frames) < 1:
            raise ConfigError(f"mixup crop_frames must be positive, got {crop_frames!r}")
        self.alpha = float(alpha)
        self.crop_frames = None if crop_frames is None else int(crop_frames)

    def draw_lambda(self, apply: Tensor, generator: torch.Generator | None) -> Tensor:
        lam = beta(apply.shape[0], self.alpha, generator=generator, device=apply.device)
        return torch.where(apply, lam, torch.ones_like(lam))

    def mix(self, x, y, perm, apply, generator):
        if self.crop_frames is None:
            xa, xb = x, x[perm]
        else:
            b, t = x.shape[0], x.shape[-1]
            if t < self.crop_frames:
                raise ValueError(f"mixup: input has {t} frames, fewer than crop_frames={self.crop_frames}")
            own = randint(b, t - self.crop_frames + 1, generator, x.device)
            other = randint(b, t - self.crop_frames + 1, generator, x.device)
            xa = crop_frames(x, own, self.crop_frames)
            xb = crop_frames(x[perm], other, self.crop_frames)
        lam = self.draw_lambda(apply, generator)
        w = _expand(lam, xa)
        return w * xa + (1 - w) * xb, lam[:, None] * y + (1 - lam[:, None]) * y[perm]

    def extra_repr(self) -> str:
        crop = "" if self.crop_frames is None else f", crop_frames={self.crop_frames}"
        return f"alpha={self.alpha}, p={self.p}{crop}"


class MixupWithCrop(Mixup):
    """mixup of independently cropped partners (McDonnell & Gao 2019 sec. 3.5).

    "Each of the two samples combined using mixup were first cropped
    independently and randomly from 461 (Task 1a) or 423 (Tasks 1b and 1c)
    dimensions down to 400": example i is cropped at offset o_i, its partner
    perm(i) at an independently drawn offset o'_i (both uniform in
    {0, ..., T - crop_frames}), then the two crops are mixed with
    lam ~ Beta(alpha, alpha). Input [..., T] -> output [..., crop_frames].
    Examples not selected (probability 1 - p) are still cropped. The same as
    ``Mixup(alpha, p, crop_frames)``.
    """

    def __init__(self, alpha: float = 0.2, crop_frames: int = 400, p: float = 1.0) -> None:
        super().__init__(alpha, p, crop_frames)


class FreqMix(BatchMix):
    """FreqMix (QTI 2020 sec. 3.1): x = M * x_A + (1 - M) * x_B over a frequency band.

    Per example, lam ~ Beta(alpha, alpha) (alpha = 1: uniform), band start
    r_y ~ U{0, ..., F - 1} and band width r_f = round(F lam); M is 1 on the
    rows [r_y, r_y + r_f) of x_A = x_i and x_B = x_perm(i) fills the rest.
    A band running past the top bin is clipped there, so the label weight is
    recomputed from the mask actually used: lam' = (rows of M) / F, and
    y = lam' y_A + (1 - lam') y_B, i.e. each example's share of the label is
    its share of the frequency rows. (The paper uses lam itself; with clipping
    that over-weights x_A.) Input [B, C, F, T].
    """

    def __init__(self, alpha: float = 1.0, p: float = 1.0) -> None:
        super().__init__(p)
        if float(alpha) <= 0:
            raise ConfigError(f"freqmix alpha must be positive, got {alpha!r}")
        self.alpha = float(alpha)

    def mix(self, x, y, perm, apply, generator):
        if x.dim() != 4:
            raise ValueError(f"freqmix expects [B, C, F, T], got shape {tuple(x.shape)}")
        b, f = x.shape[0], x.shape[-2]
        lam = beta(b, self.alpha, generator=generator, device=x.device)
        width = torch.round(f * lam).long()
        start = randint(b, f, generator, x.device)
        stop = torch.clamp(start + width, max=f)
        start = torch.where(apply, start, torch.zeros_like(start))
        stop = torch.where(apply, stop, torch.full_like(stop, f))
        rows = torch.arange(f, device=x.device)
        keep = (rows >= start[:, None]) & (rows < stop[:, None])  # [B, F], True: from x_A
        lam_eff = keep.float().mean(dim=1)
        m = keep.view(b, 1, f, 1)
        return torch.where(m, x, x[perm]), lam_eff[:, None] * y + (1 - lam_eff[:, None]) * y[perm]

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, p={self.p}"


class CutMix(BatchMix):
    """CutMix (Yun et al. 2019) on the time-frequency plane (used with FreqMix by QTI 2020 sec. 1).

    Per example lam ~ Beta(alpha, alpha); a box of round(F sqrt(1 - lam)) bins by
    round(T sqrt(1 - lam)) frames centred at a uniform (f, t), clipped to the
    plane, is replaced by the partner's content. The label weight of the partner
    is the box's actual area share A / (F T); the example keeps 1 - A / (F T).
    """

    def __init__(self, alpha: float = 1.0, p: float = 1.0) -> None:
        super().__init__(p)
        if float(alpha) <= 0:
            raise ConfigError(f"cutmix alpha must be positive, got {alpha!r}")
        self.alpha = float(alpha)

    def mix(self, x, y, perm, apply, generator):
        if x.dim() != 4:
            raise ValueError(f"cutmix expects [B, C, F, T], got shape {tuple(x.shape)}")
        b, f, t = x.shape[0], x.shape[-2], x.shape[-1]
        lam = beta(b, self.alpha, generator=generator, device=x.device)
        cut = torch.sqrt(1 - lam)
        h, w = torch.round(f * cut).long(), torch.round(t * cut).long()
        cf, ct = randint(b, f, generator, x.device), randint(b, t, generator, x.device)
        f0, f1 = (cf - h // 2).clamp(0, f), (cf - h // 2 + h).clamp(0, f)
        t0, t1 = (ct - w // 2).clamp(0, t), (ct - w // 2 + w).clamp(0, t)
        rows, cols = torch.arange(f, device=x.device), torch.arange(t, device=x.device)
        in_f = (rows >= f0[:, None]) & (rows < f1[:, None])  # [B, F]
        in_t = (cols >= t0[:, None]) & (cols < t1[:, None])  # [B, T]
        box = (in_f[:, :, None] & in_t[:, None, :]) & apply[:, None, None]  # [B, F, T]
        lam_eff = 1 - box.float().mean(dim=(1, 2))
        return torch.where(box[:, None], x[perm], x), lam_eff[:, None] * y + (1 - lam_eff[:, None]) * y[perm]

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, p={self.p}"


class FreqMixStyle(BatchMix):
    """Freq-MixStyle (Schmid et al., CPJKU DCASE 2022-2024 systems; after MixStyle, Zhou et al. 2021).

    With probability ``p`` per batch (as in the CPJKU code), every example is
    normalised per frequency bin by its own mean and std over channels and time,
    then rescaled with a mix of its and its partner's statistics:
    mu = lam mu_i + (1 - lam) mu_perm(i), sigma likewise, lam ~ Beta(alpha, alpha)
    per example. Statistics are not back-propagated through. Targets unchanged
    (mixing style, not content). Input [B, C, F, T]. Partners come from
    :func:`partners` (never the clip itself); ``self_partners: true`` draws a
    plain ``randperm`` instead, which may pair a clip with itself (leaving it
    unchanged), as the DCASE 2024 baseline's ``mixstyle`` (CPJKU
    dcase2024_task1_baseline, helpers/utils.py) does.
    """

    def __init__(self, alpha: float = 0.3, p: float = 0.4, eps: float = 1e-6, self_partners: bool = False) -> None:
        super().__init__(p)
        if float(alpha) <= 0:
            raise ConfigError(f"freq_mixstyle alpha must be positive, got {alpha!r}")
        self.alpha, self.eps, self.self_partners = float(alpha), float(eps), bool(self_partners)

    def forward(self, x: Tensor, targets: Tensor, generator: torch.Generator | None = None,
                num_classes: int | None = None) -> tuple[Tensor, Tensor]:
        y = soft_targets(targets, num_classes).to(x.device)
        if x.dim() != 4:
            raise ValueError(f"freq_mixstyle expects [B, C, F, T], got shape {tuple(x.shape)}")
        if float(uniform(1, 0.0, 1.0, generator)) >= self.p:
            return x, y
        b = x.shape[0]
        if b < 2:  # no partner to take statistics from
            return x, y
        perm = randperm(b, generator, x.device) if self.self_partners else partners(b, generator, x.device)
        mu = x.mean(dim=(1, 3), keepdim=True).detach()
        sig = (x.var(dim=(1, 3), keepdim=True) + self.eps).sqrt().detach()
        lam = _expand(beta(b, self.alpha, generator=generator, device=x.device), x)
        mu_mix = lam * mu + (1 - lam) * mu[perm]
        sig_mix = lam * sig + (1 - lam) * sig[perm]
        return (x - mu) / sig * sig_mix + mu_mix, y

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, p={self.p}"


class BatchMixChoice(nn.Module):
    """One of several batch mixes, drawn uniformly (or by ``weights``) for each batch.

    E.g. QTI 2020 (sec. 1 and 3) combine FreqMix, CutMix and mixup.
    """

    def __init__(self, choices: Iterable[nn.Module], weights: Iterable[float] | None = None) -> None:
        super().__init__()
        self.choices = nn.ModuleList(choices)
        if not len(self.choices):
            raise ConfigError("a batch-mix choice needs at least one choice")
        w = torch.ones(len(self.choices)) if weights is None else torch.as_tensor(list(weights), dtype=torch.float64)
        if w.shape != (len(self.choices),) or bool((w < 0).any()) or float(w.sum()) <= 0:
            raise ConfigError(f"choice weights must be {len(self.choices)} non-negative numbers, got {weights!r}")
        self.cumulative = (torch.cumsum(w, 0) / w.sum()).tolist()

    def forward(self, x: Tensor, targets: Tensor, generator: torch.Generator | None = None,
                num_classes: int | None = None) -> tuple[Tensor, Tensor]:
        u = float(uniform(1, 0.0, 1.0, generator))
        k = next((i for i, c in enumerate(self.cumulative) if u < c), len(self.choices) - 1)
        return self.choices[k](x, soft_targets(targets, num_classes), generator=generator)


class BatchMixSequence(nn.Module):
    """Several batch mixes applied in turn (soft targets mix linearly, so they compose)."""

    def __init__(self, mixes: Iterable[nn.Module]) -> None:
        super().__init__()
        self.mixes = nn.ModuleList(mixes)

    def forward(self, x: Tensor, targets: Tensor, generator: torch.Generator | None = None,
                num_classes: int | None = None) -> tuple[Tensor, Tensor]:
        y = soft_targets(targets, num_classes)
        for m in self.mixes:
            x, y = m(x, y, generator=generator)
        return x, y
