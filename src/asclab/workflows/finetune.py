"""Fine-tune a published or earlier model on your own scenes: the ``asclab finetune`` workflow.

The model file says what the network hears and is (its front end, its architecture); the
fine-tuning recipe says how to train (``finetune_cp_mobile`` for clips of 3 s and more,
``finetune_cp_mobile_1s`` for 1-s clips): lower learning rate than from scratch, warm-up,
cross-entropy, light augmentation, last-epoch weights. The recipe's ``features`` and ``model``
blocks are replaced by the model file's, ``train.init_from`` names the file (its weights are
copied; a classifier whose classes differ starts fresh, said in one line), and ``data.duration``
is the data's clip length unless the recipe or ``--set`` gives one. A device container is
fine-tuned as a container (``finetune_cp_mobile_devices``: its general model, then one copy per
training device from the fine-tuned general model, as the DCASE 2025 baseline's two steps) or
reduced to its general model with ``general=True``. The new model file records its ancestry
(``asclab.workflows.train``).
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

from asclab.config import DataConfig, load_config
from asclab.data.open import open_data
from asclab.data.audio import audio_info
from asclab.errors import ConfigError
from asclab.features.config import FeatureConfig
from asclab.train.checkpoint import load_model_file, resolve_checkpoint
from asclab.workflows.train import train_run

SHORT_CLIPS = 3.0  # seconds: below this, the 1-s recipe (no temporal crop)


def finetune_recipe(model: str | Path, data_dir: str | Path, recipe: str | Path | None = None, *,
                    general: bool = False, overrides: list[str] | None = None) -> dict:
    """The recipe that fine-tunes model file ``model`` on ``data_dir`` (checked by the caller's
    ``load_config``): the recipe's training settings, the model file's front end and network."""
    path = resolve_checkpoint(model)
    mf = load_model_file(path)
    net = dict(mf.model)
    container = net.get("name") == "device_container"
    if container:
        net = dict(net["base"])  # the general stage trains the container's general network
    try:
        FeatureConfig.from_dict(mf.features)
    except (TypeError, ValueError, ConfigError) as exc:
        raise ConfigError(f"{path}: its front end cannot be rebuilt ({exc}); it cannot be fine-tuned") from None
    records = _records(data_dir, load_config(recipe or "finetune_cp_mobile", overrides)[1].data)
    seconds = _clip_seconds(records)
    name = recipe or ("finetune_cp_mobile_1s" if seconds < SHORT_CLIPS else "finetune_cp_mobile")
    if container and not general and recipe is None:
        name += "_devices"  # the general model, then each device's copy (finetune_cp_mobile_devices)
    merged, cfg = load_config(name, overrides)
    if container and not general:
        if not _has_device_stage(cfg):
            raise ConfigError(f"{path}: a device container, and recipe {name!r} has no device_specific stage: "
                              "pass --general to fine-tune its general model, or a recipe with a device stage "
                              "(e.g. finetune_cp_mobile_devices)")
        if not any(r.device for r in records):
            raise ConfigError(f"{path}: a device container (general model + {len(mf.devices)} device models), but "
                              f"{data_dir} has no device ids to fine-tune device models on: pass --general to "
                              "fine-tune its general model")
    out = copy.deepcopy(merged)
    out["features"] = dict(mf.features)  # never from hand-set keys: the network was trained on these
    out["model"] = net
    out["train"] = {**out["train"], "init_from": str(path)}
    if out["data"].get("duration") is None:
        out["data"]["duration"] = seconds
        if mf.duration and abs(float(mf.duration) - seconds) > 1e-6:
            print(f"note: {data_dir} holds {seconds:g}-s clips; {path.name} was trained on {mf.duration:g}-s clips "
                  f"(fine-tuned on {seconds:g}-s inputs)", file=sys.stderr)
    inference = (mf.recipe or {}).get("inference") or {}
    if "whole_file" in inference:
        out["inference"] = {**out["inference"], "whole_file": bool(inference["whole_file"])}
    out["name"] = f"{merged.get('name', name)}@{path.name}"
    out.setdefault("description", f"{name} from {path}")
    load_config(out)  # every key checked here, naming the key
    return out


def _has_device_stage(cfg) -> bool:
    stages = (cfg.workflow.stages if cfg.workflow is not None else None) or []
    return any(getattr(st, "device_specific", None) is not None for st in stages)


def _records(data_dir: str | Path, data: DataConfig) -> list:
    """Every clip of a data set as the recipe's ``data`` block opens it (the split may be chosen
    later: crossval's folds)."""
    records = list(open_data(data_dir, data).records)
    if not records:
        raise ConfigError(f"{data_dir}: no clips to fine-tune on")
    return records


def _clip_seconds(records: list) -> float:
    """The clip length of a data set: its first clip's, rounded to 0.01 s."""
    info = audio_info(records[0].path)
    return round(info.frames / info.sample_rate, 2)


def finetune_run(model: str | Path, data_dir: str | Path, out_dir: str | Path, *, recipe: str | Path | None = None,
                 general: bool = False, overrides: list[str] | None = None, **kw) -> dict:
    """``asclab finetune``: train the fine-tuning recipe of ``model`` on ``data_dir`` into ``out_dir``."""
    return train_run(finetune_recipe(model, data_dir, recipe, general=general, overrides=overrides), data_dir,
                     out_dir, **kw)
