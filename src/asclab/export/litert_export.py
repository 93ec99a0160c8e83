"""LiteRT (TensorFlow Lite) export of an asclab model file, verified with the LiteRT interpreter.

Horvath et al. 2021 deploy their ASC models as TensorFlow Lite in fp16 to
meet the 128 KB rule; this is the same path for asclab models, through
Google's ``litert-torch`` converter (``pip install asclab[litert]``: it
supports torch < 2.15, so the pinned torch stays) and checked with the
``ai-edge-litert`` interpreter.

Input supported: **features only** (``[1, in_chans, n_mels, frames]`` of one
clip of the model's duration, batch 1, static shape, as LiteRT runtimes
prefer); the front end stays asclab's own (``FeatureExtractor``; the
sidecar JSON carries its settings). Waveform input is not supported here (the
ONNX export has it). int8 (QAT) model files are refused: export the float model.

Files (the fp32 one is the reference):

* ``model.tflite``: float32, litert-torch;
* ``model.fp16.tflite`` (``--fp16``): float16 weights, float32 compute
  (ai-edge-quantizer's float-casting recipe);
* ``model.int8.tflite`` (``--int8``): static int8 weights and activations
  (ai-edge-quantizer ``static_wi8_ai8``) calibrated on training clips; int8
  input/output tensors, (de)quantised here with their scale and zero point.

The check: the interpreter runs each file on real clips (or, without them,
noise features) and is compared with the torch model: largest absolute
difference of the logits and top-1 agreement. The fp32 file must agree with
torch to ``TOLERANCE`` or nothing is written. Each file's size on disk is set
against the year's parameter-memory limit (``compress.limit`` of the recipe,
else DCASE 2022-2025 task 1: 128,000 bytes).
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from asclab.export.backend import EXPORT_BACKENDS, ExportRequest
from asclab.compress.complexity import CHALLENGE_LIMITS
from asclab.errors import AsclabError, ConfigError
from asclab.evaluate.inference import Predictor
from asclab.export.clips import clip_features, clip_paths, model_seconds
from asclab.io import atomic_path, write_json
from asclab.train.checkpoint import resolve_checkpoint

TOLERANCE = 1e-3  # fp32 file vs torch (XNNPACK reorders sums)
N_CALIBRATION = 32
DEFAULT_LIMIT = "dcase2022_2025_1"


@contextlib.contextmanager
def _quiet():
    """litert-torch prints progress lines and absl logs; keep the CLI output ours."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def litert_available() -> str | None:
    """None when the converter and the interpreter import, else why not (one line)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # the converter's C++ start-up notes
    try:
        with _quiet():
            import ai_edge_litert.interpreter  # noqa: F401
            import ai_edge_quantizer  # noqa: F401
            import litert_torch  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means the extra is unusable
        return f"the LiteRT extra is not installed ({type(exc).__name__}: {str(exc)[:120]}); pip install 'asclab[litert]'"
    return None


def convert_fp32(model: torch.nn.Module, shape: tuple[int, ...], path: Path) -> None:
    import litert_torch  # optional extra asclab[litert]: loaded only for LiteRT export

    with _quiet():
        edge = litert_torch.convert(model.eval(), (torch.zeros(shape),))
        edge.export(str(path))


def _quantize(src: Path, dst: Path, recipe, calibration: np.ndarray | None) -> None:
    from ai_edge_quantizer import quantizer  # optional extra asclab[litert]: loaded only for LiteRT export

    with _quiet():
        qt = quantizer.Quantizer(str(src), recipe)
        cal = None
        if calibration is not None:
            sig, name = _signature(open_interpreter(src))
            cal = qt.calibrate({sig: [{name: x[None]} for x in calibration]}, num_threads=1)
        result = qt.quantize(cal, enable_progress_report=False)
    dst.write_bytes(result.quantized_model)


def _fp16_recipe() -> list[dict]:
    """Weights stored as float16, computation in float32 (ai-edge-quantizer float casting)."""
    return [{"regex": ".*", "operation": "*", "algorithm_key": "float_casting",
             "op_config": {"weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"},
                           "compute_precision": "FLOAT", "explicit_dequantize": True}}]


def open_interpreter(path: Path, threads: int = 1):
    from ai_edge_litert.interpreter import Interpreter  # optional extra asclab[litert]: loaded only for LiteRT export

    with _quiet():
        it = Interpreter(model_path=str(path), num_threads=threads)
        it.allocate_tensors()
    return it


def _signature(it) -> tuple[str, str]:
    sigs = it.get_signature_list()
    sig = next(iter(sigs))
    return sig, sigs[sig]["inputs"][0]


def run_interpreter(it, x: np.ndarray) -> np.ndarray:
    """Logits (float32) of one input ``[1, ...]``; int8 inputs/outputs (de)quantised with their parameters."""
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    if inp["dtype"] != np.float32:
        scale, zero = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(inp["dtype"])
    it.set_tensor(inp["index"], x)
    it.invoke()
    y = it.get_tensor(out["index"])
    if out["dtype"] != np.float32:
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y.astype(np.float32)


def _limit(pred: Predictor):

    key = ((pred.meta.recipe or {}).get("compress") or {}).get("limit") or DEFAULT_LIMIT
    return next((lim for lim in CHALLENGE_LIMITS if lim.key == key), CHALLENGE_LIMITS[-1])


def _check(path: Path, pred: Predictor, feats: np.ndarray) -> dict:
    it = open_interpreter(path)
    with torch.no_grad():
        ref = pred.model(torch.from_numpy(feats)).numpy()
    got = np.concatenate([run_interpreter(it, x[None]) for x in feats])
    return {"max_abs_diff": float(np.abs(got - ref).max()),
            "top1_agreement": float(np.mean(got.argmax(1) == ref.argmax(1)))}


def export_litert(ckpt: str | Path, out: str | Path | None = None, *, fp16: bool = False, int8: bool = False,
                  check_clips: str | Path | None = None, calib_data: str | Path | None = None,
                  seconds: float | None = None, n_checks: int = 16, tolerance: float = TOLERANCE) -> dict:
    """Write ``out`` (default ``model.tflite`` beside the checkpoint) and the requested variants, each
    checked against torch. Returns ``{"files": [...], "input": {...}, "check": {...}}``."""
    why = litert_available()
    if why is not None:
        raise AsclabError(why)
    ckpt_path = resolve_checkpoint(ckpt)
    pred = Predictor.load(ckpt_path)
    if pred.precision == "int8":
        raise AsclabError(f"{ckpt_path}: an int8 (QAT) model file; LiteRT export takes a float model "
                          "(use --int8 for a calibrated int8 file)")
    if hasattr(pred.model, "model_for_device"):
        pred = pred.for_device(None)
    pred.model = pred.model.float().eval()
    out = Path(out) if out is not None else ckpt_path.with_suffix(".tflite")
    if out.suffix != ".tflite":
        raise ConfigError(f"{out}: the LiteRT file name must end in .tflite")
    secs = float(seconds) if seconds else model_seconds(pred)
    frames = pred.features.frames_for(secs)
    shape = (1, pred.fcfg.in_chans, pred.fcfg.n_mels, frames)
    if check_clips is not None:
        paths = clip_paths(check_clips, split="all", limit=n_checks)
        feats, source = clip_features(pred, paths, secs), f"{len(paths)} real clips from {check_clips}"
    else:
        rng = np.random.default_rng(0)
        wave = torch.from_numpy((0.1 * rng.standard_normal((4, 2 if pred.fcfg.channels == "stereo" else 1,
                                                             int(secs * pred.fcfg.sample_rate)))).astype(np.float32))
        with torch.no_grad():
            feats, source = pred.features(wave).numpy()[..., :frames], "4 noise clips (no --check-clips given)"
    limit = _limit(pred)
    files = []
    with tempfile.TemporaryDirectory() as tmp:
        ref = Path(tmp) / "fp32.tflite"
        try:
            convert_fp32(pred.model, shape, ref)
        except Exception as exc:  # noqa: BLE001 - converter failures are the model's
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise AsclabError(f"model {pred.meta.model.get('name')!r} could not be converted to LiteRT "
                              f"({type(exc).__name__}: {first})") from None
        checked = _check(ref, pred, feats)
        if not checked["max_abs_diff"] <= tolerance or checked["top1_agreement"] < 1.0:
            raise AsclabError(f"{out}: the LiteRT file differs from torch (max |diff| {checked['max_abs_diff']:.3g}, "
                              f"top-1 agreement {checked['top1_agreement']:.3f}); nothing written")
        variants = [("fp32", out, ref)]
        if fp16:
            dst = Path(tmp) / "fp16.tflite"
            _quantize(ref, dst, _fp16_recipe(), None)
            variants.append(("fp16", out.with_name(out.stem + ".fp16.tflite"), dst))
        if int8:
            from ai_edge_quantizer import recipe  # optional extra asclab[litert]: loaded only for LiteRT export

            source_dir = calib_data or (pred.meta.data_summary or {}).get("data")
            if not source_dir or not Path(source_dir).exists():
                raise ConfigError("--int8 needs training clips to calibrate on: pass --calib-data DIR "
                                  "(the model file's training data folder is not available)")
            calib = clip_features(pred, clip_paths(source_dir, split="train", limit=N_CALIBRATION, recipe=pred.meta.recipe), secs)
            dst = Path(tmp) / "int8.tflite"
            _quantize(ref, dst, recipe.static_wi8_ai8(), calib)
            variants.append(("int8", out.with_name(out.stem + ".int8.tflite"), dst))
        for precision, final, made in variants:
            result = checked if precision == "fp32" else _check(made, pred, feats)
            with atomic_path(final, suffix=".tflite") as t:
                t.write_bytes(made.read_bytes())
            size = final.stat().st_size
            files.append({"path": str(final), "precision": precision, "size_bytes": size,
                          "limit": limit.key, "limit_bytes": limit.max_param_bytes,
                          "within_limit": size <= limit.max_param_bytes, **result})
    meta = {"format": "asclab-litert", "input": "features", "input_shape": list(shape), "seconds": secs,
            "classes": list(pred.classes), "features": pred.fcfg.to_dict(), "model": dict(pred.meta.model),
            "source": str(ckpt_path), "check": source, "files": files}
    write_json(out.with_suffix(".json"), meta)
    return {"files": files, "input": {"kind": "features", "shape": list(shape), "seconds": secs},
            "check": source, "sidecar": str(out.with_suffix(".json"))}


__all__ = ["convert_fp32", "export_litert", "litert_available", "open_interpreter", "run_interpreter"]



@EXPORT_BACKENDS.register("litert")
def write_litert(req: ExportRequest) -> dict:
    """``asclab export --format litert``: :func:`export_litert` (features input) with the request's options."""
    return export_litert(req.ckpt, req.out, fp16=req.fp16, int8=req.int8, check_clips=req.check_clips,
                         calib_data=req.calib_data)
