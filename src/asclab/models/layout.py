"""The memory layout a model family trains fastest in on CPU, from committed measurements.

``train.channels_last: auto`` (the default) asks :func:`prefers_channels_last`; ``true`` or
``false`` in a recipe wins. The choice is per model family, from the side-by-side training
benchmark committed in ``benchmarks/results.md`` (``bench_train.py``: one training step, fp32
eager against NHWC weights and inputs, 1 thread, on the development machine's AVX-512 Xeon,
2026-12-01); it is not re-measured per process. NHWC changes only the layout oneDNN computes
in, not the arithmetic's result beyond float rounding (tests/models/test_layout.py).
"""
from __future__ import annotations

# samples/s at 1 thread, fp32 eager -> channels_last (benchmarks/results.md, section "train")
MEASURED = {
    "cp_mobile": (87.3, 149.0),
    "mobilenetv2_small": (11.1, 12.8),
    "cp_resnet": (68.9, 81.4),
    "shared_resnet_ssn": (4.8, 3.7),   # SubSpectral Norm reshapes the batch: NHWC is slower
    "two_path_resnet": (2.1, 2.5),
    "two_path_resnet_2020": (1.6, 1.9),
}


def prefers_channels_last(model_name: str | None) -> bool:
    """Whether NHWC trained faster than NCHW for this model family (False when not measured;
    a device container follows its general network's family)."""
    fp32, nhwc = MEASURED.get(str(model_name), (1.0, 0.0))
    return nhwc > fp32


def model_family(model: dict | None) -> str | None:
    """The registered model name a recipe's ``model`` block trains (a device container: its
    general network's), as the per-family measurements are keyed."""
    model = dict(model or {})
    if model.get("name") == "device_container":
        model = dict(model.get("base") or {})
    return model.get("name")


def resolve_channels_last(setting: bool | str, model: dict | None) -> bool:
    """``train.channels_last`` as a boolean: ``auto`` becomes the measured choice for ``model``."""
    if setting != "auto":
        return bool(setting)
    return prefers_channels_last(model_family(model))
