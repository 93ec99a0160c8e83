"""Batch prediction over real 10-s clips: asclab against the DCASE 2025 winner's own package.

Three ways from a folder of audio files to one decision per file, run side by side in
one run, on the same files and device ids, with the same model (DCASE 2025 task 1
Karasin_JKU system 4, ``shared/checkpoints/karasin_jku_2025_sys4.ckpt``):

* (a) asclab predict: ``asclab import`` of the checkpoint (into a temp folder), then the
  Predictor that ``asclab predict`` runs (``Predictor.load`` + ``classify_files``, the
  command's whole-file default for this model), with the command's start-up settings
  (``asclab.memory.keep_freed_memory``);
* (b) the published package (github ``turquenite/dcase2025_task1_inference``, read from the
  bare mirror the ``fetch`` tool makes, written to a temp folder unedited, torchaudio and
  torchvision replaced by the torch stand-ins of ``published_package_shims``): its own
  ``load_model`` and ``_common.predict(..., use_cuda=False)``;
* (c) the package ``asclab package`` writes from the imported model: its own ``load_model``
  and ``predict``.

Each (way, thread count) runs in a fresh process (``torch.set_num_threads``): the model is
loaded (timed apart), a warm-up call classifies 2 files, then all ``--files`` clips are
classified once with device ``a`` and once with an unknown device id (``unknown``: every
way then uses the general model). Files/s = files / wall time of that call (reading,
resampling, features, network). Peak memory = the process's ru_maxrss (``os.wait4``).
With ``--rounds`` > 1 the processes are interleaved round by round and the median is
reported. Decisions: argmax class per file, compared with (b) for every file and device;
logits: the largest |difference| to (b).

Files: ``--set tut2017`` (default; 324 real 10-s clips, 44.1 kHz mono FLAC, 441,001 frames
each, so the published package's batching pads nothing; ``--files`` of them, evenly spread
over the sorted list) or ``--set tau-samples`` (the 12 TAU/TUT sample WAVs, 44.1/48 kHz,
mono/stereo). TUT 2017 has no device ids and is not the task's data (15 classes, another
device): device ``a`` (the TAU reference device, whose recordings TUT 2017 resembles) and the
general model are both timed; the decisions only serve to compare the three ways.

Before timing, the stand-ins are checked: the package's logits against
``karasin_jku_2025_sys4.reference.json`` (its ``whole_file`` logits, one file per call, all 12
sample files and 7 device ids). Without the mirror, the checkpoint or the clips, the
benchmark prints one line saying why and exits 0.

    python benchmarks/bench_predict_package.py [--files 48] [--threads 1,2] [--rounds 1] [--set tut2017]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib as bl  # this folder is on sys.path: the script's own (python benchmarks/bench_*.py)
import published_package_shims as shims

HERE = Path(__file__).resolve().parent

WAYS = ("asclab", "published", "packaged")
NCHW = "asclab_nchw"  # --with-nchw: (a) with its fp16 network put back in NCHW (contiguous) memory format
NAMES = {"asclab": "(a) asclab predict", "published": "(b) published Karasin_JKU package",
         "packaged": "(c) asclab package output", NCHW: "(a') asclab predict, fp16 network NCHW"}
DEVICES = ("a", "unknown")  # unknown: every way falls back to the general (base) model
PACKAGE_NAME = "Bench_ASCLAB_task1"
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_fp16")
WARMUP_FILES = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=48, help="clips to classify per call (default 48)")
    p.add_argument("--set", dest="clip_set", choices=("tut2017", "tau-samples"), default="tut2017")
    p.add_argument("--threads", default="1,2", help="torch thread counts")
    p.add_argument("--rounds", type=int, default=1, help="interleaved rounds of fresh processes (median)")
    p.add_argument("--data", type=Path, default=bl.DEFAULT_DATA, help="the shared data folder")
    p.add_argument("--mirror", type=Path, default=shims.MIRROR, help="bare git mirror of the published package")
    p.add_argument("--skip-check", action="store_true", help="skip the stand-in check against the reference JSON")
    p.add_argument("--quick", action="store_true", help="smoke pass: 8 files, 1 thread")
    p.add_argument("--with-nchw", action="store_true",
                   help="also time (a) with its fp16 network in NCHW (contiguous) memory format, as before "
                        "asclab.evaluate.fast_path.channels_last_if_exact")
    p.add_argument("--omp-wait-policy", choices=("PASSIVE", "ACTIVE"), default=None,
                   help="OMP_WAIT_POLICY for every worker (default: as in this environment; libgomp's default "
                        "spins, which on a busy machine costs 2-thread runs dearly)")
    p.add_argument("--worker", choices=(*WAYS, NCHW), help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--worker-threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.files, args.threads = 8, "1"
    return args


# ---- one process: one way at one thread count -----------------------------------------------

def _quiet():
    """The packages print progress (tqdm, prints): kept out of the timings' output."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    return stack


