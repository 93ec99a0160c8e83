"""The recipe schema: a typed dataclass tree, checked once when a recipe is loaded.

``config.load_recipe`` merges the defaults, the recipe file (with its ``base``
chain) and every ``--set``, then calls :func:`validate_recipe` once. It checks
every key at every depth: unknown keys (with the closest known key
suggested), types, ranges, allowed values, the keys and simple types of named
blocks (models, losses, schedules, optimizers, augmentations, batch mixes)
against the registered builder's signature, and settings that cannot work
together (a crop longer than the clip). Each error is one line naming the
key, the value and what is allowed. The result is a :class:`RecipeConfig`.

To add a recipe key, add one field to its block's dataclass below: the type
comes from the annotation; ``spec(..., lo=1)`` adds a range and
``Literal[...]`` a list of allowed values.
"""
from __future__ import annotations

import difflib
import inspect
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any, Callable, Literal, Union

from asclab.errors import ConfigError
from asclab.features.config import FeatureConfig


def spec(default: Any = None, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
         factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field with an allowed range (``lo <= x <= hi``; ``lo < x`` with ``lo_open``)."""
    md = {"lo": lo, "hi": hi, "lo_open": lo_open}
    if factory is not None:
        return field(default_factory=factory, metadata=md)
    return field(default=default, metadata=md)


_UNIONS = (Union, types.UnionType)


class EmptyList:
    """The type of ``[]`` where a block may also be left empty that way."""


# ---------------------------------------------------------------- named blocks
@dataclass
class Named:
    """A block chosen by ``name`` whose other keys are its builder's arguments."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    kind: typing.ClassVar[str] = ""

    def as_mapping(self) -> dict[str, Any]:
        """``{name: ..., **params}``: the mapping the block's builder takes (``config.build_named``)."""
        return {"name": self.name, **self.params}


class ModelBlock(Named):
    kind = "model"


class LossBlock(Named):
    kind = "loss"


class OptimBlock(Named):
    kind = "optim"


class ScheduleBlock(Named):
    kind = "schedule"


class WaveAugBlock(Named):
    kind = "waveform augmentation"


class SpecAugBlock(Named):
    kind = "spectrogram augmentation"


class MixBlock(Named):
    kind = "batch mix"


class MelPowerAugBlock(Named):
    kind = "mel power augmentation"


def _builders(kind: str) -> tuple[Mapping[str, Callable], int, set[str]]:
    """(table, positional arguments the caller passes, keywords the caller passes) of a kind,
    as ``config.build_named`` and ``models.create_model`` call them."""
    if kind == "model":
        import asclab.models  # noqa: F401  (registers the families)
        from asclab.models import registry
        return registry._REGISTRY, 0, set()
    if kind == "loss":
        from asclab.losses.build import LOSSES
        return LOSSES, 0, set()
    if kind == "optim":
        from asclab.train.optim import _CLASSES
        return _CLASSES, 0, set()
    if kind == "schedule":
        from asclab.train.schedules import SCHEDULES
        return SCHEDULES, 1, {"steps_per_epoch"}
    from asclab.augment import build
    table = {"waveform augmentation": build.WAVEFORM_AUGMENTS, "spectrogram augmentation": build.SPEC_AUGMENTS,
             "batch mix": build.BATCH_MIXES, "mel power augmentation": build.MEL_POWER_AUGMENTS}[kind]
    return table, 0, set()


def _builder_params(kind: str, name: str) -> tuple[dict[str, Any], bool]:
    """Keys a named block may set -> type hint, and whether the builder takes any keyword."""
    table, n_pos, fixed = _builders(kind)
    if kind == "waveform augmentation":  # the recipe's sample rate is the caller's (augment.build)
        fixed = fixed | {"sample_rate"}
    if kind == "optim":  # build_optimizer's own keys (asclab.train.optim)
        from asclab.train.optim import _KEYS
        return {k: _OPTIM_TYPES.get(k, Any) for k in _KEYS[name] - {"name"}}, False
    fn = table[name]
    target = fn.__init__ if inspect.isclass(fn) else fn
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # an annotation this module cannot resolve: check keys only
        hints = {}
    params = list(inspect.signature(fn).parameters.values())
    out: dict[str, Any] = {}
    var_kw = False
    for i, p in enumerate(params):
        if i < n_pos or p.name in fixed or p.kind is p.VAR_POSITIONAL:
            continue
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
            continue
        out[p.name] = _simplify(hints.get(p.name, Any))
    made = hints.get("return")
    if var_kw and kind == "model" and inspect.isclass(made):  # a factory passing **kwargs to its class
        try:
            made_hints = typing.get_type_hints(made.__init__)
        except Exception:
            made_hints = {}
        var_kw = False
        for p in list(inspect.signature(made).parameters.values()):
            if p.kind is p.VAR_KEYWORD:
                var_kw = True
            elif p.kind is not p.VAR_POSITIONAL:
                out.setdefault(p.name, _simplify(made_hints.get(p.name, Any)))
    if kind == "schedule" and "warmup_epochs" in out:  # train.schedules.build_scheduler converts it
        out["warmup_steps"] = float
    return out, var_kw


_OPTIM_TYPES: dict[str, Any] = {"lr": float, "weight_decay": float, "keras_l2": float, "decay_conv_only": bool,
                                "decay_all": bool,
                                "momentum": float, "nesterov": bool, "dampening": float, "eps": float,
                                "amsgrad": bool, "betas": list[float]}


def _simplify(tp: Any) -> Any:
    """A builder's type hint reduced to what a YAML value can be (others: Any)."""
    origin = typing.get_origin(tp)
    if tp in (int, float, bool, str, type(None)):
        return tp
    if origin in _UNIONS:
        return Union[tuple(_simplify(a) for a in typing.get_args(tp))]
    if origin in (list, tuple, Sequence, typing.get_origin(typing.Iterable[int]), typing.get_origin(Sequence[int])):
        args = typing.get_args(tp)
        return list[_simplify(args[0])] if args else list
    if origin is Literal:
        return tp
    return Any


# ------------------------------------------------------------------ the blocks
@dataclass
class BalanceConfig:
    """Horvath et al. 2021 sec. 2: at most ``per_cell`` clips per (city, device, scene) cell."""

    per_cell: int = spec(MISSING, lo=1)
    keys: list[Literal["city", "device", "label"]] = field(default_factory=lambda: ["city", "device", "label"])


@dataclass
class GroupFoldsConfig:
    """Recording-wise folds (asclab.data.group_folds): ``folds`` groups of whole recordings."""

    folds: int = spec(MISSING, lo=2)
    by: str = "identifier"
    seed: int = 0


@dataclass
class ValidationConfig:
    """A validation split carved from the training records, whole recordings (asclab.data.validation)."""

    fraction: float = spec(0.1, lo=0, hi=1, lo_open=True)
    by: Literal["identifier"] = "identifier"


@dataclass
class DataConfig:
    duration: float | None = spec(None, lo=0, lo_open=True)  # clip length in seconds; None: the files' own
    split: str | None = None  # DCASE 2024 split file, e.g. split25
    test_fold: int | str | None = None
    class_map: str | dict[str, str] | None = None  # a name in asclab.data.classmaps.CLASS_MAPS, or label -> class
    balance: BalanceConfig | None = None
    major_device: str | None = "a"
    on_error: Literal["raise", "skip"] = "raise"
    group_folds: GroupFoldsConfig | None = None
    classes: list[str] | None = None  # the class list (a manifest may declare it in classes.txt)
    allow_outside: bool = False  # listed files may resolve outside the data folder (asclab.data.index)
    validation: ValidationConfig | None = None  # the only split train.keep: best and openset tuning use
    teacher_logits: str | None = None  # teacher file for loss kd; "{fold}" -> test_fold (asclab.distill.targets)
    teacher_verify: bool = False  # re-hash every training file against the teacher file's sha256
    expect_rate: int | None = spec(None, lo=1)  # Hz every listed file must have (a wrong rate is an error); None: any, resampled


@dataclass
class AugmentConfig:
    waveform: list[WaveAugBlock] = field(default_factory=list)
    spec: list[SpecAugBlock] = field(default_factory=list)
    mix: MixBlock | list[MixBlock] | None = None  # or {name: choice, choices: [...], weights: [...]}
    mel_power: list[MelPowerAugBlock] = field(default_factory=list)  # masks before the log (DCASE 2024 baseline)


@dataclass
class TrainConfig:
    epochs: int = spec(10, lo=1)
    batch_size: int = spec(32, lo=1)
    seed: int = 0
    num_workers: int = spec(0, lo=0)
    train_crop_frames: int | None = spec(None, lo=1)
    cache_features: bool = True
    cache_workers: int | None = spec(None, lo=1)
    cache_shard_size: int | None = spec(None, lo=1)
    precision: Literal["32-true", "32", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true"] = "32-true"
    channels_last: bool = False  # NHWC weights and inputs (faster on CPU with oneDNN; issue 15)
    val_every: int = spec(1, lo=1)
    logger: Literal["csv", "tensorboard"] = "csv"  # tensorboard: also a TensorBoard log beside the CSV one
    deterministic: bool = False
    drop_last: bool | None = None  # None: drop the last incomplete batch when a full one exists; false: keep it
    keep: Literal["best", "last"] = "last"  # the last epoch, or the best on data.validation (required for best)
    epochs_cap: int | None = spec(None, lo=1)
    schedule_epochs: int | None = spec(None, lo=1)
    checkpoint_every_n_steps: int | None = spec(None, lo=1)
    sync_batchnorm: bool = False
    scale_lr: Literal["none", "linear", "sqrt"] | None = None
    average_last: int | None = spec(None, lo=1)  # average the weights of the last k epochs (train/averaging.py)
    average_best: int | None = spec(None, lo=1)  # ... or of the k best epochs on data.validation
    average_bn: Literal["recompute", "average"] = "recompute"  # BN statistics of the average
    init_from: str | None = None  # an asclab model file to start from (asclab.train.init_from; new head if classes differ)


@dataclass
class OpenSetConfig:
    """McDonnell & Gao 2019 task 1c: the unknown class's probability weighted at inference."""

    unknown_label: str = "unknown"
    weight: float = spec(5.0, lo=0, lo_open=True)
    tune: bool = False  # choose the weight on data.validation (asclab.evaluate.openset.tune_weight)


@dataclass
class TTAAugmentConfig:
    waveform: list[WaveAugBlock] = field(default_factory=list)
    spec: list[SpecAugBlock] = field(default_factory=list)


@dataclass
class InferenceConfig:
    tta: int = spec(0, lo=0)
    tta_augment: TTAAugmentConfig | EmptyList | None = None  # DEFAULTS give []: none
    openset: OpenSetConfig | None = None
    window_hop: float | None = spec(None, lo=0, lo_open=True)
    whole_file: bool = False  # predict: one input per recording (imported fully convolutional models)
    precision: Literal["fp32", "fp16"] = "fp32"  # fp16 weights and inputs (DCASE 2025 packages)


@dataclass
class DeviceHeadConfig:
    """Gao & McDonnell 2020 sec. 2.4: the major-device classifier (asclab.losses.domain);
    ``auxiliary`` as the authors' released code, ``reversal`` = gradient reversal."""

    mode: Literal["auxiliary", "reversal"] = "auxiliary"
    weight: float = spec(0.1, lo=0)


@dataclass
class ArcFaceConfig:
    """Horvath et al. 2021 sec. 6: scale ``s`` and angular margin ``m``."""

    s: float = spec(30.0, lo=0, lo_open=True)
    m: float = spec(0.5, lo=0)


@dataclass
class PruneConfig:
    """QTI 2020 sec. 5.1: global L1 pruning of this share of the conv weights."""

    amount: float = spec(MISSING, lo=0, hi=1)


@dataclass
class DeviceSpecificConfig:
    """DCASE 2025: fine-tune one copy of the model per training device (asclab.train.device_specific);
    ``layers``: ``all`` or module names of the model; ``devices``: default every training device."""

    layers: Literal["all"] | list[str] = "all"
    devices: list[str] | None = None


@dataclass
class QatConfig:
    """Quantisation-aware training to int8 (asclab.compress.qat): the quantised engine whose
    default QAT qconfig is used (x86/fbgemm for x86 CPUs, qnnpack for ARM)."""

    backend: Literal["x86", "fbgemm", "qnnpack"] = "x86"


@dataclass
class StageConfig:
    """One workflow stage (asclab.train.stages); its blocks override the recipe's."""

    name: str = "stage"
    mode: Literal["classify", "arcface"] = "classify"
    arcface: ArcFaceConfig | None = None
    trainable: Literal["all"] | list[Literal["model", "body", "head", "arcface", "device_head"]] = "all"
    reset_head: bool = False
    prune: PruneConfig | None = None
    balance: BalanceConfig | None = None
    full_split: bool = False  # train on every training record, the recipe's data.balance not applied
    device_specific: DeviceSpecificConfig | None = None  # one fine-tuned model per device (DCASE 2025)
    qat: QatConfig | None = None  # int8 quantisation-aware training, the last stage (asclab.compress.qat)
    loss: dict | None = None  # partial blocks: checked against the recipe's block in _check_stage
    optim: dict | None = None
    schedule: dict | None = None
    augment: dict | None = None
    train: dict | None = None
    keep: Literal["best", "last"] | None = None


@dataclass
class WorkflowConfig:
    ensemble: list[str] | None = None  # member recipe names (softmax average)
    arcface: ArcFaceConfig | None = None
    stages: list[StageConfig] | None = None


@dataclass
class CompressConfig:
    fp16: bool = False
    limit: str | None = None  # a key of compress.complexity.CHALLENGE_LIMITS


@dataclass
class RecipeConfig:
    """A whole recipe, typed. ``features`` is the :class:`FeatureConfig` the pipeline uses."""

    name: str = "recipe"
    description: str | None = None
    paper: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelBlock = field(default_factory=lambda: ModelBlock("cp_mobile"))
    loss: LossBlock = field(default_factory=lambda: LossBlock("ce"))
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimBlock = field(default_factory=lambda: OptimBlock("adam", {"lr": 1e-3}))
    schedule: ScheduleBlock = field(default_factory=lambda: ScheduleBlock("cosine"))
    train: TrainConfig = field(default_factory=TrainConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    device_head: DeviceHeadConfig | None = None
    workflow: WorkflowConfig | None = None
    compress: CompressConfig | None = None


# Ranges of the feature settings (FeatureConfig lives in asclab.features.config).
FEATURE_RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "sample_rate": (0, None, True), "n_fft": (1, None, False), "win_length": (1, None, False),
    "hop_length": (1, None, False), "n_mels": (1, None, False), "fmin": (0, None, False),
    "fmax": (0, None, True), "power": (0, None, True), "top_db": (0, None, True), "amin": (0, None, True),
    "log_eps": (0, None, True), "delta_width": (3, None, False), "hpss_kernel": (1, None, False),
}
FEATURE_CHOICES: dict[str, tuple[Any, ...]] = {
    "channels": ("mono", "stereo"), "scale": ("db", "log", "db01", "log01"), "mel_norm": ("slaney", None),
    "pad_mode": ("constant", "reflect", "replicate", "circular"),
    "resampler": ("soxr", "sinc_hann"), "mel_fb": ("librosa", "torchaudio"),  # asclab.interop (issue 12)
}


# ------------------------------------------------------------------ the checker
def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is Any:
        return "any value"
    if tp is type(None):
        return "null"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if tp is EmptyList:
        return "an empty list"
    if origin is Literal:
        return "one of " + ", ".join("null" if a is None else str(a) for a in typing.get_args(tp))
    if origin in _UNIONS:
        return " or ".join(dict.fromkeys(_describe(a) for a in typing.get_args(tp)))
    if origin is list or tp is list:
        return "a list"
    if isinstance(tp, type) and issubclass(tp, Named):
        return f"a {tp.kind} block {{name: ...}}"
    return "a mapping"


def _is(tp: Any, cls: type) -> bool:
    return isinstance(tp, type) and issubclass(tp, cls)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, globalns=globals(), localns={**globals()})


def coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked against the type ``tp``; the typed value, or a ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in _UNIONS:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arm in args:
            if arm is type(None):
                continue
            try:
                return coerce(value, arm, key)
            except ConfigError as exc:
                errors.append(str(exc))
        nested = [e for e in errors if not e.startswith(f"recipe key {key}:")]
        if len(nested) == 1:  # only one arm got as far as the inside of the value
            raise ConfigError(nested[0])
        raise ConfigError(f"recipe key {key}: {_show(value)} is not allowed (allowed: {_describe(tp)})")
    if origin is Literal:
        if value in typing.get_args(tp) and not isinstance(value, bool):
            return value
        raise ConfigError(f"recipe key {key}: {_show(value)} is not allowed (allowed: {_describe(tp)})")
    if tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isnan(value):
                raise ConfigError(f"recipe key {key}: nan is not allowed (allowed: a number)")
            return float(value) if isinstance(value, float) else value
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is EmptyList:
        if isinstance(value, list) and not value:
            return []
    elif origin is list or tp is list:
        if isinstance(value, (list, tuple)):
            (item,) = typing.get_args(tp) or (Any,)
            return [coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    elif _is(tp, Named):
        return parse_named(tp, value, key)
    elif is_dataclass(tp):
        return parse_block(tp, value, key)
    elif tp is dict or origin is dict:
        if isinstance(value, Mapping):
            return dict(value)
    else:
        return value
    raise ConfigError(f"recipe key {key}: {_show(value)} is not {_describe(tp)}")


def _check_range(value: Any, key: str, lo: float | None, hi: float | None, lo_open: bool = False) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    low_bad = lo is not None and (value <= lo if lo_open else value < lo)
    high_bad = hi is not None and value > hi
    if low_bad or high_bad or (isinstance(value, float) and math.isinf(value)):
        parts = ([f"> {lo:g}" if lo_open else f">= {lo:g}"] if lo is not None else []) + (
            [f"<= {hi:g}"] if hi is not None else [])
        raise ConfigError(f"recipe key {key}: {_show(value)} is out of range (allowed: {' and '.join(parts) or 'finite'})")


def _unknown_key(key: str, block: str, known: Sequence[str]) -> ConfigError:
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, list(known), n=1, cutoff=0.6)
    hint = f" (did you mean {block + '.' if block else ''}{close[0]}?)" if close else ""
    listed = ", ".join(sorted(known)) or "no keys"
    return ConfigError(f"unknown recipe key {key}{hint}; {block or 'a recipe'} takes: {listed}")


def _join(parent: str, child: str) -> str:
    return f"{parent}.{child}" if parent else child


def parse_block(cls: type, value: Any, key: str, *, partial: bool = False) -> Any:
    """A mapping checked against the dataclass ``cls``: an instance (or, ``partial``,
    a dict of the keys present, for a workflow stage's partial blocks)."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"recipe key {key or 'recipe'}: {_show(value)} is not a mapping")
    hints = _hints(cls)
    names = [f.name for f in fields(cls)]
    for k in value:
        if k not in names:
            raise _unknown_key(_join(key, str(k)), key, names)
    out: dict[str, Any] = {}
    for f in fields(cls):
        sub = _join(key, f.name)
        if f.name not in value:
            if not partial and f.default is MISSING and f.default_factory is MISSING:
                raise ConfigError(f"recipe key {sub} is required ({_describe(hints[f.name])})")
            continue
        v = coerce(value[f.name], hints[f.name], sub)
        lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
        if cls is FeatureConfig and f.name in FEATURE_RANGES:
            lo, hi, lo_open = FEATURE_RANGES[f.name]
        else:
            lo_open = f.metadata.get("lo_open", False)
        _check_range(v, sub, lo, hi, lo_open)
        if cls is FeatureConfig and f.name in FEATURE_CHOICES and v not in FEATURE_CHOICES[f.name]:
            allowed = ", ".join("null" if c is None else str(c) for c in FEATURE_CHOICES[f.name])
            raise ConfigError(f"recipe key {sub}: {_show(v)} is not allowed (allowed: {allowed})")
        _write_back(value, f.name, v)
        out[f.name] = v
    return out if partial else cls(**out)


def _write_back(mapping: Any, name: str, typed: Any) -> None:
    """Store a coerced scalar (``1e-3`` read as text becomes 1e-3) in the recipe dict."""
    if isinstance(mapping, dict) and (typed is None or isinstance(typed, (bool, int, float, str))):
        mapping[name] = typed


def parse_named(cls: type[Named], value: Any, key: str, *, partial: bool = False,
                base_name: str | None = None) -> Any:
    """``{name: ..., **params}`` checked against the builder registered under ``name``."""
    kind = cls.kind
    if not isinstance(value, Mapping) or ("name" not in value and not partial):
        raise ConfigError(f"recipe key {key}: {_show(value)} is not a {kind} block with a 'name'")
    name = value.get("name", base_name)
    if kind == "batch mix" and name == "choice":
        return _parse_choice(value, key)
    table, _, _ = _builders(kind)
    if name not in table:
        close = difflib.get_close_matches(str(name), list(table), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"recipe key {_join(key, 'name')}: unknown {kind} {_show(name)}{hint}; "
                          f"allowed: {', '.join(sorted(table))}")
    params, var_kw = _builder_params(kind, name)
    out = {}
    for k, v in value.items():
        if k == "name":
            continue
        sub = _join(key, str(k))
        if k not in params:
            if var_kw:
                out[k] = v
                continue
            raise _unknown_key(sub, key, ["name", *params])
        out[k] = coerce(v, params[k], sub)
        _write_back(value, k, out[k])
    return cls(str(name), out)


def _parse_choice(value: Mapping, key: str) -> MixBlock:
    unknown = sorted(set(value) - {"name", "choices", "weights"})
    if unknown:
        raise _unknown_key(_join(key, unknown[0]), key, ["name", "choices", "weights"])
    choices = coerce(value.get("choices"), list[MixBlock], _join(key, "choices"))
    if not choices:
        raise ConfigError(f"recipe key {_join(key, 'choices')}: an empty list is not allowed (allowed: a list of "
                          "batch mix blocks)")
    weights = value.get("weights")
    if weights is not None:
        weights = coerce(weights, list[float], _join(key, "weights"))
        if len(weights) != len(choices) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ConfigError(f"recipe key {_join(key, 'weights')}: {_show(weights)} is not allowed (allowed: "
                              f"{len(choices)} non-negative numbers, not all zero)")
    return MixBlock("choice", {"choices": choices, "weights": weights})


# ---------------------------------------------------------- the whole recipe
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
    from asclab.data.classmaps import CLASS_MAPS

    if isinstance(cfg.data.class_map, str) and cfg.data.class_map not in CLASS_MAPS:
        raise ConfigError(f"recipe key data.class_map: {_show(cfg.data.class_map)} is not allowed "
                          f"(allowed: {', '.join(sorted(CLASS_MAPS))} or null)")
    if cfg.compress is not None and cfg.compress.limit is not None:
        from asclab.compress.complexity import CHALLENGE_LIMITS
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
