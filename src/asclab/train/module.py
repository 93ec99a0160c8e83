"""The Lightning module: features (if not cached), augmentation, model, loss.

One module serves every recipe. A batch holds either cached features ``x`` or
raw waveforms ``wave`` (when the recipe augments waveforms, Horvath 2021
sec. 3, features are computed on the fly). Targets are soft one-hot vectors so
mixup, FreqMix and CutMix mix them; when the recipe has a device head (Gao &
McDonnell 2020 sec. 2.4) the body runs once per step, its output feeds both
heads, and the device target is each example's own device, never mixed (as
the authors' released code). A loss that needs more than the labels (knowledge
distillation: the teacher's logits) declares the batch fields it takes
(``asclab.losses.build``); the module passes them, mixed with the labels.
"""
from __future__ import annotations

import lightning as L
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from asclab.augment import build_batch_mix, build_mel_power_augment, build_spec_augment, build_waveform_augment
from asclab.augment.mixing import one_hot
from asclab.config import ArcFaceConfig, RecipeConfig, as_config, plain
from asclab.errors import ConfigError, TrainingDiverged
from asclab.features import FeatureExtractor
from asclab.losses import ArcFaceHead, DeviceHead, build_loss, loss_needs
from asclab.metrics import compute_metrics
from asclab.models import create_model
from asclab.models.body import body_and_logits, has_feature_map_top
from asclab.models.layout import resolve_channels_last
from asclab.optim.optimizers import build_optimizer
from asclab.optim.schedules import build_scheduler
from asclab.train.distributed import gather_arrays
from asclab.train.init_from import init_from


