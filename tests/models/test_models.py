"""The model zoo: sizes against the papers, the shared interface, and the special layers."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from asclab.compress.complexity import count_params
from asclab.errors import ConfigError
from asclab.models import create_model, list_models
from asclab.models.layers import BatchNorm2dNoAffine, FrequencySplit, SharedResidualBlock, SubSpectralNorm

# name -> (in_chans, num_classes, the paper's parameter count, relative tolerance)
REPORTED = {
    "two_path_resnet": (6, 10, 3_200_000, 0.02),  # McDonnell & Gao 2019 sec. 3.4 ("approximately 3.2 million")
    "two_path_resnet_2020": (3, 10, 4_310_000, 0.02),  # Gao & McDonnell 2020 Table 1 (4.31M)
    "shared_resnet_ssn": (2, 3, 601_000, 0.02),  # QTI 2020 Table 4 (task 1b, 3 classes)
    "mobilenetv2_small": (3, 10, 47_939, 0.02),  # Horvath 2021 sec. 5.1
    "cp_resnet": (3, 10, 58_266, 0.02),  # Horvath 2021 sec. 5.2
    "cp_mobile": (1, 10, 61_148, 0.0),  # DCASE 2024 baseline, exact
}

# paper input shapes (C, F, T); the second entry where given is the longer inference clip
SHAPES = {
    "two_path_resnet": [(6, 128, 400), (6, 128, 461)],  # 2019 sec. 3.3: 400-frame crops, 461-frame task 1a clips
    "two_path_resnet_2020": [(3, 128, 400), (3, 128, 423)],  # 2020 sec. 2.1: 423 frames
    "shared_resnet_ssn": [(2, 256, 469)],  # QTI sec. 6.1: 10 s stereo at 48 kHz, 256 mel bins
    "mobilenetv2_small": [(3, 128, 431)],  # Horvath Table 1
    "cp_resnet": [(3, 128, 431)],
    "cp_mobile": [(1, 256, 65), (1, 256, 101)],  # 1 s at 32 kHz, hop 500; and a longer clip
}
HEADED = ("mobilenetv2_small", "cp_resnet")


def make(name: str, num_classes: int | None = None) -> nn.Module:
    in_chans, classes, _, _ = REPORTED[name]
    torch.manual_seed(0)
    return create_model(name, num_classes=num_classes or classes, in_chans=in_chans)


def test_registry_lists_every_family_and_rejects_unknown_names():
    assert set(REPORTED) <= set(list_models())
    with pytest.raises(ConfigError, match="unknown model"):
        create_model("no_such_model")
    # without in_chans, each factory takes its paper's input channels
    defaults = {name: create_model(name) for name in ("two_path_resnet", "two_path_resnet_2020", "cp_mobile")}
    assert [m.paths.paths[0].input_bn.num_features for m in list(defaults.values())[:2]] == [6, 3]
    assert defaults["cp_mobile"].stem[0][0].in_channels == 1


@pytest.mark.parametrize("name", sorted(REPORTED))
def test_parameter_count_matches_paper(name):
    _, _, reported, tol = REPORTED[name]
    n = count_params(make(name))
    assert n == sum(p.numel() for p in make(name).parameters())
    if tol == 0:
        assert n == reported
    else:
        assert abs(n - reported) <= tol * reported, (n, reported)


def test_shared_resnet_ten_class_size_matches_table3():
    n = count_params(create_model("shared_resnet_ssn", num_classes=10, in_chans=2))
    assert abs(n - 604_000) <= 0.02 * 604_000


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_forward_and_embed_at_paper_shapes(name):
    # one pass per shape (the big ResNets cost seconds): logits at the first, the embedding at the last
    model = make(name).eval()
    classes = REPORTED[name][1]
    with torch.no_grad():
        logits = model(torch.randn(1, *SHAPES[name][0]))
        emb = model.embed(torch.randn(1, *SHAPES[name][-1]))
    assert logits.shape == (1, classes) and torch.isfinite(logits).all()
    assert emb.shape == (1, model.embed_dim) and isinstance(model.embed_dim, int) and torch.isfinite(emb).all()


@pytest.mark.parametrize("name", HEADED)
def test_head_of_embedding_is_the_forward_pass(name):
    model = make(name).eval()
    c, f, _ = SHAPES[name][0]
    x = torch.randn(2, c, f, 100)
    with torch.no_grad():
        torch.testing.assert_close(model.head(model.embed(x)), model(x))
    assert model.embed_dim == 64
    assert isinstance(model.head[0], nn.BatchNorm1d) and model.head[-1].out_features == REPORTED[name][1]


@pytest.mark.parametrize("name", [n for n in SHAPES if n not in HEADED])
def test_embedding_is_the_pooled_input_of_the_classifier(name):
    # in eval mode BN and 1x1 convs are affine per position, so they commute with the global mean
    model = make(name).eval()
    c, f, _ = SHAPES[name][0]
    x = torch.randn(2, c, f, 48)
    with torch.no_grad():
        via_embedding = model.classifier(model.embed(x)[:, :, None, None]).flatten(1)
        torch.testing.assert_close(via_embedding, model(x), rtol=1e-4, atol=1e-4)


def test_batch_size_one_and_two_agree_in_eval_mode():
    model = make("cp_mobile").eval()
    x = torch.randn(2, 1, 256, 65)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[1:], model(x[1:]))


# --- two-path ResNet structure (McDonnell & Gao 2019 sec. 3.2-3.4) ---------------------------------------------


def test_two_path_resnet_structure():
    model = make("two_path_resnet")
    for path in model.paths.paths:
        convs = [m for m in path.modules() if isinstance(m, nn.Conv2d)]
        assert len(convs) == 17 and all(c.kernel_size == (3, 3) for c in convs)
        assert all(c.stride in ((1, 1), (1, 2)) for c in convs)  # never strided in frequency
        bns = [m for m in path.modules() if isinstance(m, nn.BatchNorm2d)]
        assert bns[0].affine and all(isinstance(b, BatchNorm2dNoAffine) and not b.affine for b in bns[1:])
    # no learned affine anywhere after the two input BNs
    affine = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d) and m.affine]
    assert len(affine) == 2
    x = torch.randn(1, 6, 128, 64)
    with torch.no_grad():
        fused = model.paths(x)
    assert fused.shape == (1, 192, 128, 4)  # 128 bins kept; time / 16


def test_two_path_resnet_paths_only_see_their_band():
    model = make("two_path_resnet").eval()
    x = torch.randn(1, 6, 128, 16, requires_grad=True)
    model.paths(x)[:, :, :64].sum().backward()  # the low path's output
    assert x.grad[:, :, 64:].abs().max() == 0 and x.grad[:, :, :64].abs().max() > 0


def test_frequency_split_routes_and_concatenates():
    class Times(nn.Module):
        def __init__(self, k: float) -> None:
            super().__init__()
            self.k = k

        def forward(self, x):
            return self.k * x

    split = FrequencySplit([Times(1.0), Times(2.0), Times(3.0)], split_at=(3, 5))
    x = torch.randn(2, 4, 8, 6)
    y = split(x)
    torch.testing.assert_close(y, torch.cat([x[:, :, :3], 2 * x[:, :, 3:5], 3 * x[:, :, 5:]], dim=2))
    with pytest.raises(ConfigError):
        split(torch.randn(1, 4, 5, 6))
    with pytest.raises(ConfigError):
        FrequencySplit([nn.Identity(), nn.Identity()], split_at=(3, 5))


# --- SubSpectral Norm (QTI 2020 sec. 2.2) ------------------------------------------------------------------------


@pytest.mark.parametrize("momentum", [0.1, None])
def test_subspectral_norm_with_one_group_is_batchnorm(momentum):
    torch.manual_seed(1)
    bn = nn.BatchNorm2d(5, momentum=momentum)
    ssn = SubSpectralNorm(5, groups=1, momentum=momentum)
    with torch.no_grad():
        for layer in (bn, ssn):
            layer.weight.copy_(torch.linspace(0.5, 2.0, 5))
            layer.bias.copy_(torch.linspace(-1.0, 1.0, 5))
    for _ in range(3):
        x = 3 * torch.randn(4, 5, 8, 7) + 1
        torch.testing.assert_close(ssn(x), bn(x), rtol=0, atol=0)
    torch.testing.assert_close(ssn.running_mean, bn.running_mean, rtol=0, atol=0)
    torch.testing.assert_close(ssn.running_var, bn.running_var, rtol=0, atol=0)
    assert int(ssn.num_batches_tracked) == int(bn.num_batches_tracked) == 3
    bn.eval(), ssn.eval()
    x = torch.randn(2, 5, 8, 7)
    torch.testing.assert_close(ssn(x), bn(x), rtol=0, atol=0)


@pytest.mark.parametrize("shared_affine", [True, False])
def test_subspectral_norm_normalises_each_subband(shared_affine):
    torch.manual_seed(2)
    groups, f = 4, 16
    offsets = torch.tensor([0.0, 5.0, -3.0, 10.0]).repeat_interleave(f // groups)
    scales = torch.tensor([1.0, 0.1, 4.0, 2.0]).repeat_interleave(f // groups)
    x = torch.randn(8, 3, f, 10) * scales[None, None, :, None] + offsets[None, None, :, None]
    y = SubSpectralNorm(3, groups=groups, shared_affine=shared_affine)(x)
    bands = y.reshape(8, 3, groups, f // groups, 10)
    mean = bands.mean(dim=(0, 3, 4))
    var = bands.var(dim=(0, 3, 4), unbiased=False)
    raw_var = x.reshape(8, 3, groups, f // groups, 10).var(dim=(0, 3, 4), unbiased=False)
    torch.testing.assert_close(mean, torch.zeros(3, groups), atol=1e-5, rtol=0)
    torch.testing.assert_close(var, raw_var / (raw_var + 1e-5), atol=1e-4, rtol=0)  # unit variance up to eps
    # whole-spectrum BatchNorm leaves the sub-bands' offsets in place
    plain = nn.BatchNorm2d(3)(x).reshape(8, 3, groups, f // groups, 10).mean(dim=(0, 3, 4))
    assert plain.abs().max() > 0.5


def test_subspectral_norm_affine_shapes_and_per_group_affine():
    assert SubSpectralNorm(6, groups=2).weight.shape == (6,)  # shared by the sub-bands (the paper's choice)
    ssn = SubSpectralNorm(6, groups=2, shared_affine=False)
    assert ssn.weight.shape == (12,)
    with torch.no_grad():
        ssn.bias.copy_(torch.arange(12.0))
    y = ssn.eval()(torch.zeros(1, 6, 4, 3))  # eval: running stats 0/1, so y = bias per (channel, band)
    torch.testing.assert_close(y[0, :, :2, 0], torch.arange(12.0).reshape(6, 2)[:, :1].expand(6, 2))
    torch.testing.assert_close(y[0, :, 2:, 0], torch.arange(12.0).reshape(6, 2)[:, 1:].expand(6, 2))
    with pytest.raises(ConfigError):
        SubSpectralNorm(6, groups=2)(torch.zeros(1, 6, 5, 3))


# --- shared residual block (QTI 2020 sec. 2.1) --------------------------------------------------------------------


def test_shared_residual_block_reuses_conv_weights_but_not_batchnorm():
    block = SharedResidualBlock(8, repeats=3)
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(convs) == 2 and len(bns) == 6
    assert len({id(p) for b in bns for p in b.parameters()}) == 12
    seen: list[int] = []
    hook = block.conv1.register_forward_hook(lambda m, i, o: seen.append(m.weight.data_ptr()))
    block(torch.randn(2, 8, 4, 4))
    hook.remove()
    assert len(seen) == 3 and len(set(seen)) == 1
    # sharing in the full model: more repetitions add only BatchNorm parameters
    one = count_params(create_model("shared_resnet_ssn", in_chans=2, shared_repeats=1))
    three = count_params(create_model("shared_resnet_ssn", in_chans=2, shared_repeats=3))
    c = 64
    assert three - one == 2 * (2 * 2 * (2 * c) + 2 * 2 * (4 * c))


def test_shared_resnet_uses_subspectral_norm_with_two_bands():
    model = make("shared_resnet_ssn")
    ssn = [m for m in model.modules() if isinstance(m, SubSpectralNorm)]
    assert len(ssn) == 6 and all(m.groups == 2 and m.shared_affine for m in ssn)


def test_models_train_mode_backward_pass():
    for name in ("cp_mobile", "mobilenetv2_small", "cp_resnet"):
        model = make(name).train()
        c, f, _ = SHAPES[name][0]
        loss = model(torch.randn(2, c, f, 64)).logsumexp(dim=1).mean()
        loss.backward()
        assert all(p.grad is not None for p in model.parameters())


def test_deepcopy_and_state_dict_roundtrip():
    model = make("shared_resnet_ssn").eval()
    clone = create_model("shared_resnet_ssn", num_classes=3, in_chans=2)
    clone.load_state_dict(copy.deepcopy(model.state_dict()))
    clone.eval()
    x = torch.randn(1, 2, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(clone(x), model(x))
