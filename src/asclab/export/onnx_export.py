"""Export an asclab model file to ONNX, verify it with onnxruntime, and make fp16/int8 variants.

Input kinds:

* ``"waveform"``: the graph takes audio ``[B, C, N]`` at the model's sample
  rate (C = 1 for a mono feature config, 2 for stereo) and computes the
  features itself (``ExportableFeatures``: ONNX ``STFT``, opset 18);
* ``"features"``: the graph takes the network input ``[B, in_chans, n_mels, T]``.

Batch and time axes are dynamic. Front end and network are exported
separately with the TorchScript exporter (which, unlike ``torch.export``,
takes every asclab model with a symbolic time axis, and keeps the network's
channel sizes known) and, for waveform input, joined with
``onnx.compose.merge_models``.

Every export verifies itself: onnxruntime runs the file on random inputs of
several batch sizes and lengths and the export fails (AsclabError) if any
output differs from the torch model (the asclab feature extractor and
network) by more than ``tolerance`` (1e-4). What the file needs to be used
(input kind, class names, feature config, clip duration) is written into the
ONNX ``metadata_props`` (key ``asclab``) and a JSON sidecar beside it.

Variants (written next to the fp32 file, which stays the reference):

* fp16 (``*.fp16.onnx``): every float32 initializer of the network stored as
  float16 and cast back to float32 at load, so the graph still computes in
  float32 and the only change is the rounding of the weights (the storage
  Gao & Lee 2024 and Horvath 2021 deploy). Done here by rewriting the
  initializers, no extra package.
* int8 (``*.int8.onnx``): ``onnxruntime.quantization.quantize_dynamic`` on
  the network graph (8-bit weights of Conv/MatMul/Gemm, activations quantised
  at run time); the front end stays float32.
* static int8 (``*.int8_static.onnx``): ``quantize_static`` in the QDQ format
  (per-channel int8 weights, uint8 activations whose ranges are calibrated,
  min-max, on the features of up to 32 training clips: ``calib_data``, else the
  model file's training data folder); the front end stays float32.

With ``check_clips`` (a folder of real audio, e.g. ``../shared/data/tau-samples``)
every file also runs on those clips and reports its largest difference from the
torch model and its top-1 agreement with it (``real_clips``); the fp32 file
must agree on every clip.

Each variant reports its file size, its largest output difference from the
fp32 file and, given validation data, the accuracy change.
"""
from __future__ import annotations

import copy
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper

from asclab.data import open_dataset
from asclab.errors import AsclabError, ConfigError
from asclab.evaluate.inference import Predictor
from asclab.evaluate.windowing import classify_files
from asclab.export.backend import EXPORT_BACKENDS, ExportRequest
from asclab.export.clips import clip_paths, model_seconds
from asclab.export.frontend import ExportableFeatures
from asclab.export.onnx_precision import (
    _calibration_features,
    _fp16_weights,
    _int8_dynamic,
    _int8_static,
    _quiet,
)
from asclab.export.onnx_predictor import METADATA_KEY, ONNX_FORMAT, softmax
from asclab.io import atomic_path, write_json
from asclab.train.checkpoint import resolve_checkpoint

OPSET = 18
TOLERANCE = 1e-4
INPUT_KINDS = ("waveform", "features")


@dataclass
class ExportedFile:
    path: Path
    sidecar: Path
    precision: str
    size_bytes: int
    max_abs_diff: float | None  # fp32: vs torch; variants: vs the fp32 ONNX file
    top1_agreement: float | None = None  # variants: share of random inputs with the fp32 file's argmax
    accuracy: float | None = None
    real_clips: dict | None = None  # vs torch on real clips: max_abs_diff, top1_agreement, n_clips

    def to_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


