"""Benchmark asclab's feature stage against librosa on the real TAU clips.

Same settings on both sides (McDonnell & Gao 2019: 44.1 kHz mono, 10 s,
n_fft 2048, hop 1024, 128 HTK mels, power_to_db with top_db 80). librosa runs
clip by clip in this process, as the papers ran it; asclab runs in batches.
Both sides get the same number of threads (``--threads``, default 1: torch,
OpenMP and the BLAS librosa's mel product uses), so the ratio measures the
implementation rather than the core count. Timings are the best of
``--rounds`` interleaved rounds (other jobs on a shared machine make single
runs noisy); the load average is printed with the results.

    python benchmarks/bench_features.py [--clips 240] [--threads 1] [--out results.md]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tau-samples"


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=240, help="clips per timing (the 12 real clips repeated; >= 200)")
    p.add_argument("--hpss-clips", type=int, default=24, help="clips for the (slow) librosa HPSS timing")
    p.add_argument("--batch", type=int, default=32, help="asclab batch size")
    p.add_argument("--threads", type=int, default=1, help="threads for torch, OpenMP and BLAS on both sides")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds; the best is reported")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with the TAU sample clips")
    p.add_argument("--out", type=Path, default=None, help="append the markdown results to this file")
    return p.parse_args()


ARGS = _args()
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)

import librosa  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from asclab.features import FeatureConfig, FeatureExtractor, hpss, log_mel  # noqa: E402

SR, N = 44100, 441000
SETTINGS = dict(n_fft=2048, hop_length=1024, n_mels=128, htk=True)


def load_clips(folder: Path) -> np.ndarray:
    files = sorted(folder.glob("*/*.wav"))
    if len(files) < 12:
        sys.exit(f"expected the 12 TAU sample clips under {folder}, found {len(files)}")
    clips = [librosa.util.fix_length(librosa.load(f, sr=SR, mono=True, duration=10.0)[0], size=N) for f in files]
    return np.stack(clips).astype(np.float32)


def librosa_logmel(y: np.ndarray) -> np.ndarray:
    mel = librosa.feature.melspectrogram(y=y, sr=SR, **SETTINGS)
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0)


def librosa_logmel_deltas(y: np.ndarray) -> np.ndarray:
    lm = librosa_logmel(y)
    return np.stack([lm, librosa.feature.delta(lm), librosa.feature.delta(lm, order=2)])


def scaled_log(y: np.ndarray) -> np.ndarray:
    lm = np.log(librosa.feature.melspectrogram(y=y, sr=SR, **SETTINGS) + 1e-8)
    return ((lm - lm.min()) / (lm.max() - lm.min())).astype(np.float32)


def per_clip(fn, clips: np.ndarray) -> float:
    start = time.perf_counter()
    for y in clips:
        fn(y)
    return time.perf_counter() - start


def batched(fn, clips: np.ndarray, batch: int) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(clips), batch):
            fn(torch.from_numpy(clips[i : i + batch]))
    return time.perf_counter() - start


def main() -> None:
    torch.set_num_threads(ARGS.threads)
    load_before = os.getloadavg()
    unique = load_clips(ARGS.data)
    reps = -(-max(ARGS.clips, 1) // len(unique))
    clips = np.concatenate([unique] * reps)[: ARGS.clips]
    extractor = FeatureExtractor(FeatureConfig(sample_rate=SR, deltas=True)).eval()
    ours_logmel = lambda x: log_mel(x, SR, **SETTINGS)  # noqa: E731
    ours_deltas = lambda x: extractor(x[:, None])  # noqa: E731

    # accuracy on the 12 distinct clips
    ref_lm = np.stack([librosa_logmel(y) for y in unique])
    diff_lm = float(np.abs(ours_logmel(torch.from_numpy(unique)).numpy() - ref_lm).max())
    ref_d = np.stack([librosa_logmel_deltas(y) for y in unique])
    diff_d = float(np.abs(ours_deltas(torch.from_numpy(unique)).numpy() - ref_d).max())
    specs = np.stack([scaled_log(y) for y in unique])
    ref_h = np.stack([np.stack(librosa.decompose.hpss(s, kernel_size=31)) for s in specs])
    diff_h = float(np.abs(torch.stack(hpss(specs, 31), dim=1).numpy() - ref_h).max())
    hspecs = np.concatenate([specs] * (-(-ARGS.hpss_clips // len(specs))))[: ARGS.hpss_clips]

    rows = {
        "log-mel": (
            lambda: per_clip(librosa_logmel, clips),
            lambda: batched(ours_logmel, clips, ARGS.batch),
            len(clips), diff_lm, "dB",
        ),
        "log-mel + deltas + delta-deltas": (
            lambda: per_clip(librosa_logmel_deltas, clips),
            lambda: batched(ours_deltas, clips, ARGS.batch),
            len(clips), diff_d, "dB",
        ),
        "HPSS (128 x 431, kernel 31)": (
            lambda: per_clip(lambda s: librosa.decompose.hpss(s, kernel_size=31), hspecs),
            lambda: batched(lambda s: hpss(s, 31), hspecs, ARGS.batch), len(hspecs), diff_h, "",
        ),
    }
    # (the accuracy pass above has warmed up both sides: caches, lazy imports)
    times = {name: [] for name in rows}  # per round: (librosa seconds, asclab seconds)
    for _ in range(max(1, ARGS.rounds)):
        for name, (lib_fn, ours_fn, *_rest) in rows.items():
            times[name].append((lib_fn(), ours_fn()))
    best = {name: [min(t[0] for t in ts), min(t[1] for t in ts)] for name, ts in times.items()}
    load_after = os.getloadavg()

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import benchlib as bl  # after the thread variables above are set (benchlib imports numpy)

    lines = [
        f"### asclab features vs librosa ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"Machine: {os.cpu_count()} cores ({cpu}; CPU flags: {bl.cpu_flags()}; torch CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}), torch {torch.__version__}, torch threads {torch.get_num_threads()}, "
        f"librosa {librosa.__version__}, numpy {np.__version__}; threads per side: {ARGS.threads}; "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after (shared machine: timings are noisy).",
        f"Clips: the {len(unique)} real TAU sample clips at 44.1 kHz mono, 10 s, repeated to {len(clips)} "
        f"(HPSS: {len(hspecs)}); librosa per clip, asclab in batches of {ARGS.batch}; best of {ARGS.rounds} rounds.",
        "",
        "| pipeline | librosa clips/s | asclab clips/s | speed-up | speed-up, median of rounds | max abs diff |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, (_, _, n, diff, unit) in rows.items():
        lib_rate, ours_rate = n / best[name][0], n / best[name][1]
        median_ratio = float(np.median([lib_t / ours_t for lib_t, ours_t in times[name]]))
        lines.append(
            f"| {name} | {lib_rate:.1f} | {ours_rate:.1f} | {ours_rate / lib_rate:.2f}x | {median_ratio:.2f}x "
            f"| {diff:.2e}{' ' + unit if unit else ''} |"
        )
    hp_lib, hp_ours = (1000 * t / len(hspecs) for t in best["HPSS (128 x 431, kernel 31)"])
    lines += ["", f"HPSS cost per clip: librosa {hp_lib:.1f} ms, asclab {hp_ours:.1f} ms."]
    for name, goal in (("log-mel", 5.0), ("log-mel + deltas + delta-deltas", 6.0)):  # issue 15
        ratio, diff = best[name][0] / best[name][1], rows[name][3]
        lines.append(f"Target: {name} vs librosa at {ARGS.threads} thread(s), within 1e-3 dB | {ratio:.2f}x, "
                     f"{diff:.1e} dB | >= {goal:g}x | {'met' if ratio >= goal and diff <= 1e-3 else 'NOT met'}")
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if ARGS.out is not None:
        with open(ARGS.out, "a", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
