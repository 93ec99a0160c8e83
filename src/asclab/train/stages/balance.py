"""Stage keys ``balance: {per_cell: 7}`` and ``full_split: true``: the records a stage trains on.

Horvath et al. 2021 sec. 2 trains on balanced data: at most ``per_cell`` clips per (city,
device, scene) cell, drawn with the phase's seed; ``balance`` in a stage does that for the stage
alone. Sec. 6 step 2 trains the ArcFace head "using the full training split": ``full_split``
trains the stage on every training record, without the recipe's ``data.balance``. A stage
without either trains on the run's records.
"""
from __future__ import annotations

from torch.utils.data import Dataset

from asclab.config import deep_merge
from asclab.data.records import Record
from asclab.errors import ConfigError
from asclab.train.data import select_training_records
from asclab.train.stages.base import STAGE_PARTS, Phase, StageContext, StagePart


def stage_records(ctx: StageContext) -> list[Record] | None:
    """The records the stage trains on, or None for the run's own (``data.balance`` applied).

    ``full_split``: all training records (None when the recipe does not balance, so the run's
    data set is reused); ``balance``: a balanced subsample of them drawn with the phase's seed."""
    stage, train_records = ctx.stage, ctx.run.train_records
    if stage.full_split and stage.balance:
        raise ConfigError(f"stage {ctx.phase.name!r}: full_split and balance exclude each other")
    if stage.full_split:
        return list(train_records) if ctx.config.data.balance else None
    if stage.balance:  # merged on the mappings: the stage's per_cell over the recipe's keys
        recipe = deep_merge(ctx.recipe, {"data": {"balance": ctx.phase.raw["balance"]}})
        return select_training_records(list(train_records), recipe, ctx.seed)
    return None


@STAGE_PARTS.register("balance", "full_split")
class StageRecords(StagePart):
    key = "balance"
    order = 50  # its own set first; a device's stage restricts it afterwards

    def active(self, phase: Phase) -> bool:
        return bool(phase.stage.balance or phase.stage.full_split)

    def datasets(self, train: Dataset, val: Dataset | None, ctx: StageContext) -> tuple[Dataset, Dataset | None]:
        records = stage_records(ctx)
        return (train if records is None else ctx.run.dataset(records, ctx.config)), val
