"""A submission module (``NAME/NAME_<i>.py``): the DCASE 2025 task 1 inference API.

Its default weights are ``NAME/ckpts/<this module's name>.pt``; the package and the
module name come from ``__package__`` and this file's name, so the file is the same
for every package and index.
"""
import importlib.resources as resources
from pathlib import Path

from . import _common

DEFAULT_WEIGHTS = Path(__file__).stem + ".pt"


def _default_path():
    return str(resources.files(f"{__package__}.ckpts").joinpath(DEFAULT_WEIGHTS))


def load_model(model_file_path=None):
    """The model; ``model_file_path=None`` loads the packaged weights."""
    return _common.load_model(model_file_path or _default_path())


def load_inputs(file_paths, device_ids, model):
    """Model inputs, one per file, in the order of ``file_paths``."""
    return _common.load_inputs(file_paths, device_ids, model)


def get_model_for_device(model, device_id):
    """The network for ``device_id`` (the general model for a device without its own)."""
    return _common.get_model_for_device(model, device_id)


def predict(file_paths, device_ids, model_file_path=None, use_cuda=True, batch_size=64):
    """``(logits, class_order)``: a list of [n_classes] tensors, one per file, and the class names."""
    model = load_model(model_file_path)
    return _common.predict(file_paths, device_ids, model, use_cuda=use_cuda, batch_size=batch_size)
