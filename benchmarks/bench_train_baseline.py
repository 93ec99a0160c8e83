"""Training speed: asclab train against the CPJKU DCASE 2024 task 1 baseline's own pipeline.

Both pipelines, side by side in one run, train CP-Mobile on the same real TUT 2017 10-s
clips (``shared/data/tut2017``, read in place, chosen and labelled by asclab's reader) for
the same number of epochs, batch size and torch threads:

* (a) the baseline (github ``CPJKU/dcase2024_task1_baseline``, its tree written unedited
  from the bare mirror the ``fetch`` tool makes to a temp folder; stand-ins for
  torchaudio, torchvision, wandb and its pandas-based ``dataset.dcase24`` from
  ``cpjku_baseline_shims``): its ``run_training.PLModule`` (resampling 44.1 -> 32 kHz, mel
  spectrogram, frequency masking, log, Freq-MixStyle, CP-Mobile, cross-entropy, AdamW and the
  cosine warm-up schedule) with the configuration of ``run_training.py``'s own argparse
  defaults, overriding only ``n_classes`` (15 TUT 2017 classes), ``batch_size``, ``n_epochs``
  and ``num_workers`` (``--baseline-workers``, one run each: its default 8, whose loader
  processes compete for the 2 cores with the training threads, and 0); the Target line uses
  the fastest run. With workers, its ``worker_init_fn`` is replaced by
  ``cpjku_baseline_shims.worker_init_fn_numpy2`` (the same seeds; the original overflows
  under numpy >= 2). Its data loading as ``train()`` wires it: ``get_training_set(subset,
  roll=orig_sample_rate * roll_sec)`` (the clips, each file read per item, in the baseline's
  own ``RollDataset``), ``DataLoader(worker_init_fn=worker_init_fn, shuffle=True)``. Run
  in this process by ``pytorch_lightning.Trainer`` on the CPU with no logger, checkpointing,
  progress bar, model summary or sanity check, and ``trainer.fit`` without a validation
  loader (``train()``'s wandb logger, validation loader, checkpoint, complexity count and
  final test are left out: not training). ``warmup_steps`` stays 2000, as in asclab's recipe
  (the learning rate does not change the speed). The baseline sets no seed; torch and numpy
  are seeded 0 here so that runs repeat. Timed: ``trainer.fit``.
* (b) ``asclab --threads T train dcase2024_baseline --all-data --epochs E --batch-size B``
  in a subprocess with a fresh feature cache (``--cache-dir`` and ``--out`` in a temp
  folder), with the overrides TUT 2017 needs: ``data.duration=10`` (the recipe reads the
  1-s TAU segments; the baseline reads whole files, here 10 s), ``data.split=null`` (no
  split files), ``data.group_folds={folds: 2, by: identifier}`` and ``data.test_fold=1``
  (this copy has no official folds; ``--all-data`` trains on both folds, every clip), and for
  fewer than all clips ``data.allow_outside=true`` (a temp folder whose ``meta.txt`` lists
  the chosen clips and whose ``audio`` is a link to the real folder). Timed: the whole
  command, wall clock, start-up, reading the audio and building the feature cache included.

Samples/s (whole) = clips x epochs / the time above. Samples/s (epochs 2..E) = clips x (E - 1)
/ (end of epoch E - end of epoch 1): for (a) from a Lightning callback, for (b) from the
moments its per-epoch checkpoint files (``logs/checkpoints/epoch=K-step=S.ckpt``, written
at each epoch's end) appear in the run folder, polled every 0.1 s. The audio files are read
once before either run so that both find them in the OS page cache. The Target line uses the
whole-run figures.

Without the baseline's mirror, one line says so and how to get it, and asclab alone is
compared with the figure issue 23 states for the baseline's pipeline (6.1 samples/s, a
quiet 2-core machine).

    python benchmarks/bench_train_baseline.py [--epochs 4] [--batch 64] [--threads 2] [--clips N] [--out FILE]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import benchlib as bl  # this folder is on sys.path: the script's own (python benchmarks/bench_*.py)
import cpjku_baseline_shims as cpjku

ISSUE_23_BASELINE = 6.1  # samples/s: "the CPJKU DCASE 2024 baseline's own pipeline", issue 23, quiet 2-core machine
TARGET = 3.0
RECIPE = "dcase2024_baseline"
EPOCH_FILE = re.compile(r"^epoch=(\d+)-step=\d+\.ckpt$")
POLL_S = 0.1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2, help="torch threads for both pipelines")
    p.add_argument("--clips", type=int, default=None, help="clips to train on (default: all 324)")
    p.add_argument("--baseline-workers", default="0,8",
                   help="comma-separated DataLoader num_workers for the baseline, one run each (8: its default)")
    p.add_argument("--out", type=Path, default=None, help="append the markdown section to this file")
    p.add_argument("--data", type=Path, default=cpjku.TUT2017, help="the TUT 2017 folder (meta.txt, audio/)")
    p.add_argument("--mirror", type=Path, default=cpjku.MIRROR, help="bare git mirror of the baseline")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.batch < 1 or args.threads < 1 or (args.clips is not None and args.clips < 1):
        p.error("--epochs, --batch, --threads and --clips must be positive")
    return args


def log(msg: str) -> None:
    print(f"[bench_train_baseline] {msg}", file=sys.stderr, flush=True)


def warm_page_cache(records) -> None:
    """Read every clip's file once, so that neither pipeline pays the first read from disk."""
    for r in records:
        Path(r.path).read_bytes()