def export_onnx(ckpt: str | Path, out: str | Path | None = None, *, input_kind: str = "waveform",
                fp16: bool = False, int8: bool = False, val_data: str | Path | None = None,
                tolerance: float = TOLERANCE, n_checks: int = 3, seed: int = 0, progress: bool = False,
                device: str | None = None, int8_static: bool = False, calib_data: str | Path | None = None,
                check_clips: str | Path | None = None) -> dict:
    """Write ``out`` (default: beside the checkpoint, ``model.onnx``), verify it, and the requested
    variants. Returns ``{"files": [ExportedFile.to_dict(), ...], "validation": {...} | None}``.
    ``device``: of a device container, export the model of this device (default: the general one)."""
    if input_kind not in INPUT_KINDS:
        raise ConfigError(f"--input must be one of {', '.join(INPUT_KINDS)}, got {input_kind!r}")
    ckpt_path = resolve_checkpoint(ckpt)
    pred = Predictor.load(ckpt_path)
    if pred.precision == "int8":
        raise AsclabError(f"{ckpt_path}: an int8 (QAT) model; ONNX export takes a float model file "
                          "(use --format litert --int8, or export the model before its qat stage)")
    pred = _one_network(pred, device)
    out = Path(out) if out is not None else ckpt_path.with_suffix(".onnx")
    if out.suffix != ".onnx":
        raise ConfigError(f"{out}: the ONNX file name must end in .onnx")
    window = pred.windowing().window
    meta = _metadata(pred, input_kind, window, ckpt_path)

    network = _export_network(pred)
    frontend = _export_frontend(pred, window) if input_kind == "waveform" else None
    inputs = _check_inputs(pred, input_kind, window, n_checks, seed)

    def verify(tmp: Path) -> float:
        diff = _max_diff_vs_torch(tmp, pred, input_kind, inputs)
        if not diff <= tolerance:
            raise AsclabError(f"{out}: ONNX output differs from the torch model by {diff:.3g} "
                              f"(> tolerance {tolerance:g}); nothing written")
        return diff

    files = [_save(_with_metadata(_join(frontend, network), meta, "fp32"), out, "fp32", verify)]
    reference = _run(out, inputs) if fp16 or int8 or int8_static else []
    calib = _calibration_features(pred, calib_data) if int8_static else None
    for flag, precision, convert in ((fp16, "fp16", _fp16_weights), (int8, "int8", _int8_dynamic),
                                     (int8_static, "int8_static", lambda net: _int8_static(net, calib))):
        if not flag:
            continue
        variant = _save(_with_metadata(_join(frontend, convert(network)), meta, precision),
                        out.with_name(out.stem + f".{precision}.onnx"), precision)
        outs = _run(variant.path, inputs)
        variant.max_abs_diff = float(max(np.abs(a - b).max() for a, b in zip(outs, reference)))
        variant.top1_agreement = float(np.mean(np.concatenate([a.argmax(1) == b.argmax(1)
                                                               for a, b in zip(outs, reference)])))
        files.append(variant)
    if check_clips is not None:
        _real_clip_check(files, pred, input_kind, check_clips)
    validation = _validate(files, pred, input_kind, val_data, progress) if val_data is not None else None
    for f in files:
        _write_sidecar(f, meta)
    return {"files": [f.to_dict() for f in files], "validation": validation}


def _one_network(pred: Predictor, device: str | None) -> Predictor:
    """The predictor of one network in float32: a device container's member for ``device`` (the general
    model for None or an unknown id); fp16 weights upcast exactly (``--fp16`` writes the fp16 variant)."""
    chosen = pred.for_device(device)
    if chosen.model is pred.model and chosen.precision == "fp32":
        return pred
    return chosen.with_network(copy.deepcopy(chosen.model).float().eval(), "fp32")


# ---- the two graphs -------------------------------------------------------------------------





def _export_network(pred: Predictor) -> onnx.ModelProto:
    """features [B, C, F, T] -> logits [B, K] (TorchScript exporter, constant-folded BN)."""
    c, f = pred.fcfg.in_chans, pred.fcfg.n_mels
    frames = pred.features.frames_for(pred.duration or 10.0)
    x = torch.randn(2, c, f, frames)
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        path = Path(tmp) / "network.onnx"
        try:
            torch.onnx.export(pred.model.eval(), (x,), str(path), input_names=["features"], output_names=["logits"],
                              dynamic_axes={"features": {0: "batch", 3: "frames"}, "logits": {0: "batch"}},
                              opset_version=OPSET, do_constant_folding=True, dynamo=False)
        except Exception as exc:  # noqa: BLE001 - any exporter failure is a user-facing error here
            raise AsclabError(f"model {pred.meta.model.get('name')!r} could not be exported to ONNX "
                              f"({type(exc).__name__}: {_first_line(exc)})") from None
        return onnx.load(str(path))


def _export_frontend(pred: Predictor, window: float) -> onnx.ModelProto:
    """waveform [B, C, N] -> features [B, C', F, T] (ONNX STFT, see ``frontend._Stft``)."""
    fe = ExportableFeatures(pred.features).eval()
    cfg = pred.fcfg
    wave = torch.randn(2, fe.n_audio_channels, int(round(window * cfg.sample_rate))) * 0.1
    axes = {0: "batch", 2: "samples"} if cfg.channels == "stereo" else {0: "batch", 1: "channels", 2: "samples"}
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        path = Path(tmp) / "frontend.onnx"
        try:
            torch.onnx.export(fe, (wave,), str(path), input_names=["waveform"], output_names=["features"],
                              dynamic_axes={"waveform": axes, "features": {0: "batch", 3: "frames"}},
                              opset_version=OPSET, do_constant_folding=True, dynamo=False)
        except Exception as exc:  # noqa: BLE001
            raise AsclabError(f"the feature front end ({_describe(cfg)}) could not be exported to ONNX "
                              f"({type(exc).__name__}: {_first_line(exc)}); try --input features") from None
        return onnx.load(str(path))


