"""The DCASE 2025 task 1 inference interface for an asclab model file.

The challenge asked each submission for a Python module with four functions
(CPJKU ``dcase2025_task1_inference`` README, "Inference API: Required
Functions"), called by the organisers' ``evaluate_submission.py``:

* ``load_model(model_file_path=None)`` -> the model object;
* ``load_inputs(file_paths, device_ids, model)`` -> one model input per file;
* ``get_model_for_device(model, device_id)`` -> the network for a recording device;
* ``predict(file_paths, device_ids, model_file_path=None, use_cuda=True, batch_size=64)``
  -> ``(logits, class_order)``, one ``[n_classes]`` row per file in input order.

Here ``model_file_path=None`` means the path in ``$ASCLAB_MODEL`` (asclab
ships no default weights). A device container (``asclab.models.device_container``,
e.g. an imported DCASE 2025 model) gives each device id its own network, the
general one for an unknown id; any other asclab network serves every device.
``predict`` is ``asclab predict``'s own path (``Predictor.classify_files``: the model's windowing,
files grouped by device id) and returns ``log`` of
the whole-file probabilities (mean over windows) as the logits: a ``[N, K]`` tensor, whose rows iterate like the
challenge's list of ``[K]`` tensors and whose softmax is exactly what
``asclab predict`` reports (for a one-window file this is the network's
log-softmax, i.e. its logits up to a constant). For a model with an open-set
rule (McDonnell & Gao 2019 task 1c, ``asclab.evaluate.openset``) ``log(weight)``
is added to the unknown column, so the argmax of the returned logits is the
label ``asclab predict`` gives. ``predict`` also takes an already loaded ``model=``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from asclab.errors import ConfigError
from asclab.evaluate.inference import Predictor
from asclab.evaluate.openset import decision_logits
from asclab.evaluate.windowing import iter_windows

MODEL_ENV = "ASCLAB_MODEL"


class DcaseModel(nn.Module):
    """An asclab model file as one module: ``forward(waveform[B, C, N]) -> logits[B, K]``."""

    def __init__(self, predictor: Predictor) -> None:
        super().__init__()
        self.predictor = predictor
        self.features = predictor.features
        self.network = predictor.model
        self.class_order: list[str] = list(predictor.classes)
        self.devices: list[str] = list(predictor.meta.devices or [])
        self.openset = predictor.openset  # the model file's open-set rule, or None
        self.windowing = predictor.windowing()  # as asclab predict windows the file

    def forward(self, waveform: Tensor, device_ids: Sequence[str | None] | None = None) -> Tensor:
        """Logits; ``device_ids`` route the clips of a device container (asclab.models.device_container)."""
        return self.predictor.logits(waveform, None if device_ids is None else list(device_ids))


def load_model(model_file_path: str | Path | None = None) -> DcaseModel:
    path = model_file_path or os.environ.get(MODEL_ENV)
    if not path:
        raise ConfigError(f"no model file given: pass model_file_path or set ${MODEL_ENV}")
    return DcaseModel(Predictor.load(path)).eval()


def get_model_for_device(model: DcaseModel, device_id: str) -> nn.Module:
    """The network (features -> logits) used for ``device_id``: a device container's model for it
    (the general model for an unknown id), else the one network every device shares."""
    if hasattr(model.network, "model_for_device"):
        return model.network.model_for_device(device_id)
    return model.network


def load_inputs(file_paths: Sequence[str | Path], device_ids: Sequence[str] | None, model: DcaseModel) -> list[Tensor]:
    """Network inputs per file: ``[n_windows, in_chans, n_mels, frames]`` (windows of the model's clip length)."""
    _check_lengths(file_paths, device_ids)
    out = []
    for path in file_paths:
        waves = np.stack([w for _, w in iter_windows(path, model.windowing)])
        out.append(torch.from_numpy(model.predictor.inputs(waves)))
    return out


def predict(file_paths: Sequence[str | Path], device_ids: Sequence[str] | None = None,
            model_file_path: str | Path | None = None, use_cuda: bool = False, batch_size: int = 64, *,
            model: DcaseModel | None = None) -> tuple[Tensor, list[str]]:
    """``(logits[N, K], class_order)`` for the files, in input order (see module doc)."""
    _check_lengths(file_paths, device_ids)
    model = model if model is not None else load_model(model_file_path)
    device = torch.device("cuda" if use_cuda and torch.cuda.is_available() else "cpu")
    model = model.to(device)  # the predictor's front end and network move with it
    # classified like asclab predict, files grouped by device id (a device container's model each)
    results = model.predictor.classify_files(file_paths, devices=device_ids, batch_size=batch_size,
                                             progress=len(file_paths) > 1)
    probs = np.stack([r.probs for r in results])
    logits = decision_logits(probs, model.class_order, model.openset)
    return torch.from_numpy(logits).float(), list(model.class_order)


def _check_lengths(file_paths: Sequence, device_ids: Sequence | None) -> None:
    if device_ids is not None and len(device_ids) != len(file_paths):
        raise ConfigError(f"{len(file_paths)} files but {len(device_ids)} device ids")