def steady_rate(n_clips: int, epoch_ends: list[float]) -> float | None:
    """clips x (E - 1) / (end of the last epoch - end of the first); None for one epoch."""
    if len(epoch_ends) < 2 or epoch_ends[-1] <= epoch_ends[0]:
        return None
    return n_clips * (len(epoch_ends) - 1) / (epoch_ends[-1] - epoch_ends[0])


# ---- (a) the baseline's own pipeline ---------------------------------------------------------

def _epoch_clock():
    """A Lightning callback recording when each training epoch starts and ends (perf_counter)."""
    import pytorch_lightning as pl

    class EpochClock(pl.Callback):
        def __init__(self):
            self.starts: list[float] = []
            self.ends: list[float] = []

        def on_train_epoch_start(self, trainer, pl_module):
            self.starts.append(time.perf_counter())

        def on_train_epoch_end(self, trainer, pl_module):
            self.ends.append(time.perf_counter())

    return EpochClock()


@contextlib.contextmanager
def _quiet_lightning():
    """Lightning's info lines and the known warnings (few loader workers, no validation loader,
    Lightning's own pytree deprecation, numpy's deprecated ``random_integers`` in RollDataset)
    kept off the terminal; other warnings still show."""
    loggers = [logging.getLogger(n) for n in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*`validation_step` but have no `val_dataloader`.*")
        warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")
        warnings.filterwarnings("ignore", message=".*random_integers.*|This function is deprecated.*",
                                category=DeprecationWarning)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def run_baseline(root: Path, records, classes, args, workers: int) -> dict:
    """Train with the baseline's PLModule and data set, as its ``train()`` wires them; timed."""
    import numpy as np
    import torch

    rt = cpjku.import_run_training(root, records, classes)
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    config = cpjku.baseline_config(root, n_classes=len(classes), batch_size=args.batch, n_epochs=args.epochs,
                                   num_workers=workers)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    np.random.seed(0)
    roll_samples = config.orig_sample_rate * config.roll_sec  # as run_training.train()
    train_dl = DataLoader(dataset=rt.get_training_set(config.subset, roll=roll_samples),
                          worker_init_fn=rt.worker_init_fn if not workers else cpjku.worker_init_fn_numpy2,
                          num_workers=config.num_workers,
                          batch_size=config.batch_size, shuffle=True)
    module = rt.PLModule(config)
    clock = _epoch_clock()
    with _quiet_lightning():
        trainer = pl.Trainer(max_epochs=config.n_epochs, logger=False, accelerator="cpu", devices=1,
                             precision=config.precision, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, num_sanity_val_steps=0, callbacks=[clock])
        t0 = time.perf_counter()
        trainer.fit(module, train_dl)
        fit_s = time.perf_counter() - t0
    loss = trainer.callback_metrics.get("train/loss")
    return {"seconds": fit_s, "epoch_ends": clock.ends, "steps": int(trainer.global_step), "workers": workers,
            "loss": float(loss) if loss is not None else float("nan"), "params": sum(
                p.numel() for p in module.model.parameters()), "roll": roll_samples, "n_classes": config.n_classes}


# ---- (b) asclab train ------------------------------------------------------------------------

def asclab_executable() -> list[str]:
    """The ``asclab`` command of this interpreter's environment."""
    script = Path(sys.executable).with_name("asclab")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "asclab.cli"]


