"""The stage interface: a workflow stage is the parts its keys switch on.

A recipe's ``workflow.stages`` is a list of :class:`asclab.config.StageConfig`. Besides its
name, ``keep`` and the recipe blocks it overrides (``loss``, ``optim``, ``schedule``,
``augment``, ``train``: merged by :func:`asclab.train.stages.plan.stage_recipe`), every key of a
stage is implemented by one :class:`StagePart`, registered in :data:`STAGE_PARTS` under that
key (``@STAGE_PARTS.register("prune")``), one file per part in this folder. A part without a
StageConfig field of its own takes its settings from the stage's ``parts: {name: {...}}``
(typed by the part's ``config`` dataclass).

``fit()`` runs each stage as one phase (a stage may expand into several, e.g. one per device):

1. ``begin`` then ``prepare`` of the stage's active parts, in ``order``: change the model, its
   loss, trainable parts, mode;
2. when the stage was finished before an interruption (resume): its weights, then ``restore``
   (what ``finish`` did that the weights do not carry: pruning folded in, int8 conversion, the
   device's copy kept); otherwise ``datasets`` (the records the stage reads), one Lightning
   phase (``asclab.train.phase``), then ``finish``;
3. after the last phase, ``end`` of every part (e.g. the device container).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable, ClassVar

import torch.nn as nn
from torch.utils.data import Dataset

from asclab.compress.complexity import default_input_shape
from asclab.config import RecipeConfig, StageConfig
from asclab.data.records import Record
from asclab.registry import Registry

# StageConfig fields the phase itself reads: every other field belongs to a registered part
PHASE_KEYS = ("name", "loss", "optim", "schedule", "augment", "train", "keep", "parts")
STAGE_FIELDS = tuple(f.name for f in fields(StageConfig))


@dataclass
class Phase:
    """One trained phase: a workflow stage, typed, and that stage as the recipe writes it."""

    stage: StageConfig
    raw: dict  # the recipe's mapping: its partial blocks are merged on dicts (plan.stage_recipe)
    index: int  # the stage's place in workflow.stages (0-based), for messages
    name: str | None = None  # the stage's name as written (None when the recipe gives none)
    parts: dict[str, Any] = field(default_factory=dict)  # typed settings of its ``parts:`` entries
    extra: dict[str, Any] = field(default_factory=dict)  # what an expansion adds, e.g. {"device": "a"}

    def setting(self, key: str) -> Any:
        """The stage's setting for a part key: its StageConfig field, else its ``parts:`` entry."""
        return getattr(self.stage, key) if key in STAGE_FIELDS else self.parts.get(key)


@dataclass
class RunContext:
    """What a run's parts share across its phases."""

    recipe: dict
    config: RecipeConfig
    train_records: list[Record] = field(default_factory=list)  # as given to fit()
    records: list[Record] = field(default_factory=list)  # the run's training records (data.balance applied)
    val_records: list[Record] = field(default_factory=list)
    dataset: Callable[[list[Record], RecipeConfig], Dataset] | None = None  # a training set of other records
    logs: dict[str, list[dict]] = field(default_factory=dict)  # e.g. "pruning": FitResult.pruning

    @property
    def seed(self) -> int:
        return self.config.train.seed

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One second of the recipe's features, the input the complexity reports count with."""
        return default_input_shape(self.config.features, 1.0)


@dataclass
class StageContext:
    """One phase as its parts see it: its stage and its merged recipe, dict and typed."""

    run: RunContext
    phase: Phase
    index: int  # the phase's place among the run's phases
    recipe: dict  # the stage's merged recipe (its blocks over the run's, epochs capped)
    config: RecipeConfig  # the same, typed

    @property
    def stage(self) -> StageConfig:
        return self.phase.stage

    @property
    def seed(self) -> int:
        """The phase's seed: the run's seed plus its place (loaders, subsampling, resume)."""
        return self.run.seed + self.index


class StagePart:
    """One thing a workflow stage can do, switched on by the stage key ``key``.

    Every hook does nothing by default; a part overrides those it needs. ``order`` places its
    ``begin``/``prepare``/``datasets``/``finish``/``restore`` among the stage's other parts (lower
    first). ``config``: the dataclass its settings are checked against when they come from a
    stage's ``parts:`` entry. ``last``: why a stage using the part must be the workflow's last
    (None: any stage)."""

    key: ClassVar[str] = ""
    order: ClassVar[int] = 50
    config: ClassVar[type | None] = None
    last: ClassVar[str | None] = None

    def active(self, phase: Phase) -> bool:
        """Whether the part takes part in ``phase``: by default, when its key is set."""
        return phase.setting(self.key) not in (None, False)

    def expand(self, phases: list[Phase], run: RunContext) -> list[Phase]:
        """The run's phases, once before training (e.g. one phase per device); checks the plan."""
        return phases

    def begin(self, module: nn.Module, ctx: StageContext) -> None:
        """Before any part of the stage changes the module (e.g. the complexity before pruning)."""

    def prepare(self, module: nn.Module, ctx: StageContext) -> None:
        """Before the phase: change the model, its loss, mode or trainable parts."""

    def datasets(self, train: Dataset, val: Dataset | None, ctx: StageContext) -> tuple[Dataset, Dataset | None]:
        """The training and validation sets the phase reads (only when it trains)."""
        return train, val

    def finish(self, module: nn.Module, ctx: StageContext) -> None:
        """After the phase trained (e.g. fold the pruning masks in, convert to int8)."""

    def restore(self, module: nn.Module, ctx: StageContext) -> None:
        """For a stage finished before a resume, after its weights are loaded: redo what
        ``finish`` did that the weights do not carry. By default nothing."""

    def end(self, module: nn.Module, run: RunContext) -> None:
        """After the run's last phase (e.g. the model becomes a device container)."""


STAGE_PARTS: Registry[type[StagePart]] = Registry("stage part")


def stage_parts() -> list[StagePart]:
    """One fresh instance of each registered part (a run's parts keep their own state), in ``order``."""
    classes = list(dict.fromkeys(STAGE_PARTS.get(name) for name in STAGE_PARTS))
    return sorted((cls() for cls in classes), key=lambda p: (p.order, p.key))
