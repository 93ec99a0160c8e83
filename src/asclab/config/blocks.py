"""The recipe's blocks as dataclasses: the one place recipe defaults and ranges live.

To add a recipe key, add one field to its block's dataclass: the type comes from the
annotation; ``spec(..., lo=1)`` adds a range and ``Literal[...]`` a list of allowed values
(checked by ``asclab.config.checker``). ``RecipeConfig`` composes them; ``features`` is the
:class:`asclab.features.config.FeatureConfig` the pipeline uses.
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field
from typing import Literal

from asclab.config.checker import (
    EmptyList,
    LossBlock,
    MelPowerAugBlock,
    MixBlock,
    ModelBlock,
    OptimBlock,
    ScheduleBlock,
    SpecAugBlock,
    WaveAugBlock,
    spec,
)
from asclab.features.config import FeatureConfig

MAX_SEED = 2**32 - 1  # numpy's and Lightning's seeds are 32-bit unsigned integers


@dataclass
class BalanceConfig:
    """Horvath et al. 2021 sec. 2: at most ``per_cell`` clips per (city, device, scene) cell."""

    per_cell: int = spec(MISSING, lo=1)
    keys: list[Literal["city", "device", "label"]] = field(default_factory=lambda: ["city", "device", "label"])


@dataclass
class GroupFoldsConfig:
    """Recording-wise folds (asclab.data.group_folds): ``folds`` groups of whole recordings."""

    folds: int = spec(MISSING, lo=2, hi=1000)
    by: str = "identifier"
    seed: int = spec(0, lo=0, hi=MAX_SEED)


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
    teacher_logits: str | None = None  # teacher file for loss kd; "{fold}" -> test_fold (asclab.data.teacher_targets)
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
    epochs: int = spec(10, lo=1, hi=100_000)
    batch_size: int = spec(32, lo=1, hi=1 << 16)
    seed: int = spec(0, lo=0, hi=MAX_SEED)  # numpy's seeds are 32-bit
    num_workers: int = spec(0, lo=0, hi=256)
    train_crop_frames: int | None = spec(None, lo=1)
    cache_features: bool = True
    cache_workers: int | None = spec(None, lo=1, hi=256)
    cache_shard_size: int | None = spec(None, lo=1, hi=1 << 20)
    # recipes that augment audio read waveforms: keep this many MiB of them decoded across epochs (0: decode
    # every epoch); per loader process
    waveform_cache_mb: int = spec(2048, lo=0, hi=1 << 24)
    # auto: bf16 autocast where measured faster at the same accuracy on a CPU with native bf16 (train.precision)
    precision: Literal["auto", "32-true", "32", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true"] = "auto"
    channels_last: bool | Literal["auto"] = "auto"  # NHWC weights and inputs; auto: where measured faster (models.layout)
    val_every: int = spec(1, lo=1, hi=100_000)
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
    """Quantisation-aware training to int8 (asclab.compress.qat, torchao PT2E): the target whose
    quantiser is used (x86/fbgemm: X86 inductor quantiser; qnnpack: XNNPACK quantiser, ARM)."""

    backend: Literal["x86", "fbgemm", "qnnpack"] = "x86"


@dataclass
class StageConfig:
    """One workflow stage; its blocks override the recipe's. Every other field switches on the
    stage part registered under its name (``asclab.train.stages``: one file per part); ``parts``
    gives the settings of a registered part that has no field here, by its name."""

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
    parts: dict | None = None  # {part name: its settings}, checked by the part (asclab.train.stages.plan)


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

