"""``asclab``'s entry point: parse, refuse unusable outputs, run one command, print errors in one line.

User errors (``AsclabError``) print one line without a traceback and exit 2. Each command lives in
one of ``training``, ``inference``, ``deployment`` and ``info``; only the chosen command's module is
imported (a training command loads Lightning, several seconds that ``asclab predict`` does not pay).
"""
from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from pathlib import Path

from asclab.cli.parser import build_parser
from asclab.errors import AsclabError
from asclab.memory import keep_freed_memory
from asclab.terminal import apply_quiet, apply_threads
from asclab.run_lock import refuse_if_held

COMMANDS: dict[str, str] = {
    "demo": "training:cmd_demo", "train": "training:cmd_train", "finetune": "training:cmd_finetune", "features": "training:cmd_features",
    "crossval": "training:cmd_crossval", "teachers": "training:cmd_teachers",
    "evaluate": "inference:cmd_evaluate", "predict": "inference:cmd_predict", "submit": "inference:cmd_submit",
    "logits": "inference:cmd_logits", "soup": "training:cmd_soup",
    "export": "deployment:cmd_export", "deploy-report": "deployment:cmd_deploy_report",
    "import": "deployment:cmd_import", "package": "deployment:cmd_package",
    "data": "info:cmd_data", "recipes": "info:cmd_recipes", "complexity": "info:cmd_complexity",
}


# Integer and number flags that do not become recipe keys (those are bounded by the schema),
# with the range a library below accepts: (command, attribute) -> (low, high).
BOUNDS: dict[tuple[str, str], tuple[float, float]] = {
    ("*", "threads"): (0, 1024), ("train", "num_nodes"): (1, 100_000),
    ("data", "per_cell"): (1, 100_000), ("data", "seconds"): (0.01, 3600.0), ("data", "sample_rate"): (1000, 384_000),
    ("data", "seed"): (0, 2**32 - 1), ("demo", "epochs"): (1, 100_000),
    ("features", "workers"): (1, 256), ("features", "shard_size"): (1, 1 << 20),
    ("evaluate", "tta"): (0, 1000), ("predict", "hop"): (1e-3, 86_400.0), ("predict", "top"): (1, 10_000),
    ("predict", "batch_size"): (1, 1 << 16), ("submit", "year"): (2019, 2025), ("submit", "hop"): (1e-3, 86_400.0),
    ("deploy-report", "repeats"): (1, 100_000), ("deploy-report", "max_clips"): (1, 10_000_000),
    ("crossval", "folds"): (1, 1000), ("package", "index"): (1, 1000), ("logits", "duration"): (0.01, 3600.0),
    ("logits", "batch_size"): (1, 1 << 16), ("teachers", "folds"): (1, 1000), ("teachers", "duration"): (0.01, 3600.0),
}


def check_bounds(args) -> None:
    """A flag outside the range its library accepts is one line naming it (not a traceback from
    numpy, torch or the OS)."""
    for (cmd, attr), (lo, hi) in BOUNDS.items():
        value = getattr(args, attr, None)
        if value is None or cmd not in ("*", args.command) or lo <= value <= hi:
            continue
        raise AsclabError(f"--{attr.replace('_', '-')} {value}: out of range (allowed: {lo:g} to {hi:g})")  # noqa: E501


def command(name: str):
    """The function that runs command ``name`` (its module imported now, not before)."""
    module, func = COMMANDS[name].split(":")
    return getattr(importlib.import_module(f"asclab.cli.{module}"), func)


# Output paths named on the command line that must not exist yet (``--force`` replaces them); a
# folder's entry names the result file inside it whose presence means the folder holds results.
# ``package`` checks its --out folder for writability only; train, crossval and teachers lock
# theirs (``asclab.workflows.run_folder``).
NAMED_OUTPUTS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "predict": (("csv", None), ("timeline", None)), "submit": (("out", None),), "export": (("out", None),),
    "import": (("out", None),), "logits": (("out", None),), "evaluate": (("out", "metrics.json"),),
    "package": (("out", None),), "soup": (("out", None),),
}


def refuse_existing_outputs(args) -> None:
    """Before any work: an output you name that cannot be written is refused, and one that
    already exists is refused unless ``--force`` (README, The command line)."""
    for attr, inside in NAMED_OUTPUTS.get(args.command, ()):
        value = getattr(args, attr, None)
        if not value:
            continue
        path = Path(value) / inside if inside else Path(value)
        _check_writable(path)
        if path.is_file() and not getattr(args, "force", False) and args.command != "package":
            flag = "--" + attr.replace("_", "-")
            raise AsclabError(f"{path}: already exists; choose another {flag} or pass --force to replace it")


def _check_writable(path: Path) -> None:
    """A one-line error when a folder above ``path`` is a file or the nearest existing one is read-only."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise AsclabError(f"{path}: cannot write this output ({parent} is a file, not a folder)")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise AsclabError(f"{path}: cannot write this output ({parent} is not writable)")
            return


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 1
    previous = _terminate_by_exception()
    try:
        if args.command in ("train", "finetune", "crossval", "teachers"):  # a held or unusable --out: refused before torch
            refuse_if_held(getattr(args, "resume", None) or args.out)
        check_bounds(args)
        refuse_existing_outputs(args)  # before any work: an existing output is kept unless --force
        apply_quiet(bool(getattr(args, "quiet", False)))
        apply_threads(args.threads)
        keep_freed_memory()  # large tensors reuse heap memory instead of fresh mmaps (asclab.memory)
        return command(args.command)(args)
    except AsclabError as exc:
        one_line = " ".join(str(exc).replace("\r", "\\r").replace("\n", "\\n").splitlines())
        print(f"asclab: error: {one_line}", file=sys.stderr)  # a file name may hold a newline
        return 2
    except BrokenPipeError:  # output piped into head & co.
        return 0
    except KeyboardInterrupt:
        print("asclab: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("asclab: terminated (SIGTERM); temporary files removed, finished outputs kept", file=sys.stderr)
        return 143
    finally:
        _restore_sigterm(previous)


class Terminated(BaseException):
    """SIGTERM as an exception (like KeyboardInterrupt for SIGINT), so that the ``finally`` blocks
    of atomic writes and run-folder locks run and no temporary file or stale lock is left."""


def _raise_terminated(signum, frame):  # noqa: ARG001 - the signal module's signature
    raise Terminated()


def _terminate_by_exception():
    """Install the SIGTERM handler (main thread only); returns the one it replaces."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _restore_sigterm(previous) -> None:

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)

