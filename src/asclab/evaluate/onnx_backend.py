"""The onnxruntime backend of the Predictor: an exported ONNX file (``asclab export``, waveform
input) runs the network, front end included, without torch.

Needs numpy and onnxruntime only. The file's settings (classes, rate, channel policy, clip
length, resampler, whole-file inference, open-set rule) come from its ``metadata_props``
(key ``asclab``) or, failing that, the JSON sidecar beside it; they become the same
``InferenceSettings`` an asclab model file gives, so the Predictor windows and decides alike.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from asclab.errors import AsclabError, CheckpointError, ConfigError
from asclab.evaluate.settings import InferenceSettings

METADATA_KEY = "asclab"
ONNX_FORMAT = "asclab-onnx"


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def read_onnx_metadata(path: str | Path, session=None) -> dict:
    """The asclab settings of an exported file (metadata_props, else the ``.json`` sidecar)."""
    path = Path(path)
    meta = None
    if session is not None:
        raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        meta = json.loads(raw) if raw else None
    sidecar = path.with_suffix(".json")
    if meta is None and sidecar.is_file():
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    if not isinstance(meta, dict) or meta.get("format") != ONNX_FORMAT:
        raise CheckpointError(f"{path}: not an asclab ONNX export (no '{METADATA_KEY}' metadata and no sidecar "
                              f"{sidecar.name})")
    return meta


class OnnxBackend:
    """``run(waves[B, C, N]) -> (probs, None)``: the exported graph's logits, softmax in float64.
    One network for every device (an export holds one member of a device container)."""

    name = "onnxruntime (exported file)"
    devices: tuple[str, ...] = ()
    routes = False

    def __init__(self, session, meta: dict) -> None:
        self.session, self.meta = session, meta
        self.input_name = session.get_inputs()[0].name

    def __str__(self) -> str:
        return self.name

    def for_device(self, device_id: str | None) -> "OnnxBackend":
        return self

    def run(self, waves: np.ndarray, device_ids=None, tta: int = 0, tta_augment: dict | None = None):
        if tta > 0:
            raise ConfigError("test-time augmentation needs the torch backend (an asclab model file)")
        logits = self.session.run(None, {self.input_name: np.ascontiguousarray(waves, dtype=np.float32)})[0]
        return softmax(logits), None

    def tta_settings(self) -> tuple[int, dict | None]:
        return 0, None


def load_onnx(path: str | Path, threads: int | None = None) -> tuple[InferenceSettings, OnnxBackend]:
    """The settings and the backend of an exported ONNX file (waveform input)."""
    import onnxruntime as ort  # optional heavy dependency: loaded only when an ONNX session runs

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: ONNX file not found")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise CheckpointError(f"{path}: not a loadable ONNX model ({' '.join(str(exc).split())[:160]})") from None
    meta = read_onnx_metadata(path, session)
    if meta.get("input") != "waveform":
        raise AsclabError(f"{path}: this ONNX model takes {meta.get('input')} input; the "
                          "torch-free predictor needs a waveform-input export (asclab export --input waveform)")
    features = meta.get("features") or {}
    settings = InferenceSettings(
        classes=list(meta["classes"]), sample_rate=int(meta["sample_rate"]), channels=meta["channels"],
        duration=meta.get("duration"), resampler=features.get("resampler") or "soxr",
        whole_file=bool(meta.get("whole_file", False)), feature_hop=features.get("hop_length"),
        source=path, openset_spec=meta.get("openset"), openset_key=f"{path} openset")
    settings.openset  # noqa: B018 - a malformed exported rule is refused at load, as before
    return settings, OnnxBackend(session, meta)
