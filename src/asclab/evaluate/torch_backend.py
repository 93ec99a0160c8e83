"""The torch backend of the Predictor: an asclab model file's front end and network, in torch.

``load_torch(path)`` reads the model file and gives its ``InferenceSettings`` and a
``TorchBackend``: the network (float32, fp16 when the recipe says ``inference.precision: fp16``,
or a QAT int8 graph), the feature extractor, and the fast CPU network where it is exact
(``asclab.evaluate.fast_path``: batch norms folded, then onnxruntime; ``ASCLAB_INFERENCE=torch``
keeps it in torch). ``run`` takes numpy waveforms and gives numpy probabilities and logits;
test-time augmentation (Horvath 2021 sec. 4) averages the logits of augmented copies before
the softmax. A device container routes each clip to its device's model.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from asclab.augment import build_spec_augment, build_waveform_augment
from asclab.compress.qat import INFO_KEY as QAT_INFO_KEY
from asclab.compress.qat import rebuild_int8
from asclab.config import InferenceConfig, TTAAugmentConfig, parse_block
from asclab.errors import AsclabError, CheckpointError, ConfigError
from asclab.evaluate.fast_path import channels_last_if_exact, fused_for_inference, onnx_network
from asclab.evaluate.settings import InferenceSettings
from asclab.features import FeatureExtractor
from asclab.features.config import FeatureConfig
from asclab.features.extractor import feature_shape
from asclab.models import create_model
from asclab.models.device_container import DeviceContainer
from asclab.train.checkpoint import ModelFile, load_model_file


@dataclass
class TorchBackend:
    """A model file's network and front end in torch."""

    model: torch.nn.Module
    features: FeatureExtractor
    fcfg: FeatureConfig
    meta: ModelFile
    precision: str = "fp32"  # "fp16": fp16 weights and inputs (recipe inference.precision); "int8": a QAT model
    path: Path | None = None
    # (network, its conv-BN-folded copy, that copy in onnxruntime or None): asclab.evaluate.fast_path,
    # used while ``model`` is that network
    fast: tuple | None = field(default=None, repr=False, compare=False)

    @property
    def routes(self) -> bool:
        """Whether clips are routed by device id (a device container, even one without device models)."""
        return isinstance(self.model, DeviceContainer)

    @property
    def devices(self) -> tuple[str, ...]:
        """The device ids with a model of their own (a device container's), else none."""
        return tuple(self.model.devices) if isinstance(self.model, DeviceContainer) else ()

    def for_device(self, device_id: str | None) -> "TorchBackend":
        """This backend with the model of ``device_id`` (a device container's member; the general
        model for an unknown id; a single model serves every device)."""
        if not isinstance(self.model, DeviceContainer):
            return self
        return replace(self, model=self.model.model_for_device(device_id))

    def with_model(self, model: torch.nn.Module, precision: str | None = None) -> "TorchBackend":
        return replace(self, model=model, precision=self.precision if precision is None else precision)

    def fast_network(self) -> tuple | None:
        """``(model, folded copy or model, onnxruntime session or None)`` when folding the batch
        norms or running the network in onnxruntime is exact on this model's feature shape
        (``asclab.evaluate.fast_path``); None otherwise (then ``model`` runs as it is).
        ``ASCLAB_INFERENCE=torch`` keeps the network in torch."""
        if hasattr(self.model, "model_for_device"):
            return None
        example = self.check_input()
        if example is None:
            return None
        fused = fused_for_inference(self.model, example)
        base = fused if fused is not None else self.model
        use_ort = os.environ.get("ASCLAB_INFERENCE", "").strip().lower() != "torch"
        ort_net = onnx_network(base, self.model, example) if use_ort and not self.model.training else None
        return (self.model, base, ort_net) if fused is not None or ort_net is not None else None

    def check_input(self) -> torch.Tensor | None:
        """A random input (seed 0) of the network's feature shape for one clip of the model's length
        (1 s without one), on which a faster network is checked against ``model``; None if none fits."""
        seconds = self.meta.duration or 1.0
        try:
            shape = feature_shape(self.fcfg, int(round(seconds * self.fcfg.sample_rate)))
        except ValueError:
            return None
        return torch.randn((1, *shape), generator=torch.Generator().manual_seed(0))

    def device(self) -> torch.device:
        """Where the network's weights are (``DcaseModel.to("cuda")`` moves them)."""
        for t in self.model.parameters():
            return t.device
        return torch.device("cpu")

    def network(self):
        """The network ``logits`` runs: the exact onnxruntime session, else the exact folded copy,
        while they belong to ``model`` (an eval-mode fp32 model on the CPU); ``model`` itself otherwise."""
        if self.fast is not None and self.fast[0] is self.model and self.precision == "fp32" \
                and not self.model.training and self.device().type == "cpu":
            return self.fast[2] if self.fast[2] is not None else self.fast[1]
        return self.model

    @property
    def name(self) -> str:
        """What runs the network now: 'onnxruntime', 'torch (folded)' or 'torch'."""
        net = self.network()
        return "onnxruntime" if net is not self.model and not isinstance(net, torch.nn.Module) else \
            "torch (folded)" if net is not self.model else "torch"

    def __str__(self) -> str:
        return self.name

    @torch.no_grad()
    def logits(self, waves: torch.Tensor, device_ids: list[str | None] | None = None) -> torch.Tensor:
        """Logits (float32) for a batch of waveforms (B, C, N); ``device_ids`` route the clips of a
        device container (``asclab.models.device_container``) and are ignored by other models."""
        x = self.features(waves)
        if self.precision == "fp16":
            x = x.half()
        if device_ids is not None and hasattr(self.model, "model_for_device"):
            return self.model(x, device_ids).float()
        return self.network()(x).float()

    @torch.no_grad()
    def probs(self, waves: torch.Tensor, tta: int = 0, tta_augment: dict | None = None,
              seed: int = 0, device_ids: list[str | None] | None = None) -> torch.Tensor:
        """Class probabilities. With ``tta`` > 0, ``tta`` copies are augmented
        (``tta_augment = {waveform: [...], spec: [...]}``, e.g. Horvath's time-domain
        augmentations and the temporal shuffle), their logits averaged, and the
        softmax taken after averaging (Horvath 2021 sec. 4)."""
        if tta <= 0 or device_ids is not None:  # TTA for the general model only
            return torch.softmax(self.logits(waves, device_ids), dim=1)
        cfg = tta_augment or {}
        wave_aug = build_waveform_augment(cfg.get("waveform") or [], sample_rate=self.fcfg.sample_rate)
        spec_aug = build_spec_augment(cfg.get("spec") or [])
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            total = torch.zeros(len(waves), len(self.meta.classes), device=waves.device)
            for _ in range(tta):
                x = self.features(wave_aug(waves) if wave_aug is not None else waves)
                x = spec_aug(x) if spec_aug is not None else x
                total += self.network()(x.half() if self.precision == "fp16" else x).float()
        finally:
            torch.random.set_rng_state(state)
        return torch.softmax(total / tta, dim=1)

    def run(self, waves: np.ndarray, device_ids: list[str | None] | None = None, tta: int = 0,
            tta_augment: dict | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """``(probs, logits)`` (float32 numpy) for waveforms ``[B, C, N]``; logits None with TTA."""
        x = torch.from_numpy(np.ascontiguousarray(waves)).to(self.device())
        if tta <= 0 or device_ids is not None:
            logits = self.logits(x, device_ids)
            return torch.softmax(logits, dim=1).cpu().numpy(), logits.cpu().numpy()
        return self.probs(x, tta=tta, tta_augment=tta_augment).cpu().numpy(), None

    @torch.no_grad()
    def inputs(self, waves: np.ndarray) -> np.ndarray:
        """The network's input (features, float32) for waveforms ``[B, C, N]``."""
        x = torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32)).to(self.device())
        return self.features(x).cpu().numpy()

    def tta_settings(self) -> tuple[int, dict | None]:
        """The model file's test-time augmentation: ``(inference.tta, inference.tta_augment mapping)``."""
        inf = inference_settings(self.path or Path("model file"), self.meta.recipe or {})
        return inf.tta, tta_augment_mapping(inf.tta_augment)


