"""Weight averaging of the last k epochs, or of the best k on a validation split (a
uniform "model soup" along one run).

``train.average_last: k`` averages the model's weights at the end of each of the
last k training epochs and evaluates the average, as the DCASE 2025 model-soup
systems average checkpoints (here: of one run). ``train.average_best: k`` averages
the k epochs with the best validation macro accuracy instead; it needs
``data.validation`` (a split carved from the training data), so the epochs are
never chosen on the test split. These are asclab's own callbacks, not Lightning's
StochasticWeightAveraging: that one also replaces the learning-rate schedule with
an SWA schedule, which would change the recipe's training.

Batch-norm statistics of an average are not the average's own. With
``train.average_bn: recompute`` (default) they are re-estimated after averaging
by one pass over the training data without augmentation (cumulative averages, as
``torch.optim.swa_utils.update_bn``); ``average`` averages the running statistics
of the k epochs instead.
"""
from __future__ import annotations

import lightning as L
import torch
import torch.nn as nn

from asclab.errors import ConfigError

BN_MODES = ("recompute", "average")


class LastEpochsAverage(L.Callback):
    """Running mean of ``module.model``'s state over the last ``k`` epochs of the stage."""

    def __init__(self, k: int, bn: str = "recompute") -> None:
        if int(k) < 1:
            raise ConfigError(f"train.average_last must be a positive number of epochs, got {k!r}")
        if bn not in BN_MODES:
            raise ConfigError(f"train.average_bn must be one of {', '.join(BN_MODES)}, got {bn!r}")
        self.k, self.bn = int(k), bn
        self.count = 0
        self.sum: dict[str, torch.Tensor] = {}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch < trainer.max_epochs - self.k:
            return
        state = pl_module.model.state_dict()
        for name, value in state.items():
            if torch.is_floating_point(value):
                v = value.detach().double().cpu()
                self.sum[name] = self.sum[name] + v if name in self.sum else v.clone()
        self.count += 1

    def state_dict(self) -> dict:  # saved in checkpoints, so a resumed run keeps the partial sum
        return {"count": self.count, "sum": self.sum}

    def load_state_dict(self, state: dict) -> None:
        self.count, self.sum = int(state.get("count", 0)), dict(state.get("sum") or {})

    def apply(self, pl_module: L.LightningModule, loader) -> int:
        """Load the average into ``pl_module.model`` (and fix its BN statistics); returns the epochs averaged."""
        if not self.count:
            return 0
        model = pl_module.model
        state = model.state_dict()
        for name, total in self.sum.items():
            state[name] = (total / self.count).to(state[name].dtype)
        model.load_state_dict(state)
        if self.bn == "recompute":
            recompute_bn(pl_module, loader)
        return self.count


@torch.no_grad()
def recompute_bn(pl_module: L.LightningModule, loader) -> None:
    """Re-estimate every BatchNorm's running mean/var over ``loader`` (no augmentation)."""
    bns = [m for m in pl_module.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    was_training = pl_module.model.training
    momenta = [m.momentum for m in bns]
    pl_module.model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the pass
        m.train()
    for batch in loader:
        batch = {k: v.to(pl_module.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        pl_module.model(pl_module.inputs(batch, train=False))
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    pl_module.model.train(was_training)


class BestEpochsAverage(LastEpochsAverage):
    """Mean of ``module.model``'s state at the ``k`` epochs of best ``val_macro_acc`` (ties: the later)."""

    def __init__(self, k: int, bn: str = "recompute") -> None:
        if int(k) < 1:
            raise ConfigError(f"train.average_best must be a positive number of epochs, got {k!r}")
        super().__init__(k, bn)
        self.kept: list[tuple[float, int, dict[str, torch.Tensor]]] = []  # (score, epoch, state)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pass

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        score = trainer.callback_metrics.get("val_macro_acc")
        if score is None or trainer.sanity_checking:
            return
        state = {n: v.detach().double().cpu().clone() for n, v in pl_module.model.state_dict().items()
                 if torch.is_floating_point(v)}
        self.kept.append((float(score), int(trainer.current_epoch), state))
        self.kept = sorted(self.kept, key=lambda e: (e[0], e[1]), reverse=True)[:self.k]
        self.count = len(self.kept)
        self.sum = {n: sum(e[2][n] for e in self.kept) for n in state}

    def state_dict(self) -> dict:
        return {"kept": self.kept}

    def load_state_dict(self, state: dict) -> None:
        self.kept = list(state.get("kept") or [])
        self.count = len(self.kept)
        self.sum = {n: sum(e[2][n] for e in self.kept) for n in (self.kept[0][2] if self.kept else {})}

    @property
    def epochs(self) -> list[int]:
        return sorted(e[1] for e in self.kept)


def build_averaging(train_cfg: dict, has_validation: bool = False) -> LastEpochsAverage | None:
    """The recipe's weight averaging (``train.average_last`` or ``train.average_best``), or None."""
    last, best = train_cfg.get("average_last"), train_cfg.get("average_best")
    bn = str(train_cfg.get("average_bn") or "recompute")
    if last and best:
        raise ConfigError("train.average_last and train.average_best exclude each other; choose one")
    if best:
        if not has_validation:
            raise ConfigError("train.average_best needs data.validation (a split carved from the training data): "
                              "the best epochs are never chosen on the test split; use train.average_last otherwise")
        return BestEpochsAverage(int(best), bn)
    return LastEpochsAverage(int(last), bn) if last else None
