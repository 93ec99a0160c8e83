"""One pass through a model's body giving both the body output and the logits.

An auxiliary head (the Gao & McDonnell 2020 device head) reads the body's
output; calling ``model.embed(x)`` and then ``model(x)`` would run the body
twice (and update its BatchNorm statistics twice per step). The model
families have two shapes of top:

- a convolutional class output on a feature map (two-path ResNet, CP-Mobile,
  Shared-ResNet): ``forward(x) = classifier(features(x)).mean(F, T)``, body
  output Tensor[B, C, F, T];
- Horvath et al.'s dense top (MobileNetV2, CP-ResNet):
  ``forward(x) = head(embed(x))``, body output the embedding Tensor[B, D].

``tests/losses/test_device_head.py`` checks ``body_and_logits(m, x)[1] == m(x)`` for every registered family.
"""
from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from asclab.errors import ConfigError


def has_feature_map_top(model: nn.Module) -> bool:
    """True when the class output is a convolution over ``model.features(x)``."""
    return callable(getattr(model, "features", None)) and isinstance(getattr(model, "classifier", None), nn.Module)


def body_and_logits(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(body output, logits)`` with the body run once; the logits equal ``model(x)``."""
    if has_feature_map_top(model):
        feats = model.features(x)
        return feats, model.classifier(feats).mean(dim=(2, 3))
    if isinstance(getattr(model, "head", None), nn.Module) and callable(getattr(model, "embed", None)):
        emb = model.embed(x)
        return emb, model.head(emb)
    raise ConfigError(f"model {type(model).__name__} exposes neither features()+classifier nor embed()+head: "
                      "an auxiliary head cannot share its body")
