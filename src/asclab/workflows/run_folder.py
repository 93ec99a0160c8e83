"""Run folders: what a run records beside its results (recipe, seed, versions,
git revision), so every number can be traced to the command that made it. The folder lock is
``asclab.run_lock`` (re-exported here)."""
from __future__ import annotations

import platform
import subprocess
import sys
import time
from pathlib import Path

import lightning
import numpy
import torch

from asclab import __version__
from asclab.config import dump_recipe
from asclab.io import write_json, write_text
from asclab.run_lock import (  # noqa: F401
    RunLock,
    check_out_folder,
    claim_run_folder,
    has_checkpoint,
    is_asclab_run,
    lock_path,
    refuse_if_held,
)


def git_revision() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict:
    return {
        "asclab": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
        "lightning": lightning.__version__, "numpy": numpy.__version__, "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(), "git_revision": git_revision(),
    }


def record_run(out_dir: Path, recipe: dict, command: list[str] | None = None, **extra) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "recipe.yaml", dump_recipe(recipe))
    write_json(out_dir / "run_info.json", {
        "recipe": recipe.get("name"), "seed": recipe.get("train", {}).get("seed"),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command or sys.argv,
        "environment": environment(), **extra,
    })


# ------------------------------------------------------------- claiming a run folder
