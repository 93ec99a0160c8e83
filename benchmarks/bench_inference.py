"""Inference speed on CPU for every registered model, features included.

Each model gets untrained weights (speed does not depend on their values) in
an asclab model file with its recipe's front end and clip length, loaded with
``Predictor.load`` and exported with ``asclab.export.onnx_export.export_onnx``
(waveform input: the ONNX graph computes the features; fp32 plus the
onnxruntime dynamic int8 variant). Backends:

* asclab predict path: ``Predictor.probs`` as ``asclab predict`` runs it (features +
  network + softmax; the network with its batch norms folded into the convolutions and
  run in onnxruntime where each is exact, ``asclab.evaluate.fast_path``);
* torch eager: the same with the network kept in torch (``ASCLAB_INFERENCE=torch``: folded
  batch norms where exact);
* torch compiled: the asclab features, then ``torch.compile(model)`` (one
  compilation per input shape, timed apart); only for the ``--compile`` models;
* ONNX fp32 and int8: ``OnnxPredictor.probs`` (onnxruntime CPU, its
  ``intra_op_num_threads`` set to the thread count, spin-waiting off: see
  ``ort_session``); the graph computes the features itself;
* torch features + ONNX network: the asclab (torch) features, then an ONNX
  export with ``input_kind="features"`` (fp32): separates the cost of the
  ONNX front end from that of the network.

Latency: one real clip (a TUT 2018 recording at the model's rate and channel
policy), its first 1 s and all 10 s, batch 1, waveform already in memory; the
median of ``--repeats`` interleaved rounds after one warm-up call. The whole
clip is one input (the models are fully convolutional with global pooling).

Throughput: ``--files`` real clips (the 12 TAU sample files repeated) decoded
at the model's clip length (``load_audio``), then classified in batches of
``--batch``; clips/s is the median over the batches, with and without the
decoding time.

Predict path against the targets (issue 15, CP-Mobile only): ``Predictor.probs`` on an
in-memory 1-s and 10-s waveform at 1 thread, ``--target-repeats`` rounds, median and best,
beside the torch network; with the largest probability difference to the reference torch
model (unfolded, eager) and whether the top-1 agrees, and the arithmetic limit of the
network at the measured dense 3x3 convolution rate of this thread count.

The process keeps freed memory for reuse as the ``asclab`` command does
(``asclab.memory``: a 10-s clip's STFT frames are 11 MB, which glibc would
otherwise mmap and zero-fill afresh at every call); ``--malloc-default`` leaves
glibc's malloc as it is.

    python benchmarks/bench_inference.py [--quick] [--models a,b] [--threads 1,2] [--malloc-default]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

from asclab.export.onnx_predictor import softmax  # noqa: E402 - torch-free

BACKENDS = ("default", "torch", "compile", "onnx", "int8", "hybrid")
TARGET_MS = {1.0: 1.0, 10.0: 5.0}  # issue 15: CP-Mobile, in-memory waveform -> probabilities, 1 thread
NAMES = {"default": "asclab predict path", "torch": "torch eager", "compile": "torch compiled", "onnx": "ONNX fp32", "int8": "ONNX int8",
         "hybrid": "torch features + ONNX network"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke pass: one small model, 2 repeats, 8 files")
    p.add_argument("--models", default=None, help="comma-separated model names (default: all)")
    p.add_argument("--threads", default="1,2", help="thread counts for the latencies")
    p.add_argument("--throughput-threads", type=int, default=1,
                   help="threads for the throughput (default 1: on a busy 2-core machine 2 threads mostly wait)")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds per latency (10 s clips: at least 3)")
    p.add_argument("--budget", type=float, default=10.0,
                   help="seconds of timed rounds per model, clip and thread count after which no new round starts")
    p.add_argument("--files", type=int, default=24, help="clips for the throughput")
    p.add_argument("--batch", type=int, default=8, help="batch size for the throughput")
    p.add_argument("--backends", default=",".join(BACKENDS), help=f"subset of {','.join(BACKENDS)}")
    p.add_argument("--compile", default="cp_mobile",
                   help="models to run compiled ('all', 'none' or names; 30-90 s of compiling each on 2 busy cores)")
    p.add_argument("--data", type=Path, default=bl.DEFAULT_DATA, help="the shared data folder (tau-samples/)")
    p.add_argument("--malloc-default", action="store_true", help="leave glibc malloc as it is (asclab.memory)")
    p.add_argument("--target-repeats", type=int, default=300, help="rounds of the 1-s predict-path timing (10 s: 1/10)")
    args = p.parse_args(argv)
    if args.quick:
        args.models = args.models or "cp_mobile"
        args.repeats, args.files, args.batch, args.target_repeats = 2, 8, 4, 10
        args.compile = "none"
    return args


@contextlib.contextmanager
def quiet():
    """onnxruntime's quantiser and the exporters log through the root logger and print."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def ort_session(path: Path, threads: int):
    """An onnxruntime CPU session with ``threads`` intra-op threads and spin-waiting
    turned off: its worker spins on a core after each run and, in this process
    that also times torch, steals that core from the torch call timed next
    (measured here: torch eager at 2 threads 100x slower right after an ONNX call)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = int(threads)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnx_predictor(path: Path, threads: int):
    """``OnnxPredictor(path, threads=threads)`` running on a non-spinning ``ort_session``."""
    from asclab.export import OnnxPredictor

    pred = OnnxPredictor(path, threads=threads)
    pred.session = ort_session(path, threads)
    return pred


def export(ckpt: Path, out: Path, int8: bool, name: str, notes: list[str]) -> tuple[dict[str, Path], list]:
    """Export with ``export_onnx``; if the int8 variant fails, keep the fp32 file and say so."""
    from asclab.export.onnx_export import export_onnx

    t0 = time.perf_counter()
    res = None
    for want_int8 in ([True, False] if int8 else [False]):
        try:
            with quiet():
                res = export_onnx(ckpt, out, int8=want_int8)
            break
        except Exception as exc:  # noqa: BLE001 - report and go on with what works
            what = "int8 variant" if want_int8 else "export"
            notes.append(f"{name}: ONNX {what} failed ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})")
    if res is None:
        return {}, []
    seconds = time.perf_counter() - t0
    by = {f["precision"]: f for f in res["files"]}
    files = {"onnx": Path(by["fp32"]["path"])}
    if "int8" in by:
        files["int8"] = Path(by["int8"]["path"])
    i8 = by.get("int8")
    row = [name, f"{seconds:.1f}", f"{by['fp32']['size_bytes'] / 1024:,.0f}", f"{by['fp32']['max_abs_diff']:.1e}",
           f"{i8['size_bytes'] / 1024:,.0f}" if i8 else "failed", f"{i8['max_abs_diff']:.1e}" if i8 else "-"]
    return files, row


def torch_only(ckpt: Path):
    """``Predictor.load(ckpt)`` with the network kept in torch (``ASCLAB_INFERENCE=torch``)."""
    from asclab.evaluate.inference import Predictor

    before = os.environ.get("ASCLAB_INFERENCE")
    os.environ["ASCLAB_INFERENCE"] = "torch"
    try:
        return Predictor.load(ckpt)
    finally:
        if before is None:
            os.environ.pop("ASCLAB_INFERENCE", None)
        else:
            os.environ["ASCLAB_INFERENCE"] = before


def dense_conv_rate(threads: int) -> float:
    """MAC/s of a dense 3x3 convolution (64 -> 64 channels, 64 x 128 map, batch 2) at ``threads``."""
    import torch

    torch.set_num_threads(threads)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False).eval()
    x = torch.randn(2, 64, 64, 128)
    with torch.inference_mode():
        seconds = bl.median_time(lambda: conv(x), repeats=7, warmup=2)
    return 2 * 64 * 64 * 9 * 64 * 128 / seconds


def predict_path_section(pred, pred_torch, spec, clip_file: Path, repeats: int) -> list[str]:
    """Markdown lines: the predict path's 1-thread latency against TARGET_MS, its exactness."""
    import torch

    from asclab.compress.complexity import count_macs
    from asclab.data import load_audio

    cfg = pred.fcfg
    torch.set_num_threads(1)
    rate = dense_conv_rate(1)
    torch.set_num_threads(1)
    rows, targets = [], []
    for seconds, target in TARGET_MS.items():
        wave = torch.from_numpy(load_audio(clip_file, cfg.sample_rate, channels=cfg.channels, duration=seconds)[None])
        n = repeats if seconds < 5 else max(3, repeats // 10)
        with torch.inference_mode():
            feats = pred.features(wave)
            fns = {"default": lambda: pred.probs(wave), "torch": lambda: pred_torch.probs(wave),
                   "features": lambda: pred.features(wave), "network": lambda: pred.network()(feats)}
            t = bl.interleaved(fns, n, warmup=3)
            ref = torch.softmax(pred.model(feats), dim=1)  # the reference: the loaded torch model, eager
            got = pred.probs(wave)
        macs = count_macs(pred.model, tuple(feats.shape))
        med_ms, best_ms = 1000 * bl.med(t["default"]), 1000 * min(t["default"])
        rows.append([f"{seconds:.0f} s", tuple(feats.shape[1:]), f"{med_ms:.2f}", f"{best_ms:.2f}",
                     f"{1000 * bl.med(t['features']):.2f}", f"{1000 * bl.med(t['network']):.2f}",
                     f"{1000 * bl.med(t['torch']):.2f}", f"{macs / 1e6:.0f}", f"{1000 * macs / rate:.2f}",
                     f"{(got - ref).abs().max().item():.1e}", "yes" if torch.equal(got.argmax(1), ref.argmax(1)) else "NO",
                     f"{target:.1f}", "met" if med_ms <= target else "NOT met"])
        exact = (got - ref).abs().max().item() <= 1e-5 and torch.equal(got.argmax(1), ref.argmax(1))
        targets.append(f"Target: CP-Mobile {seconds:.0f}-s waveform -> probabilities, 1 thread, predict path "
                       f"({pred.backend}, exact: {'yes' if exact else 'NO'}) | {med_ms:.2f} ms | <= {target:g} ms "
                       f"| {'met' if med_ms <= target and exact else 'NOT met'}")
    return [
        f"Predict path against the issue 15 targets: CP-Mobile ({spec.recipe} front end), in-memory waveform "
        f"-> probabilities, `Predictor.probs` as `asclab predict` runs it (network backend: {pred.backend}), "
        f"1 thread, median (and best) of {repeats} interleaved rounds (10 s: {max(3, repeats // 10)}); "
        f"'torch network' keeps the network in torch (ASCLAB_INFERENCE=torch); limit = network MACs at the "
        f"measured dense 3x3 conv rate at 1 thread ({rate / 1e9:.1f} GMAC/s fp32); max |p - p_ref| against the "
        "loaded torch model run eagerly.",
        "",
        bl.table(["clip", "input", "predict ms", "best ms", "features ms", "network ms", "torch network ms",
                  "MMAC", "limit ms (network at dense rate)", "max abs prob diff", "same top-1", "target ms",
                  "target"], rows, "ll" + "r" * 9 + "rl"),
        "",
        *targets,
        "",
    ]


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    load_start = os.getloadavg()
    import numpy as np
    import torch

    from asclab.data import load_audio
    from asclab.evaluate.inference import Predictor
    from asclab.memory import keep_freed_memory
    from asclab.train.checkpoint import ModelFile, save_model_file

    kept = False if args.malloc_default else keep_freed_memory()  # as the asclab command does at start
    threads = bl.parse_ints(args.threads)
    tp_threads = args.throughput_threads
    backends = [b for b in args.backends.split(",") if b]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        sys.exit(f"unknown backend(s) {', '.join(unknown)}; known: {', '.join(BACKENDS)}")
    specs = bl.select_models(args.models)
    compile_models = ({s.name for s in specs} if args.compile == "all" else set()
                      if args.compile in ("none", "") else set(args.compile.split(",")))
    files = bl.tau_files(args.data)
    clip_file = next((f for f in files if "tut2018" in str(f)), files[0])
    batch_files = [files[i % len(files)] for i in range(args.files)]

    lat_rows, tp_rows, export_rows, notes, target_lines = [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="asclab-bench-inf-") as tmp:
        for spec in specs:
            t_model = time.perf_counter()
            recipe, cfg, duration = spec.recipe_dict(), spec.feature_config(), spec.duration()
            mf = ModelFile(state_dict=spec.create().state_dict(), classes=[f"class{i}" for i in range(10)],
                           features=dict(recipe["features"]), model=dict(recipe["model"]), recipe=recipe,
                           duration=duration)
            ckpt = save_model_file(mf, Path(tmp) / f"{spec.name}.ckpt")
            pred = Predictor.load(ckpt)
            pred_torch = torch_only(ckpt)
            if spec.name == "cp_mobile":
                target_lines = predict_path_section(pred, pred_torch, spec, clip_file, args.target_repeats)

            onnx_files: dict[str, Path] = {}
            if {"onnx", "int8"} & set(backends):
                onnx_files, row = export(ckpt, Path(tmp) / f"{spec.name}.onnx", "int8" in backends, spec.name, notes)
                onnx_files = {k: v for k, v in onnx_files.items() if k in backends}
                if row:
                    export_rows.append(row)
            all_threads = sorted(set(threads) | {tp_threads})
            sessions = {(kind, n): onnx_predictor(path, n) for kind, path in onnx_files.items() for n in all_threads}
            net_sessions = {}
            if "hybrid" in backends:
                try:
                    from asclab.export.onnx_export import export_onnx

                    with quiet():
                        res = export_onnx(ckpt, Path(tmp) / f"{spec.name}.features.onnx", input_kind="features")
                    net_sessions = {n: ort_session(Path(res["files"][0]["path"]), n) for n in all_threads}
                except Exception as exc:  # noqa: BLE001
                    notes.append(f"{spec.name}: ONNX export with features input failed "
                                 f"({type(exc).__name__}: {' '.join(str(exc).split())[:160]})")
            compiled = None
            if "compile" in backends and spec.name in compile_models:
                compiled = torch.compile(pred.model, dynamic=True)  # one graph for every batch and length

            def torch_fn(w, n, model=None, default=False):
                def run():
                    torch.set_num_threads(n)
                    with torch.inference_mode():
                        if default:
                            return pred.probs(w)
                        if model is None:
                            return pred_torch.probs(w)
                        return torch.softmax(model(pred.features(w)), dim=1)
                return run

            def onnx_fn(w, kind, n):
                session = sessions[(kind, n)]
                return lambda: session.probs(w)

            def hybrid_fn(w, n):
                session = net_sessions[n]

                def run():
                    torch.set_num_threads(n)
                    with torch.inference_mode():
                        feats = pred.features(w).numpy()
                    return softmax(session.run(None, {session.get_inputs()[0].name: feats})[0])
                return run

            for seconds in (1.0, 10.0):
                wave = load_audio(clip_file, cfg.sample_rate, channels=cfg.channels, duration=seconds)[None]
                w_t = torch.from_numpy(wave)
                for n in threads:
                    fns = {"default": torch_fn(w_t, n, default=True), "torch": torch_fn(w_t, n)}
                    compile_s = None
                    if compiled is not None:
                        fns["compile"] = torch_fn(w_t, n, compiled)
                        try:
                            compile_s = bl.timed(fns["compile"])  # compiles for this shape (first thread count)
                        except Exception as exc:  # noqa: BLE001
                            notes.append(f"{spec.name}: torch.compile failed ({type(exc).__name__}: {str(exc)[:160]})")
                            compiled = None
                            del fns["compile"]
                    for kind in onnx_files:
                        fns[kind] = onnx_fn(wave, kind, n)
                    if net_sessions:
                        fns["hybrid"] = hybrid_fn(w_t, n)
                    t = bl.interleaved(fns, args.repeats if seconds < 5 else min(args.repeats, 3), 1, args.budget)
                    lat = {k: bl.med(v) for k, v in t.items()}
                    best = min(lat, key=lat.get)
                    cells = []
                    for k in BACKENDS:
                        if k not in lat:
                            cells.append("not run")
                            continue
                        cell = bl.fmt_ms(lat[k])
                        if k == "compile" and compile_s is not None and compile_s > 1.0:
                            cell += f" (compile {compile_s:.0f} s)"
                        cells.append(cell)
                    lat_rows.append([spec.name, f"{seconds:.0f} s", n, len(t["torch"]), *cells,
                                     f"{NAMES[best]} ({lat['torch'] / lat[best]:.2f}x)"])

            # throughput over files: decode, then batches
            torch.set_num_threads(tp_threads)
            t0 = time.perf_counter()
            waves = np.stack([load_audio(f, cfg.sample_rate, channels=cfg.channels, duration=duration)
                              for f in batch_files])
            t_decode = (time.perf_counter() - t0) / len(batch_files)
            chunks = [waves[i:i + args.batch] for i in range(0, len(waves), args.batch)]
            rates = {}
            tp_fns = {"default": lambda c: torch_fn(torch.from_numpy(c), tp_threads, default=True)(),
                      "torch": lambda c: torch_fn(torch.from_numpy(c), tp_threads)()}
            if compiled is not None:
                tp_fns["compile"] = lambda c: torch_fn(torch.from_numpy(c), tp_threads, compiled)()
            for kind in onnx_files:
                tp_fns[kind] = lambda c, kind=kind: sessions[(kind, tp_threads)].probs(c)
            if net_sessions:
                tp_fns["hybrid"] = lambda c: hybrid_fn(torch.from_numpy(c), tp_threads)()
            for k, fn in tp_fns.items():
                fn(chunks[0])  # warm-up (a new batch shape compiles again for torch.compile)
            per_clip = {k: [] for k in tp_fns}
            for c in chunks:  # interleaved per batch
                for k, fn in tp_fns.items():
                    per_clip[k].append(bl.timed(lambda: fn(c)) / len(c))
            for k, v in per_clip.items():
                rates[k] = 1.0 / bl.med(v)
            cells = []
            for k in BACKENDS:
                if k not in rates:
                    cells.append("not run")
                    continue
                cells.append(f"{bl.fmt_rate(rates[k])} ({bl.fmt_rate(1 / (1 / rates[k] + t_decode))})")
            tp_rows.append([spec.name, f"{duration:.0f} s", len(batch_files), bl.fmt_rate(1 / t_decode), *cells])
            print(f"[bench_inference] {spec.name}: {time.perf_counter() - t_model:.0f} s", file=sys.stderr, flush=True)

    lines = [
        f"### Inference speed (bench_inference.py, {time.strftime('%Y-%m-%d %H:%M')})",
        "",
        bl.machine_line(load_start, sorted(set(threads) | {tp_threads}))
        + f" Malloc: {'freed memory kept for reuse, as the asclab command runs (asclab.memory)' if kept else 'glibc default'}.",
        "",
        *target_lines,
        f"Latency in ms for one clip (batch 1), features included, waveform in memory: median of up to "
        f"{args.repeats} interleaved rounds (10 s clips: up to 3; fewer once they pass {args.budget:.0f} s; 'rounds') "
        "after a warm-up call. Untrained weights. Last column: fastest backend and its speed-up "
        f"over torch eager at the same thread count. Clip: {clip_file.parent.name}/{clip_file.name} (real).",
        "",
        bl.table(["model", "clip", "threads", "rounds", *(NAMES[k] for k in BACKENDS), "fastest"], lat_rows,
                 "llrr" + "r" * len(BACKENDS) + "l"),
        "",
        f"Throughput in clips/s at {tp_threads} thread(s): {args.files} real clips (12 TAU files repeated), each "
        f"decoded at the model's clip length, classified in batches of {args.batch}; median over batches; in "
        "brackets including the decoding (resampling included).",
        "",
        bl.table(["model", "clip length", "clips", "decode only", *(NAMES[k] for k in BACKENDS)], tp_rows,
                 "llrr" + "r" * len(BACKENDS)),
    ]
    if export_rows:
        lines += ["", "ONNX export (`export_onnx`, waveform input, verified against torch by the exporter): "
                  "export time (fp32 and int8, with the exporter's checks), file sizes and the largest output "
                  "difference on the exporter's random check inputs (fp32 vs torch; int8 vs fp32; untrained "
                  "weights, so logits are small and near-tied).", "",
                  bl.table(["model", "export s", "fp32 KiB", "fp32 max diff", "int8 KiB", "int8 max diff"],
                           export_rows)]
    not_compiled = [s.name for s in specs if s.name not in compile_models]
    if "compile" in backends and not_compiled:
        notes.append(f"torch compiled not run for {', '.join(not_compiled)} (to keep the run short: compiling "
                     "takes 30-90 s per model on this machine; `--compile all` runs it for every model)")
    lines += [""] + [f"Note: {n}" for n in notes] + ([""] if notes else [])
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
