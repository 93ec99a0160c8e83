"""asclab.losses against the formulas of Lin et al. 2017, Cui et al. 2019, Deng et al. 2019, Ganin & Lempitsky 2015."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from asclab.errors import ConfigError
from asclab.losses import (
    ArcFaceHead,
    ClassBalancedFocalLoss,
    FocalLoss,
    build_loss,
    class_balanced_weights,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def soft(b: int, k: int, seed: int = 1) -> torch.Tensor:
    return torch.softmax(torch.randn(b, k, generator=gen(seed)) * 2, dim=1)


# --------------------------------------------------------------------------- focal


def test_focal_with_gamma_zero_is_cross_entropy():
    logits = torch.randn(16, 10, generator=gen()) * 3
    labels = torch.randint(0, 10, (16,), generator=gen(2))
    targets = soft(16, 10)
    fl = FocalLoss(gamma=0.0)
    assert torch.allclose(fl(logits, labels), F.cross_entropy(logits, labels), atol=1e-6)
    assert torch.allclose(fl(logits, targets), F.cross_entropy(logits, targets), atol=1e-6)


def test_focal_matches_hand_computation_three_classes():
    z = [2.0, 0.5, -1.0]
    e = [math.exp(v) for v in z]
    p = [v / sum(e) for v in e]
    alpha, gamma = [0.25, 0.5, 1.0], 2.0
    logits = torch.tensor([z, z])
    fl = FocalLoss(gamma=gamma, alpha=alpha, reduction="none")
    # hard target 1: -alpha_1 (1 - p_1)^2 log p_1
    hard = fl(logits, torch.tensor([1, 1]))
    assert float(hard[0]) == pytest.approx(-alpha[1] * (1 - p[1]) ** 2 * math.log(p[1]), rel=1e-5)
    # soft target (0.7, 0.3, 0): weighted sum of the per-class terms
    y = torch.tensor([[0.7, 0.3, 0.0], [0.7, 0.3, 0.0]])
    want = sum(w * -alpha[k] * (1 - p[k]) ** gamma * math.log(p[k]) for k, w in enumerate([0.7, 0.3, 0.0]))
    assert float(fl(logits, y)[0]) == pytest.approx(want, rel=1e-5)
    # a scalar alpha scales the whole loss; a one-hot float target equals the index target
    logits = torch.randn(8, 3, generator=gen())
    labels = torch.randint(0, 3, (8,), generator=gen(1))
    assert torch.allclose(FocalLoss(2.0, alpha=0.25)(logits, labels), 0.25 * FocalLoss(2.0)(logits, labels))
    assert torch.allclose(FocalLoss(2.0)(logits, labels), FocalLoss(2.0)(logits, F.one_hot(labels, 3).float()))


def test_focal_down_weights_easy_examples():
    easy, hard = torch.tensor([[5.0, 0.0, 0.0]]), torch.tensor([[0.5, 0.0, 0.0]])
    t = torch.tensor([0])
    ratio = lambda x: float(FocalLoss(2.0)(x, t) / F.cross_entropy(x, t))  # noqa: E731
    assert ratio(easy) < ratio(hard) < 1.0


# --------------------------------------------------------------------------- class-balanced


def test_class_balanced_weights_formula_and_normalisation():
    counts, beta = [2704, 3757, 2724], 0.999  # QTI 2020 Table 2, DCASE 2020 task 1b dev-train
    raw = [(1 - beta) / (1 - beta ** n) for n in counts]
    want = [3 * r / sum(raw) for r in raw]
    assert class_balanced_weights(counts, beta).tolist() == pytest.approx(raw, rel=1e-6)  # eq. 2: not rescaled
    got = class_balanced_weights(counts, beta, normalize=True)  # Cui et al.'s code: sum to K
    assert got.tolist() == pytest.approx(want, rel=1e-6)
    assert float(got.sum()) == pytest.approx(3.0)
    assert got[1] < got[2] < got[0]  # the most frequent class weighs least
    with pytest.raises(ConfigError):
        class_balanced_weights([10, 0, 5])


def test_cb_focal_default_is_eq2_sigmoid_form_by_hand():
    counts, beta = [50, 500, 5000], 0.99
    raw = [(1 - beta) / (1 - beta ** n) for n in counts]  # (1 - beta) / (1 - beta^n_y), not rescaled
    logits = torch.randn(6, 3, generator=gen()) * 2
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    cb = ClassBalancedFocalLoss(counts, beta=beta, gamma=2.0, reduction="none")
    assert cb.form == "sigmoid"
    got = cb(logits, labels)
    for row in range(6):
        z, y = logits[row].tolist(), int(labels[row])
        s = [1 / (1 + math.exp(-v)) for v in z]
        pt = [s[i] if i == y else 1 - s[i] for i in range(3)]  # Cui et al.: p_i^t
        want = -raw[y] * sum((1 - q) ** 2 * math.log(q) for q in pt)  # QTI 2020 eq. 2
        assert float(got[row]) == pytest.approx(want, rel=1e-5)
    mean = ClassBalancedFocalLoss(counts, beta=beta, gamma=2.0)(logits, labels)
    assert float(mean) == pytest.approx(float(got.mean()), rel=1e-6)


def test_cb_focal_softmax_form_and_rescale_options():
    counts = [50, 500, 5000]
    logits = torch.randn(6, 3, generator=gen())
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    w = class_balanced_weights(counts, 0.99)
    soft_form = ClassBalancedFocalLoss(counts, beta=0.99, gamma=2.0, form="softmax", reduction="none")
    assert torch.allclose(soft_form(logits, labels), w[labels] * FocalLoss(2.0, reduction="none")(logits, labels),
                          atol=1e-8)
    wn = class_balanced_weights(counts, 0.99, normalize=True)
    resc = ClassBalancedFocalLoss(counts, beta=0.99, gamma=2.0, rescale=True, reduction="none")
    plain = ClassBalancedFocalLoss(counts, beta=0.99, gamma=2.0, reduction="none")
    assert torch.allclose(resc(logits, labels), plain(logits, labels) * (wn / w)[labels], rtol=1e-5)
    with pytest.raises(ConfigError, match="form"):
        ClassBalancedFocalLoss(counts, form="tanh")


def test_build_loss():
    logits, labels = torch.randn(4, 3, generator=gen()), torch.tensor([0, 1, 2, 0])
    assert torch.allclose(build_loss(None)(logits, labels), F.cross_entropy(logits, labels))
    assert torch.allclose(build_loss({"name": "focal", "gamma": 0.0})(logits, labels), F.cross_entropy(logits, labels), atol=1e-6)
    cb = build_loss({"name": "cb_focal", "beta": 0.9}, class_counts=[3, 30, 300])
    assert torch.allclose(cb.weights, class_balanced_weights([3, 30, 300], 0.9))
    with pytest.raises(ConfigError):
        build_loss({"name": "cb_focal"})
    with pytest.raises(ConfigError):
        build_loss({"name": "focal", "gama": 2})
    with pytest.raises(ConfigError):
        build_loss({"name": "hinge"})


# --------------------------------------------------------------------------- ArcFace


def head_with_class_angles(angles: list[float], s: float, m: float, **kw) -> ArcFaceHead:
    head = ArcFaceHead(2, len(angles), s=s, m=m, **kw)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[math.cos(a), math.sin(a)] for a in angles]) * 3.0)  # norm must not matter
    return head


def test_arcface_zero_margin_is_scaled_cosine():
    head = ArcFaceHead(16, 5, s=30.0, m=0.0)
    emb = torch.randn(8, 16, generator=gen())
    cos = F.normalize(emb) @ F.normalize(head.weight).T
    labels = torch.randint(0, 5, (8,), generator=gen(1))
    assert torch.allclose(head(emb, labels), 30.0 * cos, atol=1e-5)
    head.m = 0.5
    assert torch.allclose(head(emb), 30.0 * cos, atol=1e-5)  # inference: no margin


def test_arcface_target_logit_is_cos_theta_plus_m():
    s, m = 30.0, 0.5
    head = head_with_class_angles([0.0, 1.2, 2.5], s, m)
    theta = 0.7
    emb = torch.tensor([[math.cos(theta), math.sin(theta)]]) * 5.0
    out = head(emb, torch.tensor([0]))[0].detach()
    assert float(out[0]) == pytest.approx(s * math.cos(theta + m), abs=1e-4)
    assert float(out[1]) == pytest.approx(s * math.cos(1.2 - theta), abs=1e-4)
    assert float(out[2]) == pytest.approx(s * math.cos(2.5 - theta), abs=1e-4)
    assert torch.allclose(head(emb, torch.tensor([[1.0, 0.0, 0.0]]))[0], out)  # one-hot soft target
    assert torch.allclose(head.loss(emb, torch.tensor([0])).detach(), F.cross_entropy(out[None], torch.tensor([0])))


def test_arcface_beyond_pi_minus_m_uses_linear_substitute():
    s, m = 30.0, 0.5
    theta = math.pi - 0.2  # theta + m > pi
    emb = torch.tensor([[math.cos(theta), math.sin(theta)]])
    out = head_with_class_angles([0.0, 1.0], s, m)(emb, torch.tensor([0]))[0].detach()
    assert float(out[0]) == pytest.approx(s * (math.cos(theta) - m * math.sin(m)), abs=1e-4)
    easy = head_with_class_angles([0.0, 1.0], s, m, easy_margin=True)(emb, torch.tensor([0]))[0].detach()
    assert float(easy[0]) == pytest.approx(s * math.cos(theta), abs=1e-4)


def test_arcface_gradient_finite_when_aligned():
    head = head_with_class_angles([0.0, 1.0], 30.0, 0.5)
    emb = torch.tensor([[2.0, 0.0]], requires_grad=True)
    head.loss(emb, torch.tensor([0])).backward()
    assert torch.isfinite(emb.grad).all() and torch.isfinite(head.weight.grad).all()

# The device head (asclab.losses.domain) is tested in tests/losses/test_device_head.py.
