"""Complexity reports of model names, recipes and model files: the ``asclab complexity`` workflow."""
from __future__ import annotations

from pathlib import Path

from asclab.compress.complexity import default_input_shape
from asclab.compress.deployed import model_complexity, stored_bits
from asclab.compress.paper_inputs import PAPER_INPUTS
from asclab.config import (
    RecipeConfig,
    list_recipes,
    load_config,
)
from asclab.evaluate.inference import Predictor
from asclab.models import create_model, list_models


def complexity_targets(targets: list[str]) -> dict[str, dict]:
    """Complexity reports for model names, recipes or checkpoints (default: every model).

    A model name is measured at its own paper's input (``asclab.compress.paper_inputs``;
    a family not listed there at 1 s of its first recipe's front end), a recipe at
    one clip of its ``data.duration`` (1 s when unset), a checkpoint at 1 s. The bit width is
    the stored dtype's (``asclab.compress.deployed``): a recipe's, the one its model file will
    have (16 with ``compress.fp16``)."""
    reports: dict[str, dict] = {}
    # the device container wraps another model; it is listed per member for a model file that holds one
    for t in targets or [m for m in list_models() if m != "device_container"]:
        p = Path(t)
        if p.suffix == ".ckpt" or p.is_dir():
            pred = Predictor.load(p)
            rep = model_complexity(pred.model, pred.fcfg, bits=stored_bits(pred.model, pred.meta.state_dict))
            if "per_device" in rep:  # a device container: one row per member model
                reports.update({f"{p} [{k}]": r for k, r in rep["per_device"].items()})
            else:
                reports[str(p)] = rep
            continue
        paper = PAPER_INPUTS.get(t) if t in list_models() else None
        if paper is not None:
            cfg = load_config(paper.recipe)[1] if paper.recipe else load_config(
                {"name": t, "model": {"name": t}, "compress": {"fp16": paper.fp16}})[1]
        elif t in list_models():
            cfg = _default_config_for_model(t)
        else:
            cfg = load_config(t)[1]
        fcfg = cfg.features
        kwargs = {k: v for k, v in cfg.model.params.items() if k != "num_classes"}
        n_classes = paper.num_classes if paper is not None else int(cfg.model.params.get("num_classes", 10))
        model = create_model(cfg.model.name, num_classes=n_classes,
                             in_chans=paper.shape[0] if paper is not None else fcfg.in_chans, **kwargs)
        if paper is not None:
            shape = (1, *paper.shape)
        elif t in list_models():
            shape = None
        else:
            shape = default_input_shape(fcfg, float(cfg.data.duration or 1.0))
        bits = 16 if cfg.compress is not None and cfg.compress.fp16 else 32
        rep = model_complexity(model, fcfg, bits=bits, input_shape=shape)
        rep["recipe"] = cfg.name
        if paper is not None:
            rep["input_source"] = paper.source
        reports[t] = rep
    return reports


def _default_config_for_model(model_name: str) -> RecipeConfig:
    """The first recipe (by name) that trains ``model_name``, else the defaults around it."""
    for name in list_recipes():
        cfg = load_config(name)[1]
        if cfg.model.name == model_name:
            return cfg
    return load_config({"name": model_name, "model": {"name": model_name}})[1]
