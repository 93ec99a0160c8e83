"""Shared pieces of the benchmark scripts: the models at their papers' input
shapes, the real clips, machine description, timing and memory helpers.

Not a test helper and not part of the package: the scripts in this folder
import it (``python benchmarks/bench_*.py`` puts this folder on ``sys.path``).
"""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class ModelSpec:
    """A registered model, the recipe whose front end feeds it, and the
    network input its paper trains on (``shape`` = in_chans, n_mels, frames)."""

    name: str
    recipe: str
    shape: tuple[int, int, int]
    train_batch: int  # small for the big models so a few steps finish in seconds
    paper: str

    def recipe_dict(self) -> dict:
        from asclab.config import load_recipe

        return load_recipe(self.recipe)

    def feature_config(self):
        from asclab.features import FeatureConfig

        return FeatureConfig.from_dict(self.recipe_dict()["features"])

    def duration(self) -> float:
        return float(self.recipe_dict()["data"].get("duration") or 10.0)

    def create(self, num_classes: int = 10, seed: int = 0):
        import torch

        from asclab.models import create_model

        torch.manual_seed(seed)
        kwargs = {k: v for k, v in self.recipe_dict()["model"].items() if k != "name"}
        return create_model(self.name, num_classes=num_classes, in_chans=self.shape[0], **kwargs)


MODEL_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("cp_mobile", "gao_lee2024_split100", (1, 256, 65), 32, "Gao & Lee 2024"),
    ModelSpec("mobilenetv2_small", "horvath2021_mnv2_focal", (3, 128, 431), 4, "Horvath 2021"),
    ModelSpec("cp_resnet", "horvath2021_cpresnet_focal", (3, 128, 431), 4, "Horvath 2021"),
    ModelSpec("shared_resnet_ssn", "qti2020_task1b", (2, 256, 469), 4, "QTI 2020"),
    ModelSpec("two_path_resnet", "mcdonnell2019_task1a", (6, 128, 400), 2, "McDonnell & Gao 2019"),
    ModelSpec("two_path_resnet_2020", "gao2020_sub1_baseline", (3, 128, 400), 2, "Gao & McDonnell 2020"),
)


def select_models(names: str | None) -> list[ModelSpec]:
    """``"a,b"`` -> those specs (in the order of MODEL_SPECS); None or "all" -> every model."""
    if not names or names == "all":
        return list(MODEL_SPECS)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {s.name: s for s in MODEL_SPECS}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        sys.exit(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [s for s in MODEL_SPECS if s.name in wanted]


def check_registry() -> list[str]:
    """Registered models this benchmark suite does not know (they would go unmeasured)."""
    from asclab.models import list_models

    # A device container holds other registered models; it is measured through its members.
    return sorted(set(list_models()) - {"device_container"} - {s.name for s in MODEL_SPECS})


def tau_files(data: Path = DEFAULT_DATA) -> list[Path]:
    """The 12 real TAU/TUT sample clips (10 s each), or exit with a clear message."""
    files = sorted((Path(data) / "tau-samples").glob("*/*.wav"))
    if not files:
        sys.exit(f"no real clips under {Path(data) / 'tau-samples'} (the shared data folder, see its README.md)")
    return files


def parse_ints(text: str) -> list[int]:
    return [int(t) for t in str(text).split(",") if t.strip()]


# ---- timing ---------------------------------------------------------------------------------

def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn) for _ in range(max(1, repeats)))


def interleaved(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 1,
                budget_s: float | None = None) -> dict[str, list[float]]:
    """Time every function once per round, in turn, so that load changes on a
    shared machine hit all of them alike; returns the per-round times.

    With ``budget_s``, no new round starts once the timed rounds have used that
    many seconds (at least one round always runs): on a busy machine a slow
    setting then costs fewer repeats instead of minutes.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    start = time.perf_counter()
    for r in range(max(1, rounds)):
        if r > 0 and budget_s is not None and time.perf_counter() - start > budget_s:
            break
        for k, fn in fns.items():
            times[k].append(timed(fn))
    return times


def med(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


# ---- memory ---------------------------------------------------------------------------------

def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux: ``clear_refs`` 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """Peak resident set size (VmHWM) since the last ``reset_peak_rss``; falls
    back to ``resource.getrusage`` ru_maxrss (peak over the process's life)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- machine --------------------------------------------------------------------------------

def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_flags() -> str:
    """The CPU's vector extensions that decide the kernels torch and numpy run (from /proc/cpuinfo):
    a ratio measured here holds for machines with the same flags."""
    try:
        with open("/proc/cpuinfo") as f:
            have = set(next(line.split(":", 1)[1].split() for line in f if line.startswith("flags")))
    except (OSError, StopIteration):
        return "unknown"
    return " ".join(f for f in VECTOR_FLAGS if f in have) or "none of " + " ".join(VECTOR_FLAGS)


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_line(load_start: tuple[float, float, float], threads: Sequence[int]) -> str:
    import torch

    load_end = os.getloadavg()
    return (f"Machine: {os.cpu_count()} cores ({cpu_name()}, torch CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()}; CPU flags: {cpu_flags()}), Python {platform.python_version()}, "
            f"torch {torch.__version__}; "
            f"torch threads measured: {', '.join(map(str, threads))}; load average (1 min) "
            f"{load_start[0]:.2f} at start, {load_end[0]:.2f} at end.")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None) -> str:
    """A markdown table; ``align`` is one char per column (l or r, default: first l, rest r)."""
    align = align or "l" + "r" * (len(headers) - 1)
    sep = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(map(str, headers)) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def fmt_ms(seconds: float) -> str:
    ms = 1000 * seconds
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 1 else f"{ms:.2f}"


def fmt_rate(x: float) -> str:
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 1 else f"{x:.2f}"
