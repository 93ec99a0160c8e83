"""The recipe layer: YAML recipes (``recipes``), their typed blocks (``blocks``), the checker
(``checker``) and whole-recipe validation (``validate``). A recipe is loaded and validated once
(:func:`load_config`), and the typed :class:`RecipeConfig` is what the stages below read."""
from asclab.config.blocks import *  # noqa: F401,F403  (the block dataclasses)
from asclab.config.blocks import RecipeConfig, StageConfig
from asclab.config.checker import Named, coerce, parse_block, parse_named, plain, spec
from asclab.config.recipes import (DEFAULTS, TOP_LEVEL_KEYS, apply_overrides, as_config, deep_merge, dump_recipe,
                                   list_recipes, load_config, load_recipe, parse_override, recipe_dir, typed_block,
                                   validate)
from asclab.config.validate import check_cross_fields, input_frames, validate_recipe

__all__ = ["DEFAULTS", "TOP_LEVEL_KEYS", "Named", "RecipeConfig", "StageConfig", "apply_overrides", "as_config",
           "check_cross_fields", "coerce", "deep_merge", "dump_recipe", "input_frames", "list_recipes", "load_config",
           "load_recipe", "parse_block", "parse_named", "parse_override", "plain", "recipe_dir", "spec", "typed_block",
           "validate", "validate_recipe"]
