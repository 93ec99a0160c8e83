"""Weight averaging of the last k epochs (a uniform "model soup" along one run).

``train.average_last: k`` averages the model's weights at the end of each of the
last k training epochs and evaluates the average, as the DCASE 2025 model-soup
systems average checkpoints (here: of one run, chosen by epoch, never by the
test split). This is asclab's own callback, not Lightning's
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


def build_averaging(train_cfg: dict) -> LastEpochsAverage | None:
    k = train_cfg.get("average_last")
    if not k:
        return None
    return LastEpochsAverage(int(k), str(train_cfg.get("average_bn") or "recompute"))
