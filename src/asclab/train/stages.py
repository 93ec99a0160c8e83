"""Multi-stage training workflows, each stage a partial recipe.

A recipe's ``workflow.stages`` is a list; each stage overrides recipe blocks
(``loss``, ``optim``, ``schedule``, ``augment``, ``train``) and may set:

- ``mode``: ``classify`` or ``arcface`` (Horvath 2021 sec. 6), with ``arcface: {s, m}``;
- ``trainable``: ``all`` or a list of parts among ``model``, ``body``, ``head``,
  ``arcface``, ``device_head`` (the rest is frozen, BN included);
- ``reset_head``: re-initialise the model's top layers (Horvath stage 4);
- ``prune``: ``{amount: 0.6}`` global L1 pruning before the stage (QTI sec. 5.1);
- ``balance``: ``{per_cell: 7}`` train this stage on balanced data (Horvath sec. 2);
- ``full_split``: ``true`` trains this stage on every training record, without the
  recipe's ``data.balance`` (Horvath sec. 6 step 2: "using the full training split");
- ``device_specific``: ``{layers: all | [names], devices: [ids]}`` fine-tune one copy of
  the model per training device on its clips (DCASE 2025; ``asclab.train.device_specific``);
- ``qat``: ``{backend: x86 | fbgemm | qnnpack}`` quantisation-aware fine-tuning, then the
  model is converted to int8 (``asclab.compress.qat``); the last stage of a workflow.

A recipe without a workflow is one stage.
"""
from __future__ import annotations

import torch.nn as nn

from asclab.compress.prune import global_l1_prune
from asclab.config import deep_merge
from asclab.data.records import Record
from asclab.errors import ConfigError
from asclab.train.data import select_training_records

STAGE_KEYS = {"name", "mode", "arcface", "trainable", "reset_head", "prune", "balance", "full_split",
              "loss", "optim", "schedule", "augment", "train", "keep",
              "device_specific",  # asclab.train.device_specific (DCASE 2025)
              "qat"}  # asclab.compress.qat: int8 quantisation-aware training


def stage_list(recipe: dict) -> list[dict]:
    wf = recipe.get("workflow")
    if not wf or not wf.get("stages"):
        return [{"name": "train"}]
    stages = wf.get("stages") or []
    if not stages:
        raise ConfigError("workflow.stages is empty")
    for i, st in enumerate(stages):
        unknown = sorted(set(st) - STAGE_KEYS)
        if unknown:
            raise ConfigError(f"workflow stage {i + 1}: unknown key(s) {', '.join(unknown)}")
        if st.get("qat") is not None and i != len(stages) - 1:
            raise ConfigError(f"workflow stage {i + 1}: qat must be the last stage (the model is int8 after it)")
    return [dict(s) for s in stages]


def stage_records(train_records: list[Record], recipe: dict, stage: dict, seed: int) -> list[Record] | None:
    """The records a stage trains on, or None for the run's own (``data.balance`` applied).

    ``full_split``: all ``train_records`` (None when the recipe does not balance,
    so the run's data set is reused); ``balance``: a balanced subsample of them
    drawn with ``seed``."""
    if stage.get("full_split") and stage.get("balance"):
        raise ConfigError(f"stage {stage.get('name')!r}: full_split and balance exclude each other")
    if stage.get("full_split"):
        return list(train_records) if recipe["data"].get("balance") else None
    if stage.get("balance"):
        return select_training_records(list(train_records),
                                       deep_merge(recipe, {"data": {"balance": stage["balance"]}}), seed)
    return None


def _parts(module) -> dict[str, list[nn.Module]]:
    model = module.model
    head = getattr(model, "head", None)
    body = [m for name, m in model.named_children() if m is not head]
    return {
        "model": [model],
        "body": body,
        "head": [head] if head is not None else [],
        "arcface": [module.arcface] if module.arcface is not None else [],
        "device_head": [module.device_head] if module.device_head is not None else [],
    }


def reset_parameters(m: nn.Module) -> None:
    for sub in m.modules():
        if hasattr(sub, "reset_parameters"):
            sub.reset_parameters()


def stage_recipe(recipe: dict, stage: dict) -> dict:
    """The recipe a stage trains with: ``train`` merges; ``loss``, ``optim`` and
    ``schedule`` merge unless the stage names another kind (then they replace);
    ``augment`` replaces (``augment: {}`` means no augmentation)."""
    out = recipe
    for block in ("loss", "optim", "schedule", "train"):
        if block in stage:
            new = stage[block] or {}
            if block != "train" and new.get("name") not in (None, (recipe.get(block) or {}).get("name")):
                out = {**out, block: dict(new)}
            else:
                out = deep_merge(out, {block: new})
    if "augment" in stage:
        out = {**out, "augment": {"waveform": [], "spec": [], "mix": None, **(stage["augment"] or {})}}
    return cap_epochs(out)


def cap_epochs(recipe: dict) -> dict:
    """``train.epochs_cap`` shortens every stage to at most that many epochs; the
    learning-rate schedule is compressed to fit (``train.schedule_epochs``)."""
    cap = recipe["train"].get("epochs_cap")
    epochs = int(recipe["train"]["epochs"])
    if not cap or int(cap) >= epochs:
        return recipe
    return deep_merge(recipe, {"train": {"epochs": int(cap), "schedule_epochs": epochs}})


def apply_stage(module, recipe: dict, stage: dict) -> dict:
    """Configure ``module`` for a stage and return the stage's effective recipe."""
    srecipe = stage_recipe(recipe, stage)
    arcface = {**((recipe.get("workflow") or {}).get("arcface") or {}), **(stage.get("arcface") or {})}
    module.set_mode(stage.get("mode", "classify"), arcface)
    parts = _parts(module)
    if stage.get("reset_head"):
        if not parts["head"]:
            raise ConfigError(f"stage {stage.get('name')!r}: model {recipe['model']['name']!r} has no separate head to reset")
        reset_parameters(parts["head"][0])
    if stage.get("prune"):
        global_l1_prune(module.model, float(stage["prune"]["amount"]))
    if stage.get("qat") is not None:  # fake-quantised fine-tuning; fit() converts to int8 after the stage
        from asclab.compress.complexity import default_input_shape
        from asclab.compress.qat import prepare_qat

        shape = default_input_shape(module.fcfg, 1.0)  # the module's FeatureConfig (the recipe's typed one)
        module.model = prepare_qat(module.model, shape, str((stage["qat"] or {}).get("backend", "x86")))
        parts = _parts(module)
    trainable = stage.get("trainable", "all")
    frozen: list[nn.Module] = []
    if trainable != "all":
        names = [trainable] if isinstance(trainable, str) else list(trainable)
        unknown = sorted(set(names) - set(parts))
        if unknown:
            raise ConfigError(f"stage {stage.get('name')!r}: unknown trainable part(s) {', '.join(unknown)}")
        keep = {id(p) for n in names for m in parts[n] for p in m.parameters()}
        for p in module.parameters():
            p.requires_grad_(id(p) in keep)
        frozen = [m for n, ms in parts.items() if n not in names and n != "model" for m in ms]
        if "model" not in names and "body" not in names:
            frozen += parts["body"]
    else:
        for p in module.parameters():
            p.requires_grad_(True)
    module.frozen_modules = frozen
    module.configure_training(srecipe)
    return srecipe
