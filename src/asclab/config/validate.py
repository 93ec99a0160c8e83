"""Validation of a whole merged recipe: every block, each stage's partial blocks, names
that refer to tables outside the schema, and settings that cannot work together."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from asclab.compress.complexity import CHALLENGE_LIMITS
from asclab.config.blocks import AugmentConfig, RecipeConfig, TrainConfig
from asclab.config.checker import (
    LossBlock,
    MixBlock,
    OptimBlock,
    ScheduleBlock,
    _show,
    parse_block,
    parse_named,
)
from asclab.data.classmaps import CLASS_MAPS
from asclab.errors import ConfigError
from asclab.features.config import FeatureConfig


def validate_recipe(recipe: Mapping[str, Any]) -> RecipeConfig:
    """Check a merged recipe (defaults + file + base + overrides) and return it typed.

    Coerced scalars (a number given as text) are written back into ``recipe``."""
    cfg = parse_block(RecipeConfig, recipe, "")
    _check_stages(cfg, recipe)
    _check_names(cfg)
    check_cross_fields(cfg)
    return cfg


def _check_stages(cfg: RecipeConfig, recipe: Mapping[str, Any]) -> None:
    """A stage's partial blocks: ``train`` against TrainConfig; ``loss``/``optim``/``schedule``
    against the builder they name (or the recipe's own when they name none); ``augment``."""
    wf = cfg.workflow
    if wf is None or not wf.stages:
        return
    raw_stages = recipe["workflow"]["stages"]
    kinds = {"loss": (LossBlock, cfg.loss.name), "optim": (OptimBlock, cfg.optim.name),
             "schedule": (ScheduleBlock, cfg.schedule.name)}
    for i, (stage, raw) in enumerate(zip(wf.stages, raw_stages)):
        where = f"workflow.stages[{i}]"
        if raw.get("train") is not None:
            parse_block(TrainConfig, raw["train"], f"{where}.train", partial=True)
        for block, (cls, base) in kinds.items():
            if raw.get(block) is not None:
                parse_named(cls, raw[block], f"{where}.{block}", partial=True, base_name=base)
        if raw.get("augment") is not None:
            parse_block(AugmentConfig, raw["augment"], f"{where}.augment", partial=True)


def _check_names(cfg: RecipeConfig) -> None:
    """Names that refer to tables outside the schema: class maps, complexity limits, recipes."""
    if isinstance(cfg.data.class_map, str) and cfg.data.class_map not in CLASS_MAPS:
        raise ConfigError(f"recipe key data.class_map: {_show(cfg.data.class_map)} is not allowed "
                          f"(allowed: {', '.join(sorted(CLASS_MAPS))} or null)")
    if cfg.compress is not None and cfg.compress.limit is not None:
        keys = [lim.key for lim in CHALLENGE_LIMITS]
        if cfg.compress.limit not in keys:
            raise ConfigError(f"recipe key compress.limit: {_show(cfg.compress.limit)} is not allowed "
                              f"(allowed: {', '.join(keys)})")


def input_frames(fc: FeatureConfig, seconds: float) -> int:
    """Feature frames of ``seconds`` of audio (as ``compress.complexity.default_input_shape``)."""
    n = int(round(seconds * fc.sample_rate))
    frames = 1 + n // fc.hop_length if fc.center else 1 + (n - fc.n_fft) // fc.hop_length
    if fc.deltas and not fc.delta_padding:
        frames -= 2 * (fc.delta_width - 1)  # delta and delta-delta passes, each unpadded
    return frames


def check_cross_fields(cfg: RecipeConfig) -> None:
    """Settings that cannot work together, refused before any data is read: a clip
    giving no frames, a time crop or a mixup crop longer than its input."""
    fc = cfg.features
    if fc.fmax is not None and fc.fmax <= fc.fmin:
        raise ConfigError(f"recipe key features.fmax: {fc.fmax:g} is not above features.fmin ({fc.fmin:g})")
    if fc.fmax is not None and fc.fmax > fc.sample_rate / 2:
        raise ConfigError(f"recipe key features.fmax: {fc.fmax:g} is above the Nyquist frequency "
                          f"{fc.sample_rate / 2:g} Hz of features.sample_rate")
    if fc.win_length is not None and fc.win_length > fc.n_fft:
        raise ConfigError(f"recipe key features.win_length: {fc.win_length} is longer than features.n_fft "
                          f"({fc.n_fft})")
    duration = cfg.data.duration
    if duration is None:
        return  # clip length comes from the files: checked when the data is read
    frames = input_frames(fc, duration)
    if frames < 1:
        raise ConfigError(f"recipe key data.duration: {duration:g} s gives no feature frames at "
                          f"features.hop_length {fc.hop_length}")
    where = "the clip's"
    crop = cfg.train.train_crop_frames
    if crop is not None:
        if crop > frames:
            raise ConfigError(f"recipe key train.train_crop_frames: {crop} is longer than the clip's {frames} "
                              f"frames (data.duration {duration:g} s)")
        frames, where = crop, "the cropped input's"
    for i, aug in enumerate(cfg.augment.spec):
        if aug.name == "time_crop" and "frames" in aug.params:
            crop = int(aug.params["frames"])
            if crop > frames:
                raise ConfigError(f"recipe key augment.spec[{i}].frames: {crop} is longer than {where} {frames} "
                                  f"frames (data.duration {duration:g} s)")
            frames, where = crop, "the cropped input's"
    mixes = _mix_list(cfg.augment.mix)
    for j, (k, mix) in enumerate(mixes):
        crop = mix.params.get("crop_frames", 400 if mix.name == "mixup_crop" else None)
        if crop is not None and int(crop) > frames:
            raise ConfigError(f"recipe key augment.mix{k}.crop_frames: {crop} is larger than {where} input of "
                              f"{frames} frames (data.duration {duration:g} s)")


def _mix_list(mix: Any) -> list[tuple[str, MixBlock]]:
    if mix is None:
        return []
    if isinstance(mix, list):
        return [(f"[{i}]", m) for i, m in enumerate(mix)]
    if mix.name == "choice":
        return [(f".choices[{i}]", m) for i, m in enumerate(mix.params["choices"])]
    return [("", mix)]
