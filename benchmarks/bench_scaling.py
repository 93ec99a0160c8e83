"""How the feature cache's cost grows with the data: build time and disk size.

A SYNTHETIC set (``asclab.data.synth.make_synthetic_dataset``, 1 s clips,
mono 16-bit WAV) is generated once, large enough for the biggest size; for
each size N the first N records (train then test, in the set's order) get a
fresh ``FeatureCache.build`` in an empty folder with a recipe's front end
(default: the DCASE 2024 / Gao & Lee 2024 one, 32 kHz, 256 mels; the set is
written at the recipe's sample rate, so no resampling). Reported per size:
build time (decoding, features, float16 HDF5 writing), file size, time and
bytes per clip, the cost of finding the finished cache again (hashing the
file list) and of reading every row back once.

    python benchmarks/bench_scaling.py [--quick] [--sizes 100,400,1600] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke pass: sizes 20,40,80")
    p.add_argument("--sizes", default="100,400,1600", help="numbers of clips")
    p.add_argument("--recipe", default="gao_lee2024_split100", help="recipe whose front end builds the cache")
    p.add_argument("--seconds", type=float, default=1.0, help="clip length of the synthetic set")
    p.add_argument("--threads", type=int, default=1, help="torch threads for the feature computation")
    p.add_argument("--repeats", type=int, default=3, help="builds per size (each into an empty folder); median")
    p.add_argument("--batch", type=int, default=32, help="FeatureCache.build batch size")
    p.add_argument("--workdir", type=Path, default=None, help="folder for the set and caches (default: a temp folder)")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats = "20,40,80", 1
    return args


def dataset_size(n_clips: int) -> int:
    """Smallest ``n_per_class_device`` whose synthetic set (10 scenes x (6 train
    devices x n + 9 devices x max(1, n // 2))) holds ``n_clips``."""
    n = 1
    while 10 * (6 * n + 9 * max(1, n // 2)) < n_clips:
        n += 1
    return n


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    load_start = os.getloadavg()
    import torch

    from asclab.config import load_recipe
    from asclab.data import load_audio
    from asclab.data.synth import make_synthetic_dataset
    from asclab.features import FeatureCache, FeatureConfig, feature_shape

    torch.set_num_threads(args.threads)
    sizes = sorted(bl.parse_ints(args.sizes))
    cfg = FeatureConfig.from_dict(load_recipe(args.recipe)["features"])
    rows = []
    with tempfile.TemporaryDirectory(prefix="asclab-bench-scaling-", dir=args.workdir) as tmp:
        t0 = time.perf_counter()
        n_per = dataset_size(max(sizes))
        index = make_synthetic_dataset(Path(tmp) / "synth", n_per_class_device=n_per, seconds=args.seconds,
                                       sample_rate=cfg.sample_rate, seed=0)
        t_synth = time.perf_counter() - t0
        records = list(index.train) + list(index.test)
        shape = feature_shape(cfg, int(round(args.seconds * cfg.sample_rate)))

        def loader(rec):
            return load_audio(rec.path, cfg.sample_rate, channels=cfg.channels, duration=args.seconds)

        def build(subset, folder):
            shutil.rmtree(folder, ignore_errors=True)
            return FeatureCache.build(subset, cfg, loader, folder, batch_size=args.batch, progress=False,
                                      duration=args.seconds)

        build(records[:8], Path(tmp) / "warm-up").close()  # lazy set-up (filterbank, h5py) stays out of the timings
        for n in sizes:
            subset = records[:n]
            folder = Path(tmp) / f"cache-{n}"
            t_build = bl.med([bl.timed(lambda: build(subset, folder).close()) for _ in range(max(1, args.repeats))])
            (path,) = folder.glob("features-*.h5")
            size = path.stat().st_size
            hit: list = []
            t_hit = bl.timed(lambda: hit.append(FeatureCache.build(subset, cfg, loader, folder, progress=False,
                                                                   duration=args.seconds)))
            cache = hit[0]
            t_read = bl.timed(lambda: [cache[i] for i in range(len(cache))])
            cache.close()
            rows.append([n, f"{t_build:.2f}", bl.fmt_ms(t_build / n), f"{size / 2**20:.2f}", f"{size / n / 1024:.1f}",
                         bl.fmt_ms(t_hit), bl.fmt_ms(t_read / n)])
            print(f"[bench_scaling] {n} clips: {t_build:.1f} s", file=sys.stderr, flush=True)

    payload = 2 * shape[0] * shape[1] * shape[2]
    first, last = rows[0], rows[-1]
    growth = (float(last[1]) / float(first[1])) / (last[0] / first[0])
    lines = [
        f"### Feature-cache scaling (bench_scaling.py, {time.strftime('%Y-%m-%d %H:%M')})",
        "",
        bl.machine_line(load_start, [args.threads]),
        f"SYNTHETIC clips of {args.seconds:g} s at {cfg.sample_rate} Hz mono (generated in {t_synth:.0f} s, "
        f"{len(records)} clips), front end of recipe `{args.recipe}` -> {shape[0]}x{shape[1]}x{shape[2]} per clip "
        f"(float16 payload {payload / 1024:.1f} KiB/clip), build batch {args.batch}, torch threads {args.threads}; "
        f"build time: median of {args.repeats} build(s), each into an empty folder, after one warm-up build; "
        "finding and reading: single measurements.",
        "",
        bl.table(["clips", "build s", "build ms/clip", "file MiB", "KiB/clip", "finding the built cache ms",
                  "read all rows, ms/clip"], rows),
        "",
        f"Build time per clip at {last[0]} clips relative to {first[0]} clips: {growth:.2f}x "
        "(1.00x = linear growth).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
