"""Recipes: one YAML per paper setting, the only place hyperparameters live.

A recipe is a nested mapping with the blocks ``data``, ``features``, ``model``,
``loss``, ``augment``, ``optim``, ``schedule``, ``train``, ``inference`` and
optionally ``device_head``, ``workflow`` and ``compress``. A recipe may name a
``base:`` recipe whose values it overrides (deep merge), so the five DCASE
2024 data splits differ only in what the paper changes. Command-line
overrides (``key.sub=value``) are applied last and values are parsed as YAML.
"""
from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from asclab.config.blocks import RecipeConfig
from asclab.config.checker import parse_block
from asclab.config.validate import validate_recipe
from asclab.errors import ConfigError

TOP_LEVEL_KEYS = {
    "name", "description", "paper", "base", "data", "features", "model", "loss",
    "augment", "optim", "schedule", "train", "inference", "device_head",
    "workflow", "compress",
}

DEFAULTS: dict[str, Any] = {
    "data": {"duration": None, "split": None, "test_fold": None, "class_map": None,
             "balance": None, "major_device": "a", "on_error": "raise",
             "group_folds": None,  # {folds: K, by: identifier}: recording-wise folds (asclab.data.group_folds)
             "validation": None,  # {fraction: 0.1, by: identifier}: carved from training (asclab.data.validation)
             "allow_outside": False,  # listed files may resolve outside the data folder (../, absolute, symlinks)
             "classes": None},  # the class list (a manifest may also declare it in classes.txt)
    "features": {},
    "model": {"name": "cp_mobile"},
    "loss": {"name": "ce"},
    "augment": {"waveform": [], "spec": [], "mix": None,
                "mel_power": []},  # masks of the mel power before the log (DCASE 2024 baseline)
    "optim": {"name": "adam", "lr": 1e-3},
    "schedule": {"name": "cosine"},
    "train": {"epochs": 10, "batch_size": 32, "seed": 0, "num_workers": 0,
              "train_crop_frames": None, "cache_features": True, "precision": "auto",
              "val_every": 1, "deterministic": False,
              "drop_last": None,  # None: drop the last incomplete batch when a full one exists; false: keep it
              "keep": "last"},  # weights kept: "last" epoch, or "best" on data.validation (asclab.data.validation)
    "inference": {"tta": 0, "tta_augment": [], "openset": None, "window_hop": None},
    "device_head": None,
    "workflow": None,
    "compress": None,
}


def recipe_dir() -> Path:
    return Path(str(resources.files("asclab") / "recipes"))


def list_recipes() -> dict[str, str]:
    """Recipe name -> one-line description, for ``asclab recipes``."""
    out = {}
    for path in sorted(recipe_dir().glob("*.yaml")):
        raw = _read_yaml(path)
        out[path.stem] = str(raw.get("description", "")).strip()
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml's safe loader, refusing a key given twice in one mapping (yaml keeps the last)."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"line {key_node.start_mark.line + 1}: key {key!r} is given twice")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a YAML mapping")
    return data


def deep_merge(base: dict, over: dict) -> dict:
    """``over``'s values over ``base``'s, block by block; a named block (``loss``, ``model`` ...)
    whose ``name`` differs from the base's replaces it whole, so that a recipe switching
    ``loss: {name: ce}`` over a focal base does not inherit ``gamma``."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if (isinstance(value, dict) and isinstance(out.get(key), dict)
                and "name" in value and "name" in out[key] and value["name"] != out[key]["name"]):
            out[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _resolve_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise ConfigError(f"{p}: recipe file not found")
        return p
    candidate = recipe_dir() / f"{name_or_path}.yaml"
    if not candidate.exists():
        known = ", ".join(list_recipes())
        raise ConfigError(f"unknown recipe {name_or_path!r}; known: {known}")
    return candidate


def _load_raw(name_or_path: str | Path, seen: tuple = ()) -> dict:
    path = _resolve_path(name_or_path)
    if path in seen:
        raise ConfigError(f"{path}: recipe 'base' chain loops")
    raw = _read_yaml(path)
    unknown = sorted(set(raw) - TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown recipe key(s) {', '.join(unknown)}")
    raw.setdefault("name", path.stem)
    base = raw.pop("base", None)
    if base:
        parent = _load_raw(base, seen + (path,))
        parent.pop("description", None)
        raw = deep_merge(parent, raw)
    return raw


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, value = text.split("=", 1)
    keys = [k for k in key.strip().split(".") if k]
    if not keys or keys[0] not in TOP_LEVEL_KEYS:
        raise ConfigError(f"override {text!r}: unknown top-level key {keys[0] if keys else ''!r}")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        parsed = value
    return keys, parsed


def apply_overrides(recipe: dict, overrides: list[str]) -> dict:
    out = copy.deepcopy(recipe)
    for text in overrides or []:
        keys, value = parse_override(text)
        node = out
        for k in keys[:-1]:
            if node.get(k) is None:
                node[k] = {}
            if not isinstance(node[k], dict):
                raise ConfigError(f"override {text!r}: {k!r} is not a mapping")
            node = node[k]
        node[keys[-1]] = value
    return out


def load_recipe(name_or_path: str | Path | dict, overrides: list[str] | None = None) -> dict:
    """Load a recipe by name (``asclab recipes``) or YAML path, with defaults and overrides
    (validated: :func:`load_config` also returns the typed configuration)."""
    return load_config(name_or_path, overrides)[0]


def validate(recipe: dict):
    """The typed configuration (``asclab.config.RecipeConfig``) of a merged recipe; every
    key checked once (unknown keys, types, ranges, allowed values, settings that clash)."""
    return validate_recipe(recipe)


def load_config(name_or_path: str | Path | dict, overrides: list[str] | None = None):
    """``(recipe dict, typed RecipeConfig)``: the recipe loaded, defaults and overrides applied,
    and validated once (:func:`load_recipe` without its own validation pass)."""
    raw = copy.deepcopy(name_or_path) if isinstance(name_or_path, dict) else _load_raw(name_or_path)
    recipe = apply_overrides(deep_merge(DEFAULTS, raw), overrides or [])
    if not recipe.get("model", {}).get("name"):
        raise ConfigError(f"recipe {recipe.get('name')!r}: model.name is required")
    return recipe, validate(recipe)


def as_config(recipe):
    """The typed configuration (``asclab.config.RecipeConfig``) of ``recipe``: itself when it is
    one already, else the (merged) recipe dict validated. Consumers take either, so a caller
    that holds the typed configuration passes it on instead of the dict being parsed again."""
    return recipe if isinstance(recipe, RecipeConfig) else validate(recipe)


def dump_recipe(recipe: dict) -> str:
    return yaml.safe_dump(recipe, sort_keys=False)


def typed_block(cls: type, recipe: dict | None, name: str):
    """One block of a recipe dict (a model file's stored recipe) checked and typed, e.g.
    ``typed_block(DataConfig, mf.recipe, "data")``; an absent block gives the defaults."""
    return parse_block(cls, copy.deepcopy((recipe or {}).get(name) or {}), name)
