"""Export backends as parts: each writer (ONNX, LiteRT) is one module that registers one function
``write(request) -> report`` in :data:`EXPORT_BACKENDS` (``asclab.registry``).

A new backend is one new module with its ``@EXPORT_BACKENDS.register("name")`` writer and its
module name in :data:`BACKEND_MODULES` (imported on first use, so that importing
``asclab.export`` stays torch-free for the ONNX predictor).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from asclab.registry import Registry


@dataclass(frozen=True)
class ExportRequest:
    """What ``asclab export`` asks of a backend; a backend reads the fields it supports."""

    ckpt: str | Path
    out: str | Path | None = None
    input_kind: str = "waveform"  # ONNX: "waveform" (front end inside) or "features"; LiteRT: features only
    fp16: bool = False
    int8: bool = False
    int8_static: bool = False  # ONNX: a static QDQ int8 variant
    calib_data: str | Path | None = None
    check_clips: str | Path | None = None
    val_data: str | Path | None = None  # ONNX: accuracy of each file on labelled data
    device: str | None = None  # a device container: export this device's model


EXPORT_BACKENDS: Registry[Callable[[ExportRequest], dict]] = Registry("export backend")
BACKEND_MODULES = ("asclab.export.onnx_export", "asclab.export.litert_export")


def export_backend(name: str) -> Callable[[ExportRequest], dict]:
    """The registered writer ``name`` (the backend modules are imported on first use)."""
    for module in BACKEND_MODULES:
        importlib.import_module(module)
    return EXPORT_BACKENDS.get(name)


def backend_names() -> list[str]:
    for module in BACKEND_MODULES:
        importlib.import_module(module)
    return EXPORT_BACKENDS.names()