class ASCModule(L.LightningModule):
    def __init__(self, recipe: dict, classes: list[str], devices: list[str] | None = None,
                 class_counts: list[int] | None = None, steps_per_epoch: int = 1,
                 config: RecipeConfig | None = None):
        """``config``: the recipe's typed configuration (``asclab.config.load_config``), parsed
        from ``recipe`` when not given; the checkpoint's hyperparameters keep the dict only."""
        super().__init__()
        self.save_hyperparameters(ignore=["config"])
        cfg = config if config is not None else as_config(recipe)
        self.recipe = recipe
        self.classes = list(classes)
        self.devices = list(devices or [])
        self.fcfg = cfg.features
        self.features = FeatureExtractor(self.fcfg)
        self.model = create_model(cfg.model.name, num_classes=len(classes),
                                  in_chans=self.fcfg.in_chans, **plain(cfg.model.params))
        if cfg.train.init_from:  # fine-tuning / transfer (asclab.train.init_from)
            init_from(self.model, cfg.train.init_from, self.classes, cfg.features)
        self.class_counts = class_counts
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.mode = "classify"
        self.arcface: nn.Module | None = None
        dh = cfg.device_head
        self.device_head = DeviceHead(self.model.embed_dim, mode=dh.mode, weight=float(dh.weight),
                                      spatial=has_feature_map_top(self.model)) if dh is not None else None
        self.lr_scale = 1.0  # train.scale_lr under DDP (asclab.train.phase)
        self.configure_training(cfg)
        self._val_outputs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.frozen_modules: list[nn.Module] = []

    def on_train_epoch_start(self) -> None:
        # Frozen parts run in inference mode, BN statistics included (Keras' frozen layers).
        for m in self.frozen_modules:
            m.eval()

    # ----- configuration that a workflow stage may change -------------------------------
    def configure_training(self, cfg: RecipeConfig) -> None:
        """(Re)build loss and augmentation from a (stage's) typed recipe."""
        self.stage_config = cfg
        self.loss_fn = build_loss(plain(cfg.loss), class_counts=self.class_counts)
        aug = cfg.augment
        self.wave_aug = build_waveform_augment(plain(aug.waveform), sample_rate=self.fcfg.sample_rate)
        self.spec_aug = build_spec_augment(plain(aug.spec))
        # Masks of the mel power before the log (DCASE 2024 baseline); None when the recipe has none.
        self.mel_power_aug = build_mel_power_augment(plain(aug.mel_power)) or None
        self.mix = build_batch_mix(plain(aug.mix))
        # train.channels_last (issues 15, 23): NHWC weights and inputs, oneDNN's fast CPU layout; by default
        # for the model families where the committed benchmark measured it faster (asclab.models.layout)
        self.channels_last = resolve_channels_last(cfg.train.channels_last, plain(cfg.model))

    def on_fit_start(self) -> None:
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model.to(memory_format=layout)  # 4-D weights only; a state dict loads either way

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.ndim == 4 else x

    def set_mode(self, mode: str, arcface: ArcFaceConfig | None = None) -> None:
        """'classify' (the model's own head) or 'arcface' (Horvath 2021 sec. 6; the head is built
        with ``arcface``'s s and m the first time, asclab.train.stages.arcface)."""
        if mode == "arcface" and self.arcface is None:
            arcface = arcface or ArcFaceConfig()
            self.arcface = ArcFaceHead(self.model.embed_dim, len(self.classes), s=float(arcface.s), m=float(arcface.m))
        self.mode = mode

    # ----- forward -------------------------------------------------------------------
    def extract(self, wave: torch.Tensor, train: bool = False) -> torch.Tensor:
        hook = self.mel_power_aug if train else None
        with torch.no_grad():
            return self.features(wave, mel_power_hook=hook)

    def inputs(self, batch: dict, train: bool) -> torch.Tensor:
        if "x" in batch:
            return self._layout(batch["x"])
        wave = batch["wave"]
        if train and self.wave_aug is not None:
            wave = self.wave_aug(wave, devices=self.device_names(batch))
        return self._layout(self.extract(wave, train))

    def device_names(self, batch: dict) -> list[str | None] | None:
        """The batch's recording device names (None for an unknown device), for device-aware augmentation."""
        if "device" not in batch:
            return None
        return [self.devices[i] if 0 <= i < len(self.devices) else None for i in batch["device"].tolist()]

    def logits(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.mode == "arcface":
            return self.arcface(self.model.embed(x), labels)
        return self.model(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)

    # ----- steps ---------------------------------------------------------------------
    def extra_targets(self, batch: dict) -> list[torch.Tensor]:
        """The targets the loss declares beyond the labels (its ``needs``: batch fields, e.g. the
        teacher logits of loss ``kd``), Tensor[B, K] each, as the loss derives them; [] for most."""
        needs = loss_needs(self.loss_fn)
        for name in needs:
            if name not in batch:
                raise ConfigError(self.loss_fn.missing(name))
        return list(self.loss_fn.extra_targets(*(batch[n].to(self.device) for n in needs))) if needs else []

    def class_loss(self, logits: torch.Tensor, y: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        logits = logits.float()  # bf16 logits under train.precision bf16-mixed: the loss in float32
        return self.loss_fn(logits, y, *extra)

    def training_step(self, batch: dict, batch_idx: int):
        x = self.inputs(batch, train=True)
        k = len(self.classes)
        y = one_hot(batch["label"], k)
        extra = self.extra_targets(batch)
        if extra:  # e.g. distillation: the teacher's targets are mixed with the labels' weights
            y = torch.cat([y, *extra], dim=1)
        if self.spec_aug is not None:
            x = self.spec_aug(x)
        if self.mix is not None:
            x, y = self.mix(x, y)
        y_cls = y[:, :k]
        if extra:
            extra = list(torch.split(y[:, k:], [e.shape[1] for e in extra], dim=1))
        if self.mode == "arcface":
            # ArcFace needs a hard label for its margin inside the head; mixing is off in those stages.
            loss = F.cross_entropy(self.logits(x, y_cls.argmax(1)), y_cls)
        elif self.device_head is not None:
            loss, dev_loss = self.device_head_loss(x, y_cls, batch, *extra)
            self.log("train_device_loss", dev_loss, on_step=False, on_epoch=True)
        else:
            loss = self.class_loss(self.model(x), y_cls, *extra)
        if not bool(torch.isfinite(loss.detach())):  # stop now, not after the last epoch in evaluation
            raise TrainingDiverged(
                f"training loss is {float(loss):g} at step {self.global_step + 1} (epoch {self.current_epoch + 1}); "
                "likely causes: a learning rate too high for this recipe, or NaN/inf inputs, teacher logits or "
                "starting weights; stopped, the last good checkpoint (checkpoints/last.ckpt) is kept")
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(x))
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False, prog_bar=False)
        return loss

    def device_head_loss(self, x: torch.Tensor, y_cls: torch.Tensor, batch: dict,
                         *extra: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(total, device loss) for Gao & McDonnell 2020 sec. 2.4: one body pass feeds the scene
        output and the device head, which takes the batch fields it declares (the device index,
        0 = major, not mixed)."""
        body, logits = body_and_logits(self.model, x)
        dev_loss = self.device_head.loss(self.device_head(body), *(batch[n] for n in self.device_head.needs))
        return self.device_head.total(self.class_loss(logits, y_cls, *extra), dev_loss), dev_loss

    def validation_step(self, batch: dict, batch_idx: int):
        x = self.inputs(batch, train=False)
        logits = self.logits(x)
        loss = F.cross_entropy(logits, batch["label"])
        self.log("val_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(x), sync_dist=True)
        self._val_outputs.append((torch.softmax(logits.float(), 1).cpu().numpy(),
                                  batch["label"].cpu().numpy(), batch["device"].cpu().numpy()))

    def on_validation_epoch_end(self):
        outputs, self._val_outputs = self._val_outputs, []
        probs = np.concatenate([o[0] for o in outputs]) if outputs else np.zeros((0, len(self.classes)), np.float32)
        labels = np.concatenate([o[1] for o in outputs]) if outputs else np.zeros(0, np.int64)
        probs, labels = gather_arrays(probs, labels)  # under DDP: every process's share, so metrics are global
        if not len(labels):
            return
        m = compute_metrics(probs, labels, self.classes)
        acc = torch.tensor(m.accuracy, device=self.device)
        macro = torch.tensor(m.macro_accuracy, device=self.device)
        self.log("val_acc", acc, prog_bar=False, sync_dist=True)
        self.log("val_macro_acc", macro, prog_bar=True, sync_dist=True)

    # ----- optimisation ---------------------------------------------------------------
    def configure_optimizers(self):
        cfg = self.stage_config
        optim = plain(cfg.optim)
        if self.lr_scale != 1.0 and "lr" in optim:
            optim["lr"] = float(optim["lr"]) * self.lr_scale
        opt = build_optimizer(self, optim)
        epochs = cfg.train.epochs
        try:
            steps = max(1, int(self.trainer.estimated_stepping_batches) // max(1, epochs))
        except Exception:  # no trainer attached (unit tests)
            steps = self.steps_per_epoch
        # A capped (shortened) run walks the recipe's whole schedule in fewer epochs.
        sched_epochs = cfg.train.schedule_epochs or epochs
        sched = build_scheduler(opt, plain(cfg.schedule), epochs=sched_epochs,
                                steps_per_epoch=steps * epochs / sched_epochs, data_steps_per_epoch=steps)
        if sched is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
