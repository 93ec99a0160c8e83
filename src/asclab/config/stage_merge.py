"""A workflow stage's recipe: its partial blocks merged over the recipe's (the recipe layer's
job: the result is validated once, ``asclab.train.stages.plan.stage_context``)."""
from __future__ import annotations

from collections.abc import Mapping

from asclab.config.recipes import deep_merge


def stage_recipe(recipe: dict, stage: Mapping) -> dict:
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
