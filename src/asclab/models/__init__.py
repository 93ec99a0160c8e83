"""The model zoo: every family registers its factories with ``@register_model``.

``create_model(name, num_classes=..., in_chans=..., **kwargs)`` builds one;
``list_models()`` names them. Every model maps ``[B, in_chans, n_mels, T]`` to
logits ``[B, num_classes]`` and has ``embed(x) -> [B, embed_dim]``.
"""
# importing the families registers their factories
from asclab.models import cp_mobile, cp_resnet, mobilenetv2, shared_resnet, two_path_resnet  # noqa: F401
from asclab.models import device_container  # noqa: F401  (after the families it wraps)
from asclab.models.registry import MODELS, create_model, list_models, register_model

__all__ = ["MODELS", "create_model", "list_models", "register_model"]
