"""The recipe checker: a dataclass tree checked against a mapping, key by key.

Types come from the annotations; ``spec(..., lo=1)`` adds a range and ``Literal[...]`` a list of
allowed values. Named blocks (models, losses, schedules, optimisers, augmentations, batch
mixes) are checked against the signature of the builder their registry holds
(``asclab.registry``). Each error is one line naming the key, the value and what is allowed.
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

from asclab.augment.build import (
    BATCH_MIXES,
    MEL_POWER_AUGMENTS,
    SPEC_AUGMENTS,
    WAVEFORM_AUGMENTS,
)
from asclab.errors import ConfigError
from asclab.features.config import FeatureConfig
from asclab.losses.build import LOSSES
from asclab.models import MODELS
from asclab.optim.optimizers import COMMON_KEYS, OPTIMIZERS
from asclab.optim.schedules import SCHEDULES
from asclab.registry import Registry


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


def plain(value: Any) -> Any:
    """A typed block (or list of blocks) as the plain mapping its registry's builder takes:
    ``{name: ..., **params}``, a batch-mix ``choice`` with its choices as mappings."""
    if isinstance(value, Named):
        return {"name": value.name, **{k: plain(v) for k, v in value.params.items()}}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


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


def _builders(kind: str) -> tuple[Registry, int, set[str]]:
    """(registry, positional arguments the caller passes, keywords the caller passes) of a kind,
    as ``Registry.build`` and ``models.create_model`` call them."""
    return {"model": (MODELS, 0, set()), "loss": (LOSSES, 0, set()), "optim": (OPTIMIZERS, 1, set()),
            "schedule": (SCHEDULES, 1, {"steps_per_epoch"}),
            "waveform augmentation": (WAVEFORM_AUGMENTS, 0, {"sample_rate"}),
            "spectrogram augmentation": (SPEC_AUGMENTS, 0, set()), "batch mix": (BATCH_MIXES, 0, set()),
            "mel power augmentation": (MEL_POWER_AUGMENTS, 0, set())}[kind]


def _builder_params(kind: str, name: str) -> tuple[dict[str, Any], bool]:
    """Keys a named block may set -> type hint, and whether the builder takes any keyword."""
    table, n_pos, fixed = _builders(kind)
    fn = table.get(name)
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
    if kind == "optim":  # the keys build_optimizer handles for every optimiser (asclab.optim.optimizers)
        out = {**{k: _simplify(v) for k, v in COMMON_KEYS.items()}, **out}
    if kind == "schedule" and "warmup_epochs" in out:  # train.schedules.build_scheduler converts it
        out["warmup_steps"] = float
    return out, var_kw




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
    """The resolved annotations of a block dataclass (in its own module's names)."""
    return typing.get_type_hints(cls)


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
        num = lambda x: str(x) if isinstance(x, int) else f"{x:g}"  # noqa: E731 - 4294967295, not 4.29497e+09
        parts = ([f"> {num(lo)}" if lo_open else f">= {num(lo)}"] if lo is not None else []) + (
            [f"<= {num(hi)}"] if hi is not None else [])
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