def _join(frontend: onnx.ModelProto | None, network: onnx.ModelProto) -> onnx.ModelProto:
    """One graph, front end output ``features`` feeding the network (names prefixed apart;
    IR and opset versions made equal, as ``merge_models`` requires)."""
    if frontend is None:
        return network
    a = onnx.compose.add_prefix(frontend, "frontend/", rename_inputs=False, rename_outputs=False)
    b = onnx.compose.add_prefix(network, "network/", rename_inputs=False, rename_outputs=False)
    ir = max(a.ir_version, b.ir_version)
    a.ir_version = b.ir_version = ir
    opsets = {}
    for m in (a, b):
        for op in m.opset_import:
            opsets[op.domain] = max(opsets.get(op.domain, 0), op.version)
    for m in (a, b):
        del m.opset_import[:]
        m.opset_import.extend(helper.make_opsetid(d, v) for d, v in sorted(opsets.items()))
    merged = onnx.compose.merge_models(a, b, io_map=[("features", "features")], producer_name="asclab")
    onnx.checker.check_model(merged)
    return merged


# ---- variants -------------------------------------------------------------------------------



@torch.no_grad()
def _real_clip_check(files: list[ExportedFile], pred: Predictor, input_kind: str, source: str | Path) -> None:
    """Every file against the torch model on real clips: largest difference, top-1 agreement."""
    paths = clip_paths(source, split="all", limit=32)
    n = int(round(model_seconds(pred) * pred.fcfg.sample_rate))
    waves = []
    for p in paths:
        w = pred.load_wave(p, duration=None)[..., :n]
        waves.append(np.pad(w, [(0, 0)] * (w.ndim - 1) + [(0, n - w.shape[-1])]).astype(np.float32))
    wave = torch.from_numpy(np.stack(waves))
    feats = pred.features(wave)
    ref = pred.model(feats).numpy()
    x = wave.numpy() if input_kind == "waveform" else feats.numpy()
    for f in files:
        got = np.concatenate(_run(f.path, [x[i:i + 1] for i in range(len(x))]))
        f.real_clips = {"n_clips": len(paths), "max_abs_diff": float(np.abs(got - ref).max()),
                        "top1_agreement": float(np.mean(got.argmax(1) == ref.argmax(1)))}
    if files[0].real_clips["top1_agreement"] < 1.0:
        raise AsclabError(f"{files[0].path}: the ONNX file's top-1 differs from torch on real clips of {source} "
                          f"(agreement {files[0].real_clips['top1_agreement']:.3f})")


# ---- metadata, saving, checking -------------------------------------------------------------

def _metadata(pred: Predictor, input_kind: str, window: float, ckpt: Path) -> dict:
    cfg = pred.fcfg
    return {
        "format": ONNX_FORMAT, "version": 1, "input": input_kind,
        "input_name": "waveform" if input_kind == "waveform" else "features",
        "input_layout": "[batch, channels, samples]" if input_kind == "waveform" else
        "[batch, in_chans, n_mels, frames]",
        "output_name": "logits", "classes": list(pred.classes), "features": cfg.to_dict(),
        "sample_rate": cfg.sample_rate, "channels": cfg.channels,
        "audio_channels": 2 if cfg.channels == "stereo" else 1, "duration": pred.duration, "window": window,
        "whole_file": pred.whole_file,  # recipe inference.whole_file: the ONNX predictor windows as asclab predict
        "model": dict(pred.meta.model), "opset": OPSET, "source": str(ckpt),
        "openset": pred.openset.to_dict() if pred.openset is not None else None,  # asclab.evaluate.openset
    }


def _with_metadata(model: onnx.ModelProto, meta: dict, precision: str) -> onnx.ModelProto:
    del model.metadata_props[:]
    helper.set_model_props(model, {METADATA_KEY: json.dumps({**meta, "precision": precision})})
    model.producer_name = "asclab"
    return model


def _save(model: onnx.ModelProto, path: Path, precision: str, check=None) -> ExportedFile:
    """Write atomically; ``check(tmp_path) -> max_abs_diff`` runs before the file takes its name
    (so a failed check leaves any earlier file at ``path`` untouched)."""
    with atomic_path(path, suffix=".onnx") as tmp:
        onnx.save(model, str(tmp))
        diff = check(tmp) if check is not None else None
    return ExportedFile(path, path.with_suffix(".json"), precision, path.stat().st_size, diff)


