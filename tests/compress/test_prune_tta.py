"""Pruning (QTI 2020 sec. 5.1) seen by the complexity check; TTA with the identity
augmentation equals plain inference (Horvath 2021 sec. 4)."""
import torch

from asclab.compress.complexity import count_nonzero_params, count_params
from asclab.compress.prune import conv_sparsity, finalize_pruning, global_l1_prune, to_fp16_state
from asclab.evaluate.inference import Predictor
from asclab.features import FeatureExtractor
from asclab.features.config import FeatureConfig
from asclab.models import create_model
from asclab.train.checkpoint import ModelFile


def test_global_l1_pruning_reaches_the_target_and_the_complexity_check_sees_it():
    torch.manual_seed(0)
    model = create_model("shared_resnet_ssn", num_classes=3, in_chans=2)
    before = count_nonzero_params(model)
    conv_total = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    masked = global_l1_prune(model, 0.6)
    assert abs(masked - round(0.6 * conv_total)) <= 1
    assert abs(conv_sparsity(model) - 0.6) < 1e-3
    # the smallest magnitudes went: every kept weight is at least as large as every pruned one
    kept = torch.cat([m.weight_orig[m.weight_mask.bool()].abs() for m in model.modules() if hasattr(m, "weight_mask")])
    gone = torch.cat([m.weight_orig[~m.weight_mask.bool()].abs() for m in model.modules() if hasattr(m, "weight_mask")])
    assert kept.min() >= gone.max()
    finalize_pruning(model)
    assert not any(hasattr(m, "weight_mask") for m in model.modules())
    after = count_nonzero_params(model)
    assert before - after == masked and count_params(model) == 601_862


def test_fp16_state_halves_floating_tensors_only():
    sd = {"w": torch.randn(3), "n": torch.tensor(5)}
    out = to_fp16_state(sd)
    assert out["w"].dtype == torch.float16 and out["n"].dtype == sd["n"].dtype


def _predictor() -> Predictor:
    torch.manual_seed(0)
    fcfg = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=64)
    model = create_model("cp_mobile", num_classes=4, in_chans=1).eval()
    mf = ModelFile(state_dict=model.state_dict(), classes=list("abcd"), features=fcfg.to_dict(),
                   model={"name": "cp_mobile"}, recipe={})
    return Predictor(model, FeatureExtractor(fcfg).eval(), fcfg, list("abcd"), 1.0, mf)


def test_tta_with_identity_augmentation_equals_plain_inference():
    pred = _predictor()
    waves = torch.randn(3, 1, 16000) * 0.1
    plain = pred.probs(waves)
    tta = pred.probs(waves, tta=5, tta_augment={"waveform": [], "spec": []})
    assert torch.allclose(plain, tta, atol=1e-6)


def test_tta_with_augmentation_averages_logits_before_the_softmax():
    pred = _predictor()
    waves = torch.randn(2, 1, 16128) * 0.1  # 64 frames
    aug = {"spec": [{"name": "temporal_shuffle", "p": 1.0}]}
    x = pred.features(waves)
    assert x.shape[-1] == 64
    # with p = 1 every copy has its two halves swapped (Horvath 2021 sec. 3), so the
    # average of the copies' logits is the swapped input's logits
    swapped = torch.cat([x[..., 32:], x[..., :32]], dim=-1)
    expected = torch.softmax(pred.model(swapped), 1)
    assert torch.allclose(pred.probs(waves, tta=3, tta_augment=aug), expected, atol=1e-5)



class _Sharpen(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return 300.0 * self.model(x)


def test_tta_averages_the_copies_logits_then_takes_the_softmax():
    from asclab.augment import build_spec_augment

    pred = _predictor()
    pred.model = _Sharpen(pred.model)  # an untrained model is near-uniform: sharpen its logits
    waves = torch.randn(2, 1, 16000) * 0.1
    cfg = [{"name": "freq_mask", "max_fraction": 0.5, "p": 1.0}]
    out = pred.probs(waves, tta=4, tta_augment={"spec": cfg}, seed=3)
    torch.manual_seed(3)  # the predictor seeds its copies with ``seed``
    aug = build_spec_augment(cfg)
    x = pred.features(waves)
    logits = torch.stack([pred.model(aug(x)) for _ in range(4)])
    assert torch.allclose(out, torch.softmax(logits.mean(0), 1), atol=1e-5)
    assert not torch.allclose(out, torch.softmax(logits, 2).mean(0), atol=1e-3)
