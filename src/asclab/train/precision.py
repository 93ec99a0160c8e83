"""``train.precision: auto``: bf16 autocast where it was measured faster at the same accuracy.

The issue 23 rule: bf16 autocast is the default only on a CPU that computes bf16 natively
(AVX512-BF16 or AMX-BF16, read from ``/proc/cpuinfo``), only for a model family whose
training step was measured faster with it (``MEASURED``: ``benchmarks/bench_train_step.py``,
channels_last fp32 against channels_last + bf16 autocast, 10-s clips, batch 64, 2 threads),
and only where a 4-fold TUT 2017 run x 3 seeds gave the same accuracy within seed noise
(``ACCURACY_CHECKED``: ``results/bf16/``). Everywhere else, and on CUDA (not measured),
``auto`` is fp32 ("32-true"). A recipe's explicit precision always wins. Not from a paper.
"""
from __future__ import annotations

import functools

from asclab.errors import ConfigError
from asclab.models.layout import model_family

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")

# samples/s, channels_last fp32 -> channels_last + bf16 autocast (bench_train_step.py --steps 3, 10-s clips,
# batch 64, 2 threads, the development machine's Xeon with AMX, load 0.3, 2026-12-07)
MEASURED: dict[str, tuple[float, float]] = {"cp_mobile": (17.6, 27.6)}
# families whose bf16 training matched fp32 accuracy within seed noise (results/bf16/README.md: fine-tuned
# CP-Mobile, 4 recording-wise TUT 2017 folds x 3 seeds, 74.8 % bf16 vs 75.5 % fp32, seed-to-seed std 2.8)
ACCURACY_CHECKED: frozenset[str] = frozenset({"cp_mobile"})


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU advertises native bf16 arithmetic (AVX512-BF16 or AMX-BF16)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def prefers_bf16(model_name: str | None) -> bool:
    """bf16 autocast measured faster for this family, with its accuracy checked."""
    fp32, bf16 = MEASURED.get(str(model_name), (1.0, 0.0))
    return str(model_name) in ACCURACY_CHECKED and bf16 > fp32


def resolve_precision(setting: str, model: dict | None, *, cuda: bool = False, quantising: bool = False) -> str:
    """``train.precision`` for Lightning: ``auto`` becomes "bf16-mixed" or "32-true" (module docstring).
    ``quantising``: a ``qat`` stage, whose fake quantisers compute in float32 (torchao PT2E): ``auto``
    is fp32 there, and a 16-bit setting is refused."""
    if quantising and setting not in ("auto", "32-true", "32", "64-true"):
        raise ConfigError(f"train.precision: {setting} cannot train a qat stage (its fake quantisers compute in "
                          "float32); use auto or 32-true")
    if setting != "auto":
        return setting
    if quantising:
        return "32-true"
    if not cuda and cpu_has_native_bf16() and prefers_bf16(model_family(model)):
        return "bf16-mixed"
    return "32-true"
