"""Batch mixing never pairs a clip with itself (issue 10 item 8); a batch of one is not mixed."""
from __future__ import annotations

import math

import pytest
import torch

from asclab.augment.mixing import CutMix, FreqMix, FreqMixStyle, Mixup, MixupWithCrop, one_hot, partners


@pytest.mark.parametrize("n", [2, 3, 5, 16, 64])
def test_partners_are_a_permutation_without_fixed_points(n):
    seen = set()
    for seed in range(50):
        perm = partners(n, torch.Generator().manual_seed(seed))
        assert sorted(perm.tolist()) == list(range(n))
        assert bool((perm != torch.arange(n)).all())
        seen.add(tuple(perm.tolist()))
    assert len(seen) >= min(10, math.factorial(n - 1))  # still random: (n-1)! single cycles exist


def test_freq_mixstyle_changes_every_example():
    b = 6
    x = torch.randn(b, 1, 8, 30, generator=torch.Generator().manual_seed(1))
    x = x * torch.arange(1, b + 1).view(b, 1, 1, 1) + torch.arange(b).view(b, 1, 1, 1)  # distinct statistics
    for seed in range(5):
        xm, _ = FreqMixStyle(alpha=1.0, p=1.0)(x, torch.arange(b), generator=torch.Generator().manual_seed(seed),
                                               num_classes=b)
        assert all(not torch.allclose(xm[i], x[i], atol=1e-5) for i in range(b))  # a self-partner keeps it


def test_mixup_weight_on_self_is_below_one_for_every_example():
    b = 32
    x = torch.randn(b, 1, 8, 10)
    _, y = Mixup(alpha=0.4)(x, torch.arange(b), generator=torch.Generator().manual_seed(3), num_classes=b)
    assert bool((torch.diagonal(y) < 1).all())  # with a self-partner the diagonal would be 1


def test_a_batch_of_one_is_not_mixed():
    x = torch.randn(1, 1, 8, 30)
    g = torch.Generator().manual_seed(0)
    for mix in (Mixup(alpha=0.4), FreqMix(), CutMix(), FreqMixStyle(p=1.0)):
        xm, y = mix(x, torch.tensor([2]), generator=g, num_classes=4)
        assert torch.equal(xm, x) and torch.equal(y, one_hot(torch.tensor([2]), 4))
    xm, y = MixupWithCrop(alpha=0.4, crop_frames=20)(x, torch.tensor([1]), generator=g, num_classes=3)
    assert xm.shape[-1] == 20 and torch.equal(y, one_hot(torch.tensor([1]), 3))  # cropped, not mixed
