"""Training speed on CPU for every registered model at its paper's input shape.

For each model (``benchlib.MODEL_SPECS``): real features (the 12 real TAU
clips through the model's recipe front end, written to an asclab feature
cache, cropped to the paper's frame count) and a few SGD steps
(cross-entropy, momentum 0.9) timed in interleaved rounds; the median round is
reported. Settings: fp32 eager at each ``--threads`` count, then at
``--variant-threads`` channels_last, bf16 autocast and ``torch.compile`` (for
the ``--compile`` models; its first call, the compilation, is timed apart).
``torch.set_flush_denormal(True)`` (what ``asclab.train.fit`` sets) is on
everywhere except in the flush comparison.

Data path: per batch, reading the HDF5 cache versus decoding + resampling the
audio files and computing the features (``FeatureExtractor``), each added to
the fp32 eager step, serially (DataLoader with no workers).

Memory: peak resident set size (Linux VmHWM, reset with /proc/self/clear_refs
before each timed step; whole process) during the steps.

    python benchmarks/bench_train.py [--quick] [--models a,b] [--threads 1,2]
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke pass: cp_mobile only, 1 step, batch 2")
    p.add_argument("--models", default=None, help="comma-separated model names (default: all)")
    p.add_argument("--threads", default="1,2", help="torch thread counts for fp32 eager")
    p.add_argument("--variant-threads", type=int, default=1,
                   help="threads for channels_last, bf16, compile, the data path and the flush test (default 1: "
                        "on a busy 2-core machine 2 threads mostly wait for each other)")
    p.add_argument("--steps", type=int, default=3, help="timed rounds (one step per setting per round)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per setting first")
    p.add_argument("--budget", type=float, default=30.0,
                   help="seconds of timed rounds per model after which no new round starts (at least one runs)")
    p.add_argument("--batch", type=int, default=None, help="batch size for every model (default: per model)")
    p.add_argument("--compile", default="cp_mobile",
                   help="models to also train with torch.compile ('all', 'none' or names; 60-120 s of compiling each)")
    p.add_argument("--flush-model", default="cp_resnet", help="model for the flush-denormal on/off comparison ('none')")
    p.add_argument("--variants", default="channels_last,bf16",
                   help="eager variants to try: channels_last, bf16 (or 'none')")
    p.add_argument("--data", type=Path, default=bl.DEFAULT_DATA, help="the shared data folder (tau-samples/)")
    args = p.parse_args(argv)
    if args.quick:
        args.models = args.models or "cp_mobile"
        args.steps, args.warmup = 1, 1
        args.batch = args.batch or 2
        args.compile = "none"
        args.flush_model = "cp_mobile" if args.flush_model == "cp_resnet" else args.flush_model
    return args


def _names(text: str, specs) -> set[str]:
    if text in ("none", ""):
        return set()
    return {s.name for s in specs} if text == "all" else {n.strip() for n in text.split(",")}


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    load_start = os.getloadavg()
    import numpy as np
    import torch
    import torch.nn.functional as F

    from asclab.data import Record, load_audio
    from asclab.features import CachedFeatureDataset, FeatureCache, FeatureExtractor

    top = args.variant_threads
    threads = sorted(set(bl.parse_ints(args.threads)) | {top})
    specs = bl.select_models(args.models)
    compile_models = _names(args.compile, specs)
    variants = [v for v in args.variants.split(",") if v and v != "none"]
    files = bl.tau_files(args.data)
    torch.set_flush_denormal(True)

    speed_rows, data_rows, flush_rows, notes = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="asclab-bench-train-") as tmp:
        for spec in specs:
            t_model = time.perf_counter()
            cfg, duration = spec.feature_config(), spec.duration()
            c, f, frames = spec.shape
            batch = args.batch or spec.train_batch
            paths = [files[i % len(files)] for i in range(batch)]
            records = [Record(path=p, label="x") for p in paths]

            def loader(rec, cfg=cfg, duration=duration):
                return load_audio(rec.path, cfg.sample_rate, channels=cfg.channels, duration=duration)

            torch.set_num_threads(top)
            cache = FeatureCache.build(records, cfg, loader, Path(tmp) / spec.name, duration=duration, progress=False)
            ds = CachedFeatureDataset(cache, [0] * len(records))
            extractor = FeatureExtractor(cfg).eval()

            def crop(x: torch.Tensor, frames=frames, shape=spec.shape) -> torch.Tensor:
                if x.shape[1:3] != shape[:2] or x.shape[-1] < frames:
                    raise SystemExit(f"{spec.name}: features {tuple(x.shape[1:])} do not fit the paper shape {shape}")
                return x[..., :frames].contiguous()

            def read_cache(ds=ds) -> torch.Tensor:
                return crop(torch.stack([ds[i]["x"] for i in range(len(ds))]))

            def load_waves(records=records) -> torch.Tensor:
                return torch.from_numpy(np.stack([loader(r) for r in records]))

            waves = load_waves()

            def compute(waves=waves, extractor=extractor) -> torch.Tensor:
                with torch.inference_mode():
                    return crop(extractor(waves))

            x = read_cache()
            y = torch.arange(batch) % 10
            torch.set_flush_denormal(False)  # (with it on, the product below would be flushed to zero)
            dlogits = torch.randn(batch, 10, generator=torch.Generator().manual_seed(0)) * 1e-39
            torch.set_flush_denormal(True)
            base = spec.create()
            n_params = sum(p.numel() for p in base.parameters())

            def make(channels_last=False, bf16=False, compiled=False, n_threads=top, flush=True, denormal_grad=False):
                model = copy.deepcopy(base).train()
                xin = x
                if channels_last:
                    model = model.to(memory_format=torch.channels_last)
                    xin = x.contiguous(memory_format=torch.channels_last)
                opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
                run = torch.compile(model) if compiled else model

                def step():
                    torch.set_num_threads(n_threads)
                    torch.set_flush_denormal(flush)
                    opt.zero_grad(set_to_none=True)
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        out = run(xin)
                        loss = F.cross_entropy(out, y)
                    if denormal_grad:  # what a very confident softmax hands back: gradients below 1.2e-38
                        out.backward(dlogits)
                    else:
                        loss.backward()
                    opt.step()
                    torch.set_flush_denormal(True)
                    return model, opt
                return step

            settings = {f"fp32 eager, {n} thr": make(n_threads=n) for n in threads}
            if "channels_last" in variants:
                settings[f"channels_last, {top} thr"] = make(channels_last=True)
            if "bf16" in variants:
                settings[f"bf16 autocast, {top} thr"] = make(bf16=True)
            compile_s = None
            if spec.name in compile_models:
                step = make(compiled=True)
                try:
                    compile_s = bl.timed(step)  # first call compiles forward and backward
                    settings[f"torch.compile, {top} thr"] = step
                except Exception as exc:  # noqa: BLE001 - report, do not abort the other models
                    notes.append(f"{spec.name}: torch.compile failed ({type(exc).__name__}: {str(exc)[:120]})")
            peaks = {k: 0.0 for k in settings}

            def with_peak(name, fn):
                def run():
                    bl.reset_peak_rss()
                    fn()
                    peaks[name] = max(peaks[name], bl.peak_rss_mib())
                return run

            rss_before = bl.peak_rss_mib() if bl.reset_peak_rss() else float("nan")
            times = bl.interleaved({k: with_peak(k, fn) for k, fn in settings.items()}, args.steps, args.warmup,
                                   args.budget)
            step_s = {k: bl.med(v) for k, v in times.items()}
            rate = {k: batch / v for k, v in step_s.items()}
            best = max(rate, key=rate.get)
            same_threads = f"fp32 eager, {top} thr"
            cells = [f"{bl.fmt_rate(rate[f'fp32 eager, {n} thr'])}" for n in threads]
            for label in ("channels_last", "bf16 autocast", "torch.compile"):
                key = f"{label}, {top} thr"
                if key in rate:
                    cell = bl.fmt_rate(rate[key])
                    if label == "torch.compile" and compile_s is not None:
                        cell += f" (compile {compile_s:.0f} s)"
                    cells.append(cell)
                else:
                    cells.append("not run")
            speed_rows.append([
                spec.name, "x".join(map(str, spec.shape)), batch, f"{n_params:,}", len(next(iter(times.values()))),
                *cells,
                f"{best} ({rate[best] / rate['fp32 eager, ' + best.rsplit(', ', 1)[1]]:.2f}x)",
                f"{max(peaks.values()):.0f} (before: {rss_before:.0f})",
            ])

            # data path: the cache versus decoding + features on the fly, each plus one fp32 eager step
            torch.set_num_threads(top)
            data_t = bl.interleaved({"cache": read_cache, "load": load_waves, "features": compute},
                                    max(3, args.steps), 1)
            t_cache, t_load, t_feat = (bl.med(data_t[k]) for k in ("cache", "load", "features"))
            t_step = step_s[same_threads]
            r_cache, r_fly = batch / (t_cache + t_step), batch / (t_load + t_feat + t_step)
            data_rows.append([spec.name, batch, bl.fmt_ms(t_cache), bl.fmt_ms(t_load), bl.fmt_ms(t_feat),
                              bl.fmt_ms(t_step), bl.fmt_rate(r_cache), bl.fmt_rate(r_fly), f"{r_cache / r_fly:.2f}x",
                              f"{(t_load + t_feat) / t_cache:.0f}x"])

            if spec.name == args.flush_model:
                flush_fns = {"on": make(flush=True), "off": make(flush=False),
                             "den on": make(flush=True, denormal_grad=True),
                             "den off": make(flush=False, denormal_grad=True)}
                ft = bl.interleaved(flush_fns, max(3, args.steps), args.warmup, args.budget)
                tiny = torch.finfo(torch.float32).tiny

                def n_denormal(step) -> int:
                    model, opt = step()
                    tensors = list(model.parameters()) + [p.grad for p in model.parameters() if p.grad is not None]
                    tensors += [v for s in opt.state.values() for v in s.values() if torch.is_tensor(v)]
                    torch.set_flush_denormal(False)  # with it on, denormals read as zero
                    try:
                        return sum(int(((t.abs() < tiny) & (t != 0)).sum()) for t in tensors)
                    finally:
                        torch.set_flush_denormal(True)

                def ratio(a, b):
                    return f"{bl.med(ft[b]) / bl.med(ft[a]):.2f}x"

                flush_rows.append([spec.name, batch, len(ft["on"]), bl.fmt_ms(bl.med(ft["on"])),
                                   bl.fmt_ms(bl.med(ft["off"])), ratio("on", "off"), n_denormal(flush_fns["off"]),
                                   bl.fmt_ms(bl.med(ft["den on"])), bl.fmt_ms(bl.med(ft["den off"])),
                                   ratio("den on", "den off"), f"{n_denormal(flush_fns['den off']):,}"])
            print(f"[bench_train] {spec.name}: {time.perf_counter() - t_model:.0f} s", file=sys.stderr, flush=True)
            cache.close()

    variant_heads = [f"{v} {top} thr" for v in ("channels_last", "bf16 autocast", "torch.compile")]
    unmeasured = bl.check_registry()
    lines = [
        f"### Training speed (bench_train.py, {time.strftime('%Y-%m-%d %H:%M')})",
        "",
        bl.machine_line(load_start, threads),
        f"Training samples per second (batch / median step time over up to {args.steps} interleaved rounds, "
        f"fewer when a model's rounds pass {args.budget:.0f} s ('rounds'), after {args.warmup} warm-up step(s)); "
        "one step = forward, cross-entropy, backward, SGD momentum update; "
        "real features (12 TAU clips through the recipe's front end) cropped to the paper's input. "
        "`torch.set_flush_denormal(True)` throughout. Peak RSS = Linux VmHWM of the whole process during a "
        "step (MiB; 'before' = the mark after resetting it, i.e. the resident size going in).",
        "",
        bl.table(["model", "input", "batch", "params", "rounds", *[f"fp32 eager {n} thr" for n in threads],
                  *variant_heads, "fastest (vs fp32 eager same threads)", "peak RSS MiB"], speed_rows,
                 "lrrrr" + "r" * (len(threads) + 3) + "lr"),
        "",
        f"Data path per batch at {top} thread(s): reading the HDF5 feature cache (file in the OS page cache) versus "
        "decoding + resampling the audio files (`asclab.data.load_audio`) and computing the features "
        "(`FeatureExtractor`), each followed by one fp32 eager step, run serially.",
        "",
        bl.table(["model", "batch", "cache read ms", "decode ms", "features ms", "step ms", "samples/s from cache",
                  "samples/s on the fly", "cache speed-up", "data cost on the fly / cache"], data_rows),
    ]
    if flush_rows:
        lines += ["", "`torch.set_flush_denormal` on versus off, same model and thread count, steps interleaved: "
                  "ordinary training steps, then steps whose backward pass starts from denormal logit gradients "
                  "(N(0, 1) x 1e-39, what a very confident softmax returns) so that denormals flow through the whole "
                  "backward pass. 'denormals' = non-zero values below 1.18e-38 in the weights, gradients and "
                  "optimizer state after one more step with flushing off.", "",
                  bl.table(["model", "batch", "rounds", "step ms, flush on", "flush off", "off / on", "denormals",
                            "denormal backward ms, flush on", "flush off", "off / on", "denormals"], flush_rows)]
    not_compiled = [s.name for s in specs if s.name not in compile_models]
    if not_compiled:
        notes.append(f"torch.compile not run for {', '.join(not_compiled)} (to keep the run short: compiling forward "
                     "and backward takes 60-120 s per model on this machine; `--compile all` runs it for every model)")
    if unmeasured:
        notes.append(f"registered models not measured (no input shape known here): {', '.join(unmeasured)}")
    lines += [""] + [f"Note: {n}" for n in notes] + ([""] if notes else [])
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
