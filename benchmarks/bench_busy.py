"""The demo on a quiet machine and beside two CPU-bound processes, side by side.

``asclab demo --quiet`` (shortened with ``--epochs``) runs as a user would run
it, with the CLI's default thread policy (``asclab.terminal.default_threads``:
the free physical cores by the load average, 1 when the load reaches the core
count). Then the same with two busy-loop processes running beside it, started
``--settle`` seconds earlier so the 1-minute load average the policy reads has
seen them (on a real busy machine the other jobs have been running for a while).
With ``--torch-default`` a third run repeats the busy case with ``--threads 0``
(torch's own thread count, the behaviour before the policy) to show what the
policy avoids. Each run gets a fresh output folder (feature cache included)
with a copy of one synthesised data set, so the runs do the same work. The
target (issue 15): busy at most 2x quiet.

    python benchmarks/bench_busy.py [--epochs 2] [--settle 45] [--torch-default]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BURN = "while True: pass"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=2, help="demo epochs (the full demo trains more)")
    p.add_argument("--burners", type=int, default=2, help="CPU-bound processes beside the busy run")
    p.add_argument("--settle", type=float, default=45.0,
                   help="seconds the burners run before the demo starts (the load average lags)")
    p.add_argument("--torch-default", action="store_true", help="also the busy run with --threads 0")
    p.add_argument("--quick", action="store_true", help="smoke pass: 1 epoch, short settle")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.settle = 1, 5.0
    return args


def demo(work: Path, name: str, data: Path, epochs: int, threads: int | None) -> tuple[float, int, str]:
    """One ``asclab demo`` in ``work/name``: (seconds, threads chosen, last stderr line)."""
    out = work / name
    shutil.copytree(data, out / "synthetic_data")
    cmd = [sys.executable, "-m", "asclab.cli"] + (["--threads", str(threads)] if threads is not None else []) + [
        "demo", "--out", str(out), "--epochs", str(epochs), "--quiet"]
    probe = ("import os; from asclab.terminal import default_threads; print(default_threads())"
             if threads is None else f"print({threads or os.cpu_count()})")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    chosen = int(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env).stdout or 0)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"demo {name} failed:\n{proc.stderr[-2000:]}")
    tail = (proc.stderr.strip().splitlines() or [""])[-1]
    return seconds, chosen, tail


def with_burners(n: int, settle: float, fn):
    procs = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(n)]
    try:
        time.sleep(settle)
        load = os.getloadavg()[0]
        return fn(), load
    finally:
        for p in procs:
            p.kill()
            p.wait()


def target_line(what: str, measured: str, target: str, met: bool) -> str:
    """The line ``run_all.py`` collects into its table of issue 15's targets."""
    return f"Target: {what} | {measured} | {target} | {'met' if met else 'NOT met'}"


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    from asclab.data.synth import make_synthetic_dataset

    rows = []
    with tempfile.TemporaryDirectory(prefix="asclab-busy-") as tmp:
        work = Path(tmp)
        data = work / "data"
        make_synthetic_dataset(data, seconds=1.0, sample_rate=32000, seed=0, n_per_class_device=20)
        load = os.getloadavg()[0]
        rows.append(("quiet (no extra process)", load, *demo(work, "quiet", data, args.epochs, None)))
        (res, load) = with_burners(args.burners, args.settle, lambda: demo(work, "busy", data, args.epochs, None))
        rows.append((f"{args.burners} CPU-bound processes beside it", load, *res))
        if args.torch_default:
            (res, load) = with_burners(args.burners, args.settle,
                                       lambda: demo(work, "busy0", data, args.epochs, 0))
            rows.append((f"{args.burners} CPU-bound processes, --threads 0 (torch's default)", load, *res))
    quiet_s = rows[0][2]
    lines = [
        f"### The demo on a busy machine (bench_busy.py, {time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"`asclab demo --epochs {args.epochs} --quiet`, each run in a fresh folder (feature cache included); "
        f"{os.cpu_count()} cores. Load = 1-minute load average when the demo started (other users' jobs included).",
        "",
        "| run | load at start | torch threads | seconds | vs quiet |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, load, seconds, threads, _tail in rows:
        lines.append(f"| {name} | {load:.2f} | {threads} | {seconds:.1f} | {seconds / quiet_s:.2f}x |")
    busy = rows[1][2] / quiet_s
    lines += ["", f"Busy / quiet: {busy:.2f}x (target at most 2x: {'met' if busy <= 2.0 else 'NOT met'}).",
              target_line(f"demo beside {args.burners} CPU-bound processes / quiet", f"{busy:.2f}x", "<= 2x",
                          busy <= 2.0), ""]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