def subset_folder(records, data: Path, dest: Path) -> Path:
    """A TUT-layout folder for the chosen clips: their ``meta.txt`` lines, ``audio`` linked to the real one."""
    dest.mkdir(parents=True)
    (dest / "audio").symlink_to(Path(data).resolve() / "audio", target_is_directory=True)
    lines = [f"{r.extra['filename']}\t{r.label}\t{r.identifier}" for r in records]
    (dest / "meta.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dest


def asclab_command(data_dir: Path, out: Path, cache: Path, args, subset: bool) -> list[str]:
    """``asclab train`` with the recipe's defaults and the overrides TUT 2017 needs (module docstring)."""
    sets = ["data.duration=10", "data.split=null", "data.group_folds={folds: 2, by: identifier}", "data.test_fold=1"]
    if subset:
        sets.append("data.allow_outside=true")
    cmd = [*asclab_executable(), "--threads", str(args.threads), "train", RECIPE, "--data", str(data_dir),
           "--all-data", "--epochs", str(args.epochs), "--batch-size", str(args.batch), "--out", str(out),
           "--cache-dir", str(cache), "--quiet", "--force"]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def _seen_epochs(out: Path, seen: dict[int, float]) -> None:
    """Record the first moment each ``epoch=K-step=S.ckpt`` is seen below ``out``."""
    now = time.perf_counter()
    for path in out.glob("**/checkpoints/epoch=*.ckpt"):
        m = EPOCH_FILE.match(path.name)
        if m:
            seen.setdefault(int(m.group(1)), now)


def run_asclab(records, data: Path, work: Path, args, subset: bool) -> dict:
    """``asclab train`` in a subprocess, timed wall clock, its epoch ends polled from the run folder."""
    data_dir = subset_folder(records, data, work / "data") if subset else Path(data)
    work.mkdir(parents=True, exist_ok=True)
    out, cache = work / "run", work / "cache"
    cmd = asclab_command(data_dir, out, cache, args, subset)
    seen: dict[int, float] = {}
    with open(work / "asclab.log", "w+", encoding="utf-8") as logf:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        while proc.poll() is None:
            _seen_epochs(out, seen)
            time.sleep(POLL_S)
        wall = time.perf_counter() - t0
        logf.seek(0)
        output = logf.read()
    if proc.returncode != 0:
        raise SystemExit(f"asclab train failed (exit code {proc.returncode}):\n{output[-3000:]}")
    info = json.loads((out / "run_info.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    if info.get("n_train") != len(records):
        raise SystemExit(f"asclab trained on {info.get('n_train')} clips, not the {len(records)} chosen")
    ends = [seen[k] for k in sorted(seen)] if sorted(seen) == list(range(args.epochs)) else []
    return {"seconds": wall, "epoch_ends": ends, "train_seconds": summary.get("train_seconds"),
            "command": cmd, "params": summary.get("complexity", {}).get("params")}


# ---- the report ------------------------------------------------------------------------------

def fmt_steady(rate: float | None, epochs: int) -> str:
    if rate is not None:
        return bl.fmt_rate(rate)
    return "n/a (1 epoch)" if epochs < 2 else "n/a (epoch ends not seen)"


def report(args, n_clips: int, n_classes: int, bases: list[dict], ours: dict, missing: str | None,
           commit: str | None, load_start, started: str) -> str:
    """The markdown section (module docstring); the target against the fastest baseline run."""
    e = args.epochs
    ours_whole = n_clips * e / ours["seconds"]
    ours_steady = steady_rate(n_clips, ours["epoch_ends"])
    base_rows = []
    for base in bases:
        base["whole"] = n_clips * e / base["seconds"]
        base["steady"] = steady_rate(n_clips, base["epoch_ends"])
    fastest = max(bases, key=lambda b: b["whole"]) if bases else None
    for base in bases:
        base_rows.append([f"(a) CPJKU baseline's own pipeline (commit {commit[:7]}, PLModule + Lightning), "
                          f"num_workers {base['workers']}" + (" (its default)" if base["workers"] == 8 else ""),
                          f"fit {base['seconds']:.1f}", bl.fmt_rate(base["whole"]), fmt_steady(base["steady"], e),
                          f"{ours_whole / base['whole']:.2f}x whole" + (" (reference: the fastest)" if base is fastest
                                                                       else "")])
    if fastest is not None:
        base_whole, base_steady = fastest["whole"], fastest["steady"]
        steady_ratio = (f", {ours_steady / base_steady:.2f}x epochs 2..{e}"
                        if ours_steady is not None and base_steady is not None else "")
        versus = (f"asclab {bl.fmt_rate(ours_whole)} vs baseline {bl.fmt_rate(base_whole)} samples/s, its fastest "
                  f"run (num_workers {fastest['workers']})")
    else:
        base_whole, steady_ratio = ISSUE_23_BASELINE, ""
        base_rows = [["(a) CPJKU baseline's own pipeline: not run, issue 23's figure", "-",
                      f"{ISSUE_23_BASELINE} (issue 23, quiet 2-core machine)", "-", "reference"]]
        versus = f"asclab {bl.fmt_rate(ours_whole)} vs {ISSUE_23_BASELINE} samples/s, issue 23's baseline figure"
    ratio = ours_whole / base_whole
    rows = [*base_rows, [f"(b) asclab train {RECIPE}", (f"wall {ours['seconds']:.1f} (start-up and feature cache "
                       f"included; in-process {ours['train_seconds']} s)"), bl.fmt_rate(ours_whole),
                       fmt_steady(ours_steady, e), f"{ratio:.2f}x whole{steady_ratio}"]]
    lines = [f"### Training speed against the CPJKU DCASE 2024 baseline (bench_train_baseline.py, {started})", ""]
    if missing:
        lines += [(f"Note: {missing}; only asclab was run, against the figure issue 23 states for the baseline "
                   f"({ISSUE_23_BASELINE} samples/s, its own run on a quiet 2-core machine, not measured here: the "
                   "ratio is rough, and meaningful only at this benchmark's defaults)."), ""]
    lines += [
        bl.machine_line(load_start, [args.threads]) + f" Date {started}; git revision {bl.git_revision()}.",
        "",
        (f"Work: CP-Mobile, {n_clips} real TUT 2017 10-s clips (44.1 kHz, read in place), batch {args.batch}, "
        f"{e} epoch(s), {args.threads} torch thread(s), recipe `{RECIPE}`. (a): the baseline's "
        f"`run_training.PLModule` unedited, its argparse defaults except n_classes {n_classes}, batch_size, n_epochs and "
        "num_workers (its default 8 loader processes compete with the training threads on 2 cores, so it also "
        "runs with 0), torchaudio/torchvision/wandb/dataset stand-ins "
        "(`benchmarks/cpjku_baseline_shims.py`), Lightning fit without validation; time = `trainer.fit`. (b): "
        "`asclab train` in a subprocess, fresh feature cache, overrides data.duration=10, data.split=null, "
        "2 recording-wise folds + --all-data (every clip trains); time = the whole command's wall clock "
        "(start-up and building the feature cache included). Samples/s (whole) = clips x epochs / time; "
        + (f"epochs 2..{e} = clips x {e - 1} / (end of epoch {e} - end of epoch 1)." if e > 1
           else "one epoch: no steady-state figure.")),
        "",
        bl.table(["pipeline", "fit/wall seconds", "samples/s (whole)", f"samples/s (epochs 2..{e if e > 1 else 'E'})",
                  "ratio asclab/baseline"], rows, "lrrrr"),
        "",
    ]
    for base in bases:
        lines += [(f"(a, num_workers {base['workers']}) trained {base['steps']} optimiser steps, last loss "
                  f"{base['loss']:.3f}, {base['params']:,} parameters; (b) {ours['params']:,} parameters."), ""]
    lines.append(f"Target: asclab train vs the CPJKU 2024 baseline pipeline, CP-Mobile, TUT 2017 10-s clips, batch "
                 f"{args.batch}, {args.threads} threads | {ratio:.2f}x ({versus}) | >= {TARGET:g}x | "
                 + ("met" if ratio >= TARGET else "NOT met"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_start = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M")
    if not (Path(args.data) / "meta.txt").is_file():
        print(f"skipped: TUT 2017 clips absent ({args.data}; see shared/data/README.md)")
        return 0
    every, classes = cpjku.tut_clips(args.data)
    records = cpjku.spread_clips(every, classes, args.clips)
    subset = len(records) < len(every)
    missing = cpjku.missing_reason(args.mirror)
    if missing:
        log(missing)
    warm_page_cache(records)
    bases, commit = [], None
    with tempfile.TemporaryDirectory(prefix="asclab-bench-baseline-") as tmp:
        work = Path(tmp)
        if not missing:
            root, commit = cpjku.materialise(work / "baseline", args.mirror)
            for workers in (int(w) for w in str(args.baseline_workers).split(",")):
                log(f"(a) baseline {commit[:7]}: {len(records)} clips, {args.epochs} epoch(s), num_workers {workers}")
                bases.append(run_baseline(root, records, classes, args, workers))
                log(f"(a) fit {bases[-1]['seconds']:.1f} s")
        log(f"(b) asclab train: {len(records)} clips, {args.epochs} epoch(s)")
        ours = run_asclab(records, args.data, work / "asclab", args, subset)
        log(f"(b) wall {ours['seconds']:.1f} s")
    text = report(args, len(records), len(classes), bases, ours, missing, commit, load_start, started)
    print(text)
    if args.out is not None:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(text + "\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