def load_torch(path: str | Path) -> tuple[InferenceSettings, TorchBackend]:
    """The settings and the torch backend of an asclab model file."""
    mf = load_model_file(path)
    torch.set_flush_denormal(True)  # denormals slow CPU inference several-fold
    fcfg = FeatureConfig.from_dict(mf.features)
    kwargs = {k: v for k, v in mf.model.items() if k != "name"}
    model = create_model(mf.model["name"], num_classes=len(mf.classes), in_chans=fcfg.in_chans, **kwargs)
    settings = settings_of(mf, fcfg, Path(path))
    inference = _block(mf.recipe, "inference")
    features = FeatureExtractor(fcfg).eval()
    quant = (mf.extra or {}).get(QAT_INFO_KEY)
    if quant is not None:  # an int8 model (asclab.compress.qat): the graph rebuilt, its int8 state loaded
        model = rebuild_int8(model, quant, mf.state_dict)
        return settings, TorchBackend(model, features, fcfg, mf, "int8", Path(path))
    try:
        model.load_state_dict({k: v.float() if torch.is_floating_point(v) else v
                               for k, v in mf.state_dict.items()})
    except RuntimeError as exc:
        raise AsclabError(f"{path}: weights do not fit model {mf.model['name']!r} "
                          f"({str(exc).splitlines()[0][:160]})") from None
    model.eval()
    precision = str(inference.get("precision") or "fp32")
    if precision not in ("fp32", "fp16"):
        raise AsclabError(f"{path}: inference.precision must be fp32 or fp16, got {precision!r}")
    if precision == "fp16":
        model.half()
    backend = TorchBackend(model, features, fcfg, mf, precision, Path(path))
    if precision == "fp16":  # NHWC where bit-equal: fp16 convolutions without layout copies (fast_path)
        example = backend.check_input()
        if example is not None:
            channels_last_if_exact(model, example.half())
    if precision == "fp32":
        backend.fast = backend.fast_network()
    return settings, backend


