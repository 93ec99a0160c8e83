"""One registry pattern for every swappable part (timm's ``register_model`` / ``create_model``).

Models, losses, augmentations, batch mixes, optimisers, schedules, training stages and
export backends each keep one :class:`Registry`. A part registers itself where it is
defined (``@LOSSES.register("focal")``); the recipe schema asks a registry for a builder's
signature (:meth:`Registry.params`) instead of reaching into a private table, and
:meth:`Registry.build` turns a recipe block ``{name: ..., **kwargs}`` into the object.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Callable, Generic, Iterator, TypeVar

from asclab.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named builders of one kind (``kind`` names it in errors: "loss", "model" ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, *names: str) -> Callable[[T], T]:
        """Decorator: register the builder under ``names`` (default: its ``__name__``)."""

        def deco(obj: T) -> T:
            for name in names or (getattr(obj, "__name__"),):
                self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        if name in self._items and self._items[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = obj

    def get(self, name: str) -> T:
        if name not in self._items:
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def params(self, name: str, *, skip: int = 0, fixed: frozenset[str] = frozenset()) -> list[inspect.Parameter]:
        """The builder's parameters a recipe may set: all but the first ``skip`` positional ones
        and the ``fixed`` keywords the caller passes itself."""
        params = list(inspect.signature(self.get(name)).parameters.values())
        return [p for i, p in enumerate(params) if i >= skip and p.name not in fixed and p.name != "self"]

    def build(self, cfg: Mapping[str, Any], *args: Any, defaults: Mapping[str, Any] | None = None,
              **fixed: Any) -> Any:
        """``builder(*args, **fixed, **rest_of_cfg)`` for ``cfg = {name: ..., **rest}``. Unknown
        names and keys are a ConfigError listing what is known; ``defaults`` fill parameters the
        builder takes and the recipe leaves out; ``args``/``fixed`` are the caller's."""
        if not isinstance(cfg, Mapping) or "name" not in cfg:
            raise ConfigError(f"each {self.kind} entry must be a mapping with a 'name', got {cfg!r}")
        kwargs = dict(cfg)
        name = kwargs.pop("name")
        builder = self.get(name)
        params = list(inspect.signature(builder).parameters)
        caller = set(params[:len(args)]) | set(fixed) | {"self", "args", "kwargs"}
        known = [p for p in params if p not in caller]
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            raise ConfigError(f"{self.kind} {name!r}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
        for key, value in (defaults or {}).items():
            if key in known:
                kwargs.setdefault(key, value)
        try:
            return builder(*args, **fixed, **kwargs)  # type: ignore[operator]
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{self.kind} {name!r}: {e}") from None