def _write_sidecar(f: ExportedFile, meta: dict) -> None:
    write_json(f.sidecar, {**meta, "precision": f.precision, "file": f.path.name, "size_bytes": f.size_bytes,
                           "max_abs_diff": f.max_abs_diff, "top1_agreement": f.top1_agreement,
                           "accuracy": f.accuracy, "real_clips": f.real_clips})


def _check_inputs(pred: Predictor, input_kind: str, window: float, n: int, seed: int) -> list[np.ndarray]:
    """Random inputs of batch 1..3 and lengths 1, 0.6 and 1.4 x the clip (noise at -20 dBFS; for the
    features input, that noise's features: the value range a trained network's BN statistics expect)."""
    rng = np.random.default_rng(seed)
    cfg = pred.fcfg
    out = []
    for i in range(max(1, n)):
        batch, scale = 1 + i % 3, (1.0, 0.6, 1.4)[i % 3]
        samples = max(int(round(window * scale * cfg.sample_rate)), cfg.n_fft + 16 * cfg.hop_length)
        chans = 2 if cfg.channels == "stereo" else 1
        wave = (0.1 * rng.standard_normal((batch, chans, samples))).astype(np.float32)
        if input_kind == "waveform":
            out.append(wave)
        else:
            with torch.no_grad():
                out.append(pred.features(torch.from_numpy(wave)).numpy())
    return out


def _session(path: Path):
    import onnxruntime as ort  # optional heavy dependency: loaded only when an ONNX session runs

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _run(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    sess = _session(path)
    name = sess.get_inputs()[0].name
    return [sess.run(None, {name: x})[0] for x in inputs]


@torch.no_grad()
def _max_diff_vs_torch(path: Path, pred: Predictor, input_kind: str, inputs: list[np.ndarray]) -> float:
    sess = _session(path)
    name = sess.get_inputs()[0].name
    worst = 0.0
    for x in inputs:
        t = torch.from_numpy(x)
        ref = (pred.model(pred.features(t)) if input_kind == "waveform" else pred.model(t)).numpy()
        got = sess.run(None, {name: x})[0]
        if got.shape != ref.shape:
            raise AsclabError(f"{path}: ONNX output shape {got.shape} differs from torch {ref.shape}")
        worst = max(worst, float(np.abs(got - ref).max()))
    return worst


def _validate(files: list[ExportedFile], pred: Predictor, input_kind: str, val_data: str | Path,
              progress: bool) -> dict:
    """Accuracy of every exported file on labelled audio (windowed like ``asclab predict``)."""
    index = open_dataset(val_data)
    try:
        records = [r for r in index.test if r.label is not None]
    except AsclabError:
        records = [r for r in index.records if r.label is not None]
    records = [r for r in records if r.label in pred.classes]
    if not records:
        raise AsclabError(f"{val_data}: no labelled files with the model's classes to validate on")
    paths = [r.path for r in records]
    truth = np.array([pred.classes.index(r.label) for r in records])
    win = pred.windowing()  # as asclab predict and the ONNX predictor window them
    result = {"data": str(val_data), "n_files": len(records)}
    for f in files:
        sess = _session(f.path)
        name = sess.get_inputs()[0].name

        def probs_fn(batch: np.ndarray, sess=sess, name=name) -> np.ndarray:
            x = batch if input_kind == "waveform" else pred.features(torch.from_numpy(batch)).numpy()
            return softmax(sess.run(None, {name: x})[0])

        res = classify_files(paths, probs_fn, pred.classes, win, progress=progress)
        f.accuracy = float(np.mean([pred.classes.index(r.label) == t for r, t in zip(res, truth)]))
        result[f.precision] = f.accuracy
    for f in files[1:]:
        result[f"{f.precision}_change"] = f.accuracy - files[0].accuracy
    return result


def _describe(cfg) -> str:
    return f"{cfg.n_mels} mels, scale {cfg.scale}" + (", deltas" if cfg.deltas else "") + (", hpss" if cfg.hpss else "")


def _first_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[0] if lines else "")[:200]


__all__ = ["ExportedFile", "export_onnx"]


@EXPORT_BACKENDS.register("onnx")
def write_onnx(req: ExportRequest) -> dict:
    """``asclab export --format onnx``: :func:`export_onnx` with the request's options."""
    return export_onnx(req.ckpt, req.out, input_kind=req.input_kind, fp16=req.fp16, int8=req.int8,
                       val_data=req.val_data, device=req.device, int8_static=req.int8_static,
                       calib_data=req.calib_data, check_clips=req.check_clips)
