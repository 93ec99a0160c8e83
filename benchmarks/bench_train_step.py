"""One CP-Mobile training step on 10-s clips (issue 15's setting), per variant,
against the machine's measured dense convolution rate.

Setting: CP-Mobile of recipe ``gao_lee2024_split100`` (256 mel bins), the input
of a 10-s clip through that recipe's front end, batch 64, ``--threads 2``, one
SGD step (cross-entropy, momentum 0.9) from features already in memory (what
the feature cache gives). Variants: fp32, channels_last, bf16 autocast (when
the CPU has AVX512-BF16 or AMX; torch's CPU autocast), and both. Reported:
samples/s (median of ``--steps`` interleaved rounds after ``--warmup``), the
achieved multiply-accumulates per second (3 x the forward MACs per sample,
forward + two backward products, ``asclab.compress.complexity.count_macs``),
and that rate against a dense 3x3 convolution's (64 -> 64 channels, 64 x 128
map, batch 8, timed the same way, fp32 and bf16): the distance to the limit.
Also per variant: the process's user and kernel (sys) CPU seconds and minor page
faults per step. The process keeps freed memory for reuse as the ``asclab``
command does (``asclab.memory.keep_freed_memory``; ``--malloc-default`` leaves
glibc's malloc as it is, which mmaps and zero-fills every large tensor afresh).

    python benchmarks/bench_train_step.py [--steps 3] [--threads 2] [--batch 64] [--malloc-default]
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seconds", type=float, default=10.0, help="clip length")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="smoke pass: batch 2, 1-s clips, 1 step")
    p.add_argument("--malloc-default", action="store_true", help="leave glibc malloc as it is (asclab.memory)")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.seconds, args.steps, args.warmup = 2, 1.0, 1, 0
    return args


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return set(next(line for line in f if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        return set()


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    from asclab.memory import keep_freed_memory

    kept = False if args.malloc_default else keep_freed_memory()
    import torch
    from torch import nn

    from asclab.compress.complexity import count_macs
    from asclab.config import load_recipe
    from asclab.features import FeatureConfig
    from asclab.features.extractor import feature_shape
    from asclab.models import create_model

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    load0 = os.getloadavg()
    recipe = load_recipe("gao_lee2024_split100")
    fcfg = FeatureConfig.from_dict(recipe["features"])
    shape = feature_shape(fcfg, int(round(args.seconds * fcfg.sample_rate)))
    kwargs = {k: v for k, v in recipe["model"].items() if k != "name"}
    torch.manual_seed(0)
    base = create_model("cp_mobile", num_classes=10, in_chans=shape[0], **kwargs)
    macs = count_macs(base, (1, *shape))
    flags = cpu_flags()
    has_bf16 = bool({"avx512_bf16", "amx_bf16"} & flags)
    x = torch.randn(args.batch, *shape)
    y = torch.randint(0, 10, (args.batch,))

    def make(channels_last: bool, bf16: bool):
        import copy

        model = copy.deepcopy(base).train()
        xi = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def step():
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = nn.functional.cross_entropy(model(xi).float(), y)
            loss.backward()
            opt.step()
        return step

    variants = {"fp32": make(False, False), "channels_last": make(True, False)}
    if has_bf16:
        variants["bf16 autocast"] = make(False, True)
        variants["bf16 autocast + channels_last"] = make(True, True)

    conv = nn.Conv2d(64, 64, 3, padding=1, bias=False)
    cx = torch.randn(8, 64, 64, 128)
    conv_macs = 64 * 64 * 9 * 64 * 128 * 8

    def conv_step(bf16: bool):
        def run():
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                conv(cx)
        return run
    dense = {"fp32": conv_step(False)} | ({"bf16": conv_step(True)} if has_bf16 else {})

    for fn in (*variants.values(), *dense.values()):
        for _ in range(args.warmup):
            fn()
    times = {k: [] for k in (*variants, *(f"conv {k}" for k in dense))}
    cpu = {k: [0.0, 0.0, 0] for k in variants}  # user s, sys s, minor faults, summed over steps
    for _ in range(max(1, args.steps)):
        for name, fn in variants.items():
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            c = cpu[name]
            c[0], c[1] = c[0] + r1.ru_utime - r0.ru_utime, c[1] + r1.ru_stime - r0.ru_stime
            c[2] += r1.ru_minflt - r0.ru_minflt
        for name, fn in dense.items():
            t0 = time.perf_counter()
            fn()
            times[f"conv {name}"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: conv_macs / med[f"conv {k}"] for k in dense}
    load1 = os.getloadavg()
    lines = [
        f"### CP-Mobile training step, {args.seconds:g}-s clips (bench_train_step.py, {time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"Input {shape} per sample (recipe gao_lee2024_split100 front end), batch {args.batch}, "
        f"{args.threads} threads, features in memory; {macs / 1e6:.1f} MMAC forward per sample; median of "
        f"{args.steps} rounds; load average {load0[0]:.2f} at start, {load1[0]:.2f} at end (shared machine). "
        f"CPU bf16 support: {'yes' if has_bf16 else 'no'} ({', '.join(sorted({'avx512_bf16', 'amx_bf16'} & flags)) or 'none'}). "
        f"Dense 3x3 conv rate measured: " + ", ".join(f"{k} {v / 1e9:.1f} GMAC/s" for k, v in rate.items()) + ". "
        f"Freed memory kept for reuse (asclab.memory): {'yes' if kept else 'no (glibc default)'}.",
        "",
        "| variant | samples/s | step s | achieved GMAC/s (3 x forward) | vs dense conv rate "
        "| user s / step | sys s / step | page faults / step |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    n_steps = max(1, args.steps)
    for name in variants:
        s = med[name]
        achieved = 3 * macs * args.batch / s
        ref = rate["bf16"] if "bf16" in name and "bf16" in rate else rate["fp32"]
        user, sys_s, faults = (v / n_steps for v in cpu[name])
        lines.append(f"| {name} | {args.batch / s:.1f} | {s:.2f} | {achieved / 1e9:.1f} | {100 * achieved / ref:.0f} % "
                     f"| {user:.2f} | {sys_s:.2f} | {faults:,.0f} |")
    best = max(variants, key=lambda k: -med[k])
    rate_best = args.batch / med[best]
    lines += ["", f"Best: {best}, {rate_best:.1f} samples/s (issue 15 target: 17).",
              f"Target: CP-Mobile training step, 10-s clips, batch {args.batch}, {args.threads} threads "
              f"({best}) | {rate_best:.1f} samples/s | >= 17 samples/s | {'met' if rate_best >= 17 else 'NOT met'}", ""]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
