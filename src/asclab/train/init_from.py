"""``train.init_from``: start training from the weights of an asclab model file.

Transfer and fine-tuning (e.g. a published DCASE model brought in with
``asclab import``, then trained on another scene set): every tensor whose name
and shape fit the new model is copied; the classifier head (the model's last
child module, ``classifier`` for CP-Mobile) starts fresh when the class lists
differ. From a device container the general model's weights are taken (or the
whole container when the new model is one too). The front end must agree: a
model file whose sample rate, FFT, hop, mel bands or scaling differ from the
recipe's is refused, since its weights would see other inputs.
"""
from __future__ import annotations

import sys

import torch
import torch.nn as nn

from asclab.errors import ConfigError
from asclab.features.config import FeatureConfig
from asclab.train.checkpoint import load_model_file

FRONT_END_KEYS = ("sample_rate", "n_fft", "hop_length", "n_mels", "scale", "log_eps", "channels", "deltas", "hpss")


def init_from(model: nn.Module, path: str, classes: list[str], features: FeatureConfig | dict) -> dict:
    """Copy the fitting weights of model file ``path`` into ``model``; what was copied and left fresh.
    Weights or stored BatchNorm statistics that are NaN or infinite are refused before training."""
    mf = load_model_file(path)
    have = FeatureConfig.from_dict(mf.features)
    want = features if isinstance(features, FeatureConfig) else FeatureConfig.from_dict(features)
    differ = [k for k in FRONT_END_KEYS if getattr(have, k) != getattr(want, k)]
    if differ:
        k = differ[0]
        raise ConfigError(f"train.init_from={path}: its front end differs from the recipe's in {', '.join(differ)} "
                          f"(e.g. --set features.{k}={getattr(have, k)})")
    state = dict(mf.state_dict)
    if mf.model.get("name") == "device_container" and not hasattr(model, "model_for_device"):
        state = {k[len("base."):]: v for k, v in state.items() if k.startswith("base.")}
    head = list(model.named_children())[-1][0] if list(model.named_children()) else None
    new_head = list(mf.classes) != list(classes)
    own = model.state_dict()
    take, fresh = {}, []
    for k, v in own.items():
        src = state.get(k)
        if src is None or tuple(src.shape) != tuple(v.shape) or (new_head and head and k.startswith(head + ".")):
            fresh.append(k)
        else:
            take[k] = src.to(v.dtype)
    bad = [k for k, v in take.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ConfigError(f"train.init_from={path}: {len(bad)} of its tensors hold NaN or infinite values "
                          f"(first: {bad[0]}); refused before training (a NaN start trains a NaN model)")
    if not take:
        raise ConfigError(f"train.init_from={path}: none of its weights fit model {type(model).__name__}")
    model.load_state_dict(take, strict=False)
    print(f"init_from {path}: {len(take)} tensors copied, {len(fresh)} fresh"
          + (f" (new head '{head}': classes differ)" if new_head else ""), file=sys.stderr)
    return {"copied": len(take), "fresh": fresh, "new_head": new_head}
