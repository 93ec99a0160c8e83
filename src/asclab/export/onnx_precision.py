"""The ONNX file's weight encodings: float16 weights, folded identity weights, int8 dynamic and
static QDQ quantisation (onnxruntime.quantization), and the clips that calibrate the static one."""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from asclab.errors import ConfigError
from asclab.evaluate.inference import Predictor
from asclab.export.clips import clip_features, clip_paths, model_seconds


@contextlib.contextmanager
def _quiet():
    """The exporters print progress and deprecation notes; keep the CLI output ours."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextlib.contextmanager
def _no_root_warnings():
    """onnxruntime.quantization logs advice on the root logger."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _fp16_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """Store float32 initializers as float16, each followed by a Cast back to float32."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    casts, kept = [], []
    for init in g.initializer:
        if init.data_type != TensorProto.FLOAT:
            kept.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "__fp16")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT,
                                      name=init.name + "__cast"))
    del g.initializer[:]
    g.initializer.extend(kept)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    onnx.checker.check_model(m)
    return m


def _fold_identity_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """Point nodes at initializers directly where the exporter routed a weight through
    an Identity (it does so for weights shared by several layers, e.g. QTI's Shared
    Residual Blocks); the quantiser expects a Conv's weight to be an initializer."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    inits = {i.name for i in g.initializer}
    alias = {n.output[0]: n.input[0] for n in g.node if n.op_type == "Identity" and n.input[0] in inits}
    if not alias:
        return m
    graph_outputs = {o.name for o in g.output}
    keep = [n for n in g.node if not (n.op_type == "Identity" and n.output[0] in alias
                                      and n.output[0] not in graph_outputs)]
    for n in keep:
        for k, name in enumerate(n.input):
            if name in alias and alias[name] not in graph_outputs:
                n.input[k] = alias[name]
    del g.node[:]
    g.node.extend(keep)
    return m


def _int8_dynamic(model: onnx.ModelProto) -> onnx.ModelProto:
    from onnxruntime.quantization import (  # optional heavy dependency: loaded only when an ONNX session runs
        QuantType,
        quantize_dynamic,
    )

    with tempfile.TemporaryDirectory() as tmp, _quiet(), _no_root_warnings():
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(_fold_identity_weights(model), str(src))
        # uint8 weights: onnxruntime's CPU ConvInteger kernel takes uint8 x uint8
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QUInt8,
                         op_types_to_quantize=["Conv", "MatMul", "Gemm"])
        return onnx.load(str(dst))


def _calibration_features(pred: Predictor, calib_data: str | Path | None) -> np.ndarray:
    """Features of up to 32 training clips (``asclab.export.clips``) for static quantisation."""
    source = calib_data or (pred.meta.data_summary or {}).get("data")
    if not source or not Path(source).exists():
        raise ConfigError("--int8-static needs training clips to calibrate on: pass --calib-data DIR "
                          "(the model file's training data folder is not available)")
    return clip_features(pred, clip_paths(source, split="train", limit=32, recipe=pred.meta.recipe), model_seconds(pred))


def _int8_static(model: onnx.ModelProto, calib: np.ndarray) -> onnx.ModelProto:
    """QDQ static int8 of the network graph (input ``features``), calibrated on ``calib``."""
    from onnxruntime.quantization import (  # optional heavy dependency: loaded only when an ONNX session runs
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(calib[i:i + 1] for i in range(len(calib)))

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {"features": x}

    with tempfile.TemporaryDirectory() as tmp, _quiet(), _no_root_warnings():
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8_static.onnx"
        onnx.save(_fold_identity_weights(model), str(src))
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return onnx.load(str(dst))