def settings_of(mf: ModelFile, fcfg: FeatureConfig, path: Path | None = None, *, classes: list[str] | None = None,
                duration: float | None | str = "file") -> InferenceSettings:
    """A model file's inference settings (``classes``, ``duration``: instead of the file's)."""
    inference, data = _block(mf.recipe, "inference"), _block(mf.recipe, "data")
    return InferenceSettings(
        classes=list(mf.classes if classes is None else classes), sample_rate=fcfg.sample_rate,
        channels=fcfg.channels, duration=mf.duration if duration == "file" else duration,
        resampler=fcfg.resampler, whole_file=bool(inference.get("whole_file")), feature_hop=fcfg.hop_length,
        expect_rate=data.get("expect_rate"), source=path, openset_spec=getattr(mf, "openset", None),
        recipe=mf.recipe)


def torch_parts(model: torch.nn.Module, features: FeatureExtractor, fcfg: FeatureConfig, classes: list[str],
                duration: float | None, meta: ModelFile, precision: str = "fp32",
                fast: tuple | None = None) -> tuple[InferenceSettings, TorchBackend]:
    """Settings and backend from the fields of the torch-only Predictor this one replaced
    (``Predictor(model, features, fcfg, classes, duration, meta)`` still builds one)."""
    return (settings_of(meta, fcfg, classes=classes, duration=duration),
            TorchBackend(model, features, fcfg, meta, precision, None, fast))


def _block(recipe: dict | None, name: str) -> dict:
    """A block of the stored recipe as stored (the typed reads, ``inference_settings``, check it)."""
    block = (recipe or {}).get(name) if isinstance(recipe, dict) else None
    return block if isinstance(block, dict) else {}


def inference_settings(ckpt: Path, recipe: dict) -> InferenceConfig:
    """The ``inference`` block of a model file's recipe, typed (``asclab.config.InferenceConfig``)
    and checked as a recipe's is: a tampered one is refused in one line naming the file."""
    try:
        return parse_block(InferenceConfig, copy.deepcopy(recipe.get("inference") or {}), "inference")
    except ConfigError as exc:
        raise CheckpointError(f"{ckpt}: refused: its inference settings are not valid ({exc})") from None


def tta_augment_mapping(block: TTAAugmentConfig | list | None) -> dict | None:
    """``inference.tta_augment`` typed, as the ``{waveform: [...], spec: [...]}`` mappings the
    augmentation builders take (``TorchBackend.probs``); None when the recipe sets none."""
    if not isinstance(block, TTAAugmentConfig):
        return None
    return {"waveform": [b.as_mapping() for b in block.waveform], "spec": [b.as_mapping() for b in block.spec]}