def _runner(way: str, work: Path):
    """``(load seconds, predict(files, device_ids) -> (logits [N, K] list, classes), front(files))``
    for one way; ``front`` runs only the way's front end (read, mono mix, resample, log-mel)."""
    import torch

    t0 = time.perf_counter()
    if way in ("asclab", NCHW):
        from asclab.evaluate.inference import Predictor

        pred = Predictor.load(work / "sys4.ckpt")
        if way == NCHW:
            pred.backend.model.to(memory_format=torch.contiguous_format)
        load_s = time.perf_counter() - t0

        def run(files, ids):
            results = pred.classify_files(files, devices=ids, progress=False)
            return [[float(v) for v in r.logits] for r in results], list(pred.classes)

        def front(files):  # as asclab.evaluate.windowing.iter_windows reads a whole file, then the features
            from asclab.data.audio import load_audio

            win = pred.windowing()
            with torch.no_grad():
                for f in files:
                    wave = load_audio(f, win.sample_rate, win.channels, resampler=win.resampler)
                    pred.backend.features(torch.from_numpy(wave[None]))
        return load_s, run, front
    if way == "published":
        sys4, common = shims.import_package(work / "published")
        model = sys4.load_model(model_file_path=str(shims.CHECKPOINT))
    else:
        import importlib

        sys.path.insert(0, str(work / "pkg"))
        module = importlib.import_module(f"{PACKAGE_NAME}.{PACKAGE_NAME}_1")
        common = importlib.import_module(f"{PACKAGE_NAME}._common")
        model = module.load_model()
    load_s = time.perf_counter() - t0

    def run(files, ids):
        with _quiet():
            if way == "published":
                logits, classes = common.predict(files, ids, model_or_path=model, use_cuda=False)
            else:
                logits, classes = common.predict(files, ids, model, use_cuda=False)
        return [[float(v) for v in t.float()] for t in logits], list(classes)

    def front(files):
        with _quiet():
            return common.load_inputs(files, ["a"] * len(files), model)
    return load_s, run, front


def worker(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(args.worker_threads)
    if args.worker in ("asclab", NCHW):  # what the asclab command does at start (asclab.cli.run.main)
        from asclab.memory import keep_freed_memory

        keep_freed_memory()
    files = json.loads((args.work / "files.json").read_text())
    load_s, run, front = _runner(args.worker, args.work)
    run(files[:WARMUP_FILES], ["a"] * min(WARMUP_FILES, len(files)))
    out = {"way": args.worker, "threads": torch.get_num_threads(), "load_s": load_s, "passes": {}}
    for dev in DEVICES:
        t0, c0 = time.perf_counter(), _cpu_seconds()
        logits, classes = run(files, [dev] * len(files))
        out["passes"][dev] = {"seconds": time.perf_counter() - t0, "cpu_s": _cpu_seconds() - c0, "logits": logits}
        out["classes"] = classes
    t0 = time.perf_counter()
    front(files)  # after the timed calls: the front end alone, for the breakdown
    out["front_s"] = time.perf_counter() - t0
    args.worker_out.write_text(json.dumps(out))
    return 0


def _cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)  # all threads of the process (the packages' reader pools too)
    return r.ru_utime + r.ru_stime


def spawn(way: str, threads: int, work: Path, wait_policy: str | None = None) -> dict:
    """Run one worker process; its JSON result plus its peak RSS (MiB, ``os.wait4``)."""
    out = work / f"{way}-{threads}.json"
    out.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if wait_policy:
        env["OMP_WAIT_POLICY"] = wait_policy
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", way, "--work", str(work),
           "--worker-threads", str(threads), "--worker-out", str(out)]
    with open(work / f"{way}-{threads}.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=HERE.parent)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = (work / f"{way}-{threads}.log").read_text().strip().splitlines()[-12:]
        raise RuntimeError(f"{way} at {threads} thread(s) failed (exit {proc.returncode}):\n" + "\n".join(tail))
    result = json.loads(out.read_text())
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    return result


# ---- set-up -------------------------------------------------------------------------------------

def clip_files(data: Path, clip_set: str, n: int) -> list[Path]:
    if clip_set == "tau-samples":
        found = sorted((data / "tau-samples").glob("*/*.wav"))
    else:
        found = sorted((data / "tut2017" / "audio").glob("*.flac"))
    if not found:
        return []
    n = max(1, min(n, len(found)))
    return [found[i * len(found) // n] for i in range(n)]


def asclab_cli(*argv: str) -> None:
    exe = Path(sys.executable).with_name("asclab")
    cli = "import sys; from asclab.cli import main; sys.exit(main())"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", cli]
    proc = subprocess.run(cmd + list(argv), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"asclab {shlex.join(argv)} failed: {proc.stderr.strip()[-600:]}")


def prepare(work: Path, mirror: Path) -> str:
    """The imported model, its package and the published package under ``work``; the package commit."""
    asclab_cli("--threads", "1", "import", str(shims.CHECKPOINT), "--out", str(work / "sys4.ckpt"))
    asclab_cli("--threads", "1", "package", str(work / "sys4.ckpt"), "--name", PACKAGE_NAME,
               "--out", str(work / "pkg"), "--force")
    _, commit = shims.materialise(work / "published", mirror)
    return commit


def check_standins(work: Path, data: Path) -> dict:
    """The stand-in check in a fresh 1-thread process (``published_package_shims.check_against_reference``)."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import torch; torch.set_num_threads(1); "
            "import published_package_shims as s; from pathlib import Path; "
            "print(json.dumps(s.check_against_reference(Path(sys.argv[2]), Path(sys.argv[3]))))")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code, str(HERE), str(work / "published"),
                           str(data / "tau-samples")], capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"stand-in check failed: {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- machine ------------------------------------------------------------------------------------

def cpu_flags() -> str:
    """Which of ``CPU_FLAGS`` the CPU has (avx512_fp16/amx_fp16 decide the fp16 convolution kernels)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(next(line for line in f if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        return "unknown"
    return ", ".join(f"{fl} {'yes' if fl in flags else 'no'}" for fl in CPU_FLAGS)


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---- report -------------------------------------------------------------------------------------

def compare(last: dict, ways: tuple[str, ...], threads: list[int], ref_way: str = "published") -> list[list[str]]:
    """Rows of decisions differing from (b) at the first thread count, and the largest logit difference."""
    import numpy as np

    rows = []
    for way in ways:
        for t in threads:
            if way == ref_way and t == threads[0]:
                continue
            for dev in DEVICES:
                got = np.array(last[(way, t)]["passes"][dev]["logits"])
                ref = np.array(last[(ref_way, threads[0])]["passes"][dev]["logits"])
                dis = int((got.argmax(1) != ref.argmax(1)).sum())
                rows.append([NAMES[way], str(t), dev, f"{dis} / {len(ref)}", f"{np.abs(got - ref).max():.2e}"])
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    why = shims.missing_reason(args.mirror)
    files = clip_files(args.data, args.clip_set, args.files)
    if why is None and not files:
        why = f"no clips under {args.data / args.clip_set} (the shared data folder, see its README.md)"
    if why is None and not args.skip_check and not sorted((args.data / "tau-samples").glob("*/*.wav")):
        why = f"no TAU sample clips under {args.data / 'tau-samples'} for the stand-in check"
    if why:
        print(f"bench_predict_package skipped: {why}")
        return 0
    import numpy as np
    import torch

    threads = bl.parse_ints(args.threads)
    ways = (*WAYS, NCHW) if args.with_nchw else WAYS
    started, load_start, t_all = time.strftime("%Y-%m-%d %H:%M %Z"), loadavg(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_predict_package_") as tmp:
        work = Path(tmp)
        commit = prepare(work, args.mirror)
        (work / "files.json").write_text(json.dumps([str(f) for f in files]))
        check = None if args.skip_check else check_standins(work, args.data)
        print(f"[bench_predict_package] set-up {time.perf_counter() - t_all:.0f} s; {len(files)} files",
              file=sys.stderr)
        runs: dict[tuple[str, int], list[dict]] = {}
        for r in range(max(1, args.rounds)):
            for t in threads:
                for way in ways:
                    t0 = time.perf_counter()
                    runs.setdefault((way, t), []).append(spawn(way, t, work, args.omp_wait_policy))
                    print(f"[bench_predict_package] round {r + 1} {way} {t} thr: {time.perf_counter() - t0:.1f} s",
                          file=sys.stderr, flush=True)
    load_end = loadavg()
    n = len(files)

    def med_of(way, t, fn):
        return bl.med([fn(x) for x in runs[(way, t)]])

    def rate(way, t, dev):
        return med_of(way, t, lambda x: n / x["passes"][dev]["seconds"])

    perf_rows, ratio_rows, split_rows = [], [], []
    for way in ways:
        for t in threads:
            perf_rows.append([NAMES[way], str(t), *(bl.fmt_rate(rate(way, t, d)) for d in DEVICES),
                              f"{med_of(way, t, lambda x: 1000 * x['passes']['a']['cpu_s'] / n):.0f}",
                              f"{med_of(way, t, lambda x: x['load_s']):.2f}",
                              f"{max(x['peak_rss_mib'] for x in runs[(way, t)]):.0f}"])
            total = med_of(way, t, lambda x: x["passes"]["a"]["seconds"] / n)
            front = med_of(way, t, lambda x: x["front_s"] / n)
            rest = med_of(way, t, lambda x: (x["passes"]["a"]["seconds"] - x["front_s"]) / n)  # per round
            split_rows.append([NAMES[way], str(t), bl.fmt_ms(total), bl.fmt_ms(front),
                               bl.fmt_ms(rest) if rest > 0 else "-"])
    for t in threads:
        for way in (w for w in ways if w != "published"):
            ratio_rows.append([f"{NAMES[way]} / (b)", str(t),
                               *(f"{rate(way, t, d) / rate('published', t, d):.2f}x" for d in DEVICES)])
    last = {k: v[-1] for k, v in runs.items()}
    ref_dec = {d: np.array(last[("published", threads[0])]["passes"][d]["logits"]).argmax(1) for d in DEVICES}
    asclab_dis = sum(int((np.array(last[("asclab", t)]["passes"][d]["logits"]).argmax(1) != ref_dec[d]).sum())
                     for t in threads for d in DEVICES)
    ratio1 = rate("asclab", threads[0], "a") / rate("published", threads[0], "a")
    classes = last[("published", threads[0])]["classes"]
    counts = np.bincount(ref_dec["a"], minlength=len(classes))
    spread = ", ".join(f"{classes[i]} {c}" for i, c in enumerate(counts) if c)

    shown = shlex.join(["python", "benchmarks/bench_predict_package.py", *(sys.argv[1:] if argv is None else argv)])
    lines = [
        f"### Batch prediction: asclab vs the published DCASE 2025 winner package ({started})",
        "",
        f"Command: `{shown}`; git revision {bl.git_revision()}.",
        (f"Machine: {os.cpu_count()} cores, {bl.cpu_name()}; CPU flags: {cpu_flags()}; torch {torch.__version__} "
        f"(CPU capability {torch.backends.cpu.get_cpu_capability()}); /proc/loadavg at start `{load_start}`, "
        f"at end `{load_end}` (a shared machine: ratios measured side by side are more trustworthy than "
        "absolute numbers, and 2-thread figures suffer most from other jobs)."),
        ("Model: Karasin_JKU 2025 system 4 (`karasin_jku_2025_sys4.ckpt`: fp16 network, a file as one 256x641 "
        f"input). Published package: `turquenite/dcase2025_task1_inference` at {commit[:7]}, unedited, with "
        "torch stand-ins for torchaudio/torchvision (`benchmarks/published_package_shims.py`)."),
        f"Clips: {n} real 10-s clips of `{args.clip_set}` (evenly spread over the sorted list; "
        + ("44.1 kHz mono FLAC, 441,001 frames each" if args.clip_set == "tut2017" else "44.1/48 kHz WAV")
        + "); device ids: `a` for every file (TUT 2017 has none) and `unknown` (every way then uses the general "
        f"model). (b)'s decisions with device a: {spread}.",
        (f"Each way at each thread count in a fresh process: load, warm-up on {WARMUP_FILES} files, then one "
        f"call over all {n} files per device id; {args.rounds} round(s), median. CPU ms/file: user + system "
        "time of all the process's threads during the device-a call (the published package reads files in a "
        "pool of 16 threads). Peak RSS: ru_maxrss of the process. OMP_WAIT_POLICY: "
        f"{args.omp_wait_policy or os.environ.get('OMP_WAIT_POLICY') or 'not set (libgomp spins while waiting)'}."),
        "",
    ]
    if check is not None:
        lines += [(f"Stand-in check (the package's own `_common.predict`, one file per call, 1 thread): "
                  f"{check['pairs']} file/device pairs against `karasin_jku_2025_sys4.reference.json`: max |logit "
                  f"difference| {check['max_abs_logit_diff']:.2e}, argmax differences {check['argmax_differences']}; "
                  f"filterbank and window vs the checkpoint's `mel.*` buffers: "
                  f"{check['filterbank_vs_checkpoint']:.1e}, {check['window_vs_checkpoint']:.1e}."), ""]
    lines += [
        bl.table(["way", "threads", "files/s, device a", "files/s, unknown device", "CPU ms/file",
                  "model load s", "peak RSS MiB"], perf_rows),
        "",
        bl.table(["ratio", "threads", "device a", "unknown device"], ratio_rows),
        "",
        ("Where the time goes (device a, ms per file): the whole call; the front end alone (read, mono mix, "
        "resample, log-mel; timed after the calls, as each way computes it); the rest (network, batching, "
        "bookkeeping) as the difference, per round ('-': the front end alone took longer than the call, the "
        "machine's load having changed in between)."),
        "",
        bl.table(["way", "threads", "call", "front end", "rest"], split_rows),
        "",
        f"Decisions (argmax class per file) and logits against (b) at {threads[0]} thread(s):",
        "",
        bl.table(["way", "threads", "device", "decisions differing", "max abs logit diff"],
                 compare(last, ways, threads), "lrlrr"),
        "",
        f"Target: asclab predict vs published package, files/s at {threads[0]} thread(s), device a, decisions "
        f"| {ratio1:.2f}x, {asclab_dis} differing | >= 2x, identical | "
        + ("met" if ratio1 >= 2 and asclab_dis == 0 else "NOT met"),
    ]
    text = "\n".join(lines)
    print(text)
    print(f"[bench_predict_package] total {time.perf_counter() - t_all:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
