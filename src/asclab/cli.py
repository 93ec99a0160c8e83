"""The ``asclab`` command line: parses, calls one function per command, prints.

User errors (``AsclabError``) print one line without a traceback and exit 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from asclab import __version__
from asclab.errors import AsclabError


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any recipe value, e.g. --set train.epochs=2 --set model.width=16")
    p.add_argument("--epochs", type=int, help="shortcut for --set train.epochs=N")
    p.add_argument("--batch-size", type=int, help="shortcut for --set train.batch_size=N")
    p.add_argument("--seed", type=int, help="shortcut for --set train.seed=N")
    p.add_argument("--logger", choices=("csv", "tensorboard"), default=None,
                   help="tensorboard: also a TensorBoard log beside the CSV one (needs: pip install tensorboard); "
                        "shortcut for --set train.logger=...")


def _overrides(args) -> list[str]:
    out = list(args.overrides)
    for key, name in (("train.epochs", "epochs"), ("train.batch_size", "batch_size"), ("train.seed", "seed"),
                      ("train.logger", "logger")):
        if getattr(args, name, None) is not None:
            out.append(f"{key}={getattr(args, name)}")
    return out


def _add_distributed(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("distributed training (docs/distributed.md)")
    g.add_argument("--devices", default=None, help="processes (GPUs) per node, 'auto' or -1 for all (default 1)")
    g.add_argument("--num-nodes", type=int, default=None, help="machines (default 1)")
    g.add_argument("--strategy", default=None, help="Lightning strategy, e.g. ddp (default: Lightning's choice)")
    g.add_argument("--accelerator", default=None, help="cpu, gpu, auto (default: gpu when present)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asclab", description="Acoustic scene classification toolkit.")
    p.add_argument("--version", action="version", version=f"asclab {__version__}")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: the free physical cores by the load average, 1 on a "
                        "busy machine; 0: torch's own choice; see asclab.terminal)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    data = sub.add_parser("data", help="make or inspect data sets")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION")
    synth = dsub.add_parser("synth", help="write the embedded SYNTHETIC scene set (TAU 2020 Mobile layout)")
    synth.add_argument("out")
    synth.add_argument("--per-cell", type=int, default=None,
                       help="clips per class x device in the training devices")
    synth.add_argument("--seconds", type=float, default=None)
    synth.add_argument("--sample-rate", type=int, default=None)
    synth.add_argument("--seed", type=int, default=0)
    desc = dsub.add_parser("describe", help="counts per class, device, city and split")
    desc.add_argument("dir")
    desc.add_argument("--split", default=None, help="DCASE 2024 split file, e.g. split25")
    desc.add_argument("--no-check-files", action="store_true", help="read the metadata alone (audio may be absent)")

    sub.add_parser("recipes", help="list the recipes (one per paper setting)")

    demo = sub.add_parser("demo", help="synthesise data, train, evaluate and predict in a few minutes")
    demo.add_argument("--out", default="demo_out")
    demo.add_argument("--epochs", type=int, default=None)
    demo.add_argument("--quiet", action="store_true")

    tr = sub.add_parser("train", help="train a recipe on a data set (or --resume an interrupted run)")
    tr.add_argument("recipe", nargs="?", help="recipe name (see 'asclab recipes') or a YAML file")
    tr.add_argument("--data", default=None, help="data folder (with --resume: default, the run's own)")
    tr.add_argument("--out", default=None, help="run folder")
    tr.add_argument("--resume", default=None, metavar="RUN",
                    help="continue the interrupted run RUN from its last checkpoint, with its recipe.yaml")
    tr.add_argument("--cache-dir", default=None, help="feature cache folder (default $ASCLAB_CACHE_DIR or ~/.cache/asclab)")
    tr.add_argument("--all-data", action="store_true", help="train on train+test (no validation), 2019 sec. 3.8")
    tr.add_argument("--force", action="store_true", help="overwrite a run folder that holds a model")
    tr.add_argument("--quiet", action="store_true")
    _add_distributed(tr)
    _add_overrides(tr)

    fe = sub.add_parser("features", help="compute a recipe's feature caches in parallel (resumable)")
    fe.add_argument("data", help="data folder")
    fe.add_argument("--recipe", required=True, help="recipe name or YAML file (its feature settings and split)")
    fe.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    fe.add_argument("--shard-size", type=int, default=None, help="clips per shard (default 256)")
    fe.add_argument("--cache-dir", default=None, help="feature cache folder (default $ASCLAB_CACHE_DIR or ~/.cache/asclab)")
    fe.add_argument("--verify", action="store_true", help="re-hash existing caches; rebuild any that fail")
    fe.add_argument("--quiet", action="store_true")
    fe.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    ev = sub.add_parser("evaluate", help="metrics of a trained model on a data set's test split")
    ev.add_argument("ckpt", help="run folder or model.ckpt")
    ev.add_argument("--data", required=True)
    ev.add_argument("--out", default=None, help="folder for metrics.json and plots (default: beside the model)")
    ev.add_argument("--tta", type=int, default=None, help="test-time augmentation copies (default: the recipe's)")
    ev.add_argument("--ensemble", nargs="*", default=[], help="more checkpoints whose softmax outputs are averaged")
    ev.add_argument("--skip-bad", action="store_true", help="skip unreadable files (counted and reported)")
    ev.add_argument("--precision", choices=["fp32", "fp16"], default=None,
                    help="arithmetic of the network (default: the model file's); fp16 also reports the change vs fp32")
    ev.add_argument("--force", action="store_true", help="replace the results already in --out")
    ev.add_argument("--quiet", action="store_true")

    pr = sub.add_parser("predict", help="classify recordings of any length (files or folders)",
                        description="Classify audio files and folders (recursively) of any format, rate, channel "
                                    "count and length, in windows of the model's clip length.")
    pr.add_argument("ckpt", help="run folder or model.ckpt")
    pr.add_argument("files", nargs="+", metavar="PATH", help="audio files or folders")
    pr.add_argument("--hop", type=float, default=None, metavar="SECONDS",
                    help="window hop (default: the window length, i.e. no overlap)")
    pr.add_argument("--csv", default=None, metavar="FILE", help="write one row per file (label + probabilities)")
    pr.add_argument("--timeline", default=None, metavar="FILE",
                    help="write one row per window: .csv/.tsv, or JSON lines for .jsonl")
    pr.add_argument("--jsonl", action="store_true", help="print one JSON object per file instead of the table")
    pr.add_argument("--top", type=int, default=3)
    pr.add_argument("--batch-size", type=int, default=16, help="windows per forward pass")
    pr.add_argument("--device", default=None, metavar="ID",
                    help="recording device id: a device-specific model's choice (unknown ids: the general model)")
    pr.add_argument("--skip-bad", action="store_true", help="skip unreadable files (counted and reported)")
    pr.add_argument("--force", action="store_true", help="replace --csv/--timeline files that already exist")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")

    sm = sub.add_parser("submit", help="write a DCASE task 1 submission file (checks the complexity rules)")
    sm.add_argument("ckpt", help="run folder or model.ckpt")
    sm.add_argument("--data", required=True, metavar="EVAL_DIR",
                    help="TAU-layout evaluation folder (evaluation_setup/fold1_test.csv or meta.csv) or audio folder")
    sm.add_argument("--out", required=True, metavar="FILE", help="output file, e.g. output.csv")
    sm.add_argument("--year", type=int, default=2024, help="challenge year whose rules apply (2019-2025; default 2024)")
    sm.add_argument("--hop", type=float, default=None, metavar="SECONDS")
    sm.add_argument("--skip-bad", action="store_true")
    sm.add_argument("--force", action="store_true", help="replace --out if it exists")
    sm.add_argument("--quiet", action="store_true")

    ex = sub.add_parser("export", help="export a model to ONNX or LiteRT (self-verified; optional fp16/int8 variants)")
    ex.add_argument("ckpt", help="run folder or model.ckpt")
    ex.add_argument("--format", default="onnx", choices=["onnx", "litert"],
                    help="onnx, or litert: a .tflite file taking features [1, C, F, T] (pip install 'asclab[litert]')")
    ex.add_argument("--input", dest="input_kind", default="waveform", choices=["waveform", "features"],
                    help="graph input: raw waveform [B, C, N] (features computed inside) or features [B, C, F, T]")
    ex.add_argument("--out", default=None, metavar="FILE", help="output .onnx (default: beside the checkpoint)")
    ex.add_argument("--fp16", action="store_true", help="also write a variant with float16 weights")
    ex.add_argument("--int8", action="store_true",
                    help="also write an int8 variant (ONNX: dynamic; LiteRT: static, calibrated on training clips)")
    ex.add_argument("--int8-static", action="store_true",
                    help="ONNX: also write a static QDQ int8 variant calibrated on training clips")
    ex.add_argument("--calib-data", default=None, metavar="DIR",
                    help="training clips for static int8 calibration (default: the model file's training data)")
    ex.add_argument("--check-clips", default=None, metavar="DIR",
                    help="real audio to check every file against torch on (largest difference, top-1 agreement)")
    ex.add_argument("--val-data", default=None, metavar="DIR", help="labelled data to measure each file's accuracy")
    ex.add_argument("--json", action="store_true")
    ex.add_argument("--force", action="store_true", help="replace --out if it exists")
    ex.add_argument("--device", default=None, metavar="ID",
                    help="of a device-specific model, export the model of this device (default: the general one)")

    dr = sub.add_parser("deploy-report", help="accuracy, file size and latency of a model per backend and precision")
    dr.add_argument("ckpt", help="run folder or model.ckpt of the float model")
    dr.add_argument("--data", required=True, help="data folder: the recipe's test split is measured, its training "
                                                  "split calibrates the int8 files")
    dr.add_argument("--out", required=True, help="report folder (report.md, report.json, accuracy_vs_size.png)")
    dr.add_argument("--qat", default=None, metavar="MODEL", help="the int8 model trained with a qat stage")
    dr.add_argument("--repeats", type=int, default=10, help="timed runs per backend and clip length (median)")
    dr.add_argument("--max-clips", type=int, default=None, help="measure accuracy on the first N test clips")
    dr.add_argument("--no-litert", action="store_true", help="leave out the LiteRT backends")

    cv = sub.add_parser("crossval", help="train and evaluate on each fold (predefined, or recording-wise with --group-by)")
    cv.add_argument("recipe")
    cv.add_argument("--data", required=True)
    cv.add_argument("--out", required=True)
    cv.add_argument("--folds", type=int, default=None,
                    help="use the first K folds (default: all); with --group-by, or on data without folds, "
                         "assign K folds")
    cv.add_argument("--group-by", default=None, choices=("identifier", "city"),
                    help="recording-wise folds: every clip of one identifier (recording) in one fold")
    cv.add_argument("--seeds", default=None, metavar="S,S,...",
                    help="train every fold once per seed (e.g. 0,1,2) and report the mean and the spread "
                         "between seeds (small test folds vary by several points from seed to seed)")
    cv.add_argument("--cache-dir", default=None)
    cv.add_argument("--force", action="store_true")
    cv.add_argument("--quiet", action="store_true")
    _add_overrides(cv)

    cx = sub.add_parser("complexity", help="parameters, memory, MACs and challenge limits")
    cx.add_argument("target", nargs="*", help="model names, recipe names/files or checkpoints (default: every model)")
    cx.add_argument("--json", action="store_true")
    _add_distill(sub)
    _add_deployment(sub)
    return p


def _add_deployment(sub) -> None:
    """``asclab import`` (published checkpoints) and ``asclab package`` (the DCASE 2025 package)."""
    im = sub.add_parser("import", help="read a published CPJKU-family checkpoint (DCASE 2024/2025 baselines, "
                                       "their device containers) into an asclab model file")
    im.add_argument("src", metavar="CKPT", help="Lightning checkpoint (.ckpt)")
    im.add_argument("--out", required=True, metavar="FILE", help="asclab model file to write")
    im.add_argument("--force", action="store_true", help="replace --out if it exists")
    im.add_argument("--precision", default=None, choices=["fp16", "fp32"],
                    help="stored weights and inference precision (default: the checkpoint's own)")
    pk = sub.add_parser("package", help="write the DCASE 2025 installable inference package of a model")
    pk.add_argument("ckpt", metavar="MODEL", help="run folder or model.ckpt")
    pk.add_argument("--name", required=True, help="package name, Lastname_INST_task1")
    pk.add_argument("--out", required=True, metavar="DIR", help="folder to create")
    pk.add_argument("--index", type=int, default=1, help="submission module number NAME_<index> (default 1)")
    pk.add_argument("--force", action="store_true", help="replace DIR if it exists")


def cmd_import(args) -> int:
    from asclab.interop import import_checkpoint
    s = import_checkpoint(args.src, args.out, precision=args.precision)
    devices = f", device models {', '.join(s['devices'])}" if s["devices"] else ""
    print(f"{s['layout']}{devices}; {s['precision']} inference")
    for what, source in s["front_end_from"].items():
        print(f"  front end {what}: {source}")
    print(f"wrote {s['out']}")
    return 0


def cmd_package(args) -> int:
    from asclab.export.package import write_package
    s = write_package(args.ckpt, args.out, name=args.name, index=args.index, force=args.force)
    for member, c in s["complexity"].items():
        print(f"  {member:<6} {c['param_bytes']:>9,} bytes  {c['macs'] / 1e6:6.2f} MMAC  ok")
    print(f"wrote {s['out']} (module {s['module']}); install with: pip install {s['out']}")
    return 0


def _add_distill(sub) -> None:
    lg = sub.add_parser("logits", help="teacher logits of runs for every training and test clip (HDF5)",
                        description="Every labelled clip's logits from each run and their mean, keyed by file name, "
                                    "with file hashes, the runs' recipes and the class order; or --import-cpjku.")
    lg.add_argument("runs", nargs="*", metavar="RUN", help="run folders or model files (ensemble folders: each member)")
    lg.add_argument("--data", required=True)
    lg.add_argument("--out", required=True, metavar="FILE", help="teacher file, e.g. teachers.h5")
    lg.add_argument("--duration", type=float, default=None, help="clip length in seconds (default: the first run's)")
    lg.add_argument("--batch-size", type=int, default=32)
    lg.add_argument("--no-hash", action="store_true", help="do not record a sha256 of each audio file")
    lg.add_argument("--import-cpjku", default=None, metavar="TENSOR",
                    help="import a CPJKU-form logits tensor (.pt/.npy) whose rows follow --meta")
    lg.add_argument("--meta", default=None, metavar="CSV", help="with --import-cpjku: the metadata CSV of its rows")
    lg.add_argument("--classes", default=None, help="with --import-cpjku: the tensor's column order, comma-separated "
                    "(default: the data set's classes)")
    lg.add_argument("--force", action="store_true", help="replace --out if it exists")
    lg.add_argument("--quiet", action="store_true")

    te = sub.add_parser("teachers", help="train teacher recipes and write their logits (per fold with --folds)")
    te.add_argument("recipes", nargs="+", metavar="RECIPE")
    te.add_argument("--data", required=True)
    te.add_argument("--out", required=True)
    te.add_argument("--folds", type=int, default=None, help="per-fold teachers for cross-validation (first K folds)")
    te.add_argument("--group-by", default=None, choices=("identifier", "city"), help="recording-wise folds")
    te.add_argument("--duration", type=float, default=None, help="clip length of the logits (default: the teachers')")
    te.add_argument("--cache-dir", default=None)
    te.add_argument("--force", action="store_true")
    te.add_argument("--quiet", action="store_true")
    _add_overrides(te)


def cmd_data(args) -> int:
    if args.data_command == "synth":
        from asclab.data.synth import make_synthetic_dataset
        kwargs = {k: v for k, v in (("n_per_class_device", args.per_cell), ("seconds", args.seconds),
                                    ("sample_rate", args.sample_rate)) if v is not None}
        make_synthetic_dataset(args.out, seed=args.seed, **kwargs)
        from asclab.data import open_dataset
        from asclab.data.describe import describe
        print(describe(open_dataset(args.out)))
        print(f"wrote SYNTHETIC data set to {args.out}")
        return 0
    if args.data_command == "describe":
        from asclab.data import open_dataset
        from asclab.data.describe import describe
        print(describe(open_dataset(args.dir, split=args.split, check_files=not args.no_check_files)))
        return 0
    raise AsclabError("asclab data: choose 'synth' or 'describe'")


def cmd_recipes(args) -> int:
    from asclab.config import list_recipes
    recipes = list_recipes()
    width = max(map(len, recipes), default=10)
    for name, desc in recipes.items():
        print(f"{name:<{width}}  {desc}")
    return 0


def cmd_demo(args) -> int:
    from asclab.api import run_demo
    run_demo(args.out, epochs=args.epochs, progress=not args.quiet)
    return 0


def cmd_train(args) -> int:
    from asclab.api import resume_run, train_run
    from asclab.train.distributed import distributed_trainer_kwargs
    dist = distributed_trainer_kwargs(args.devices, args.num_nodes, args.strategy, args.accelerator)
    if args.resume:
        if args.recipe or _overrides(args) or args.all_data or args.force:
            raise AsclabError("--resume continues a run with its own recipe.yaml: drop the recipe, --set/--epochs, "
                              "--all-data and --force")
        if args.out and Path(args.out).resolve() != Path(args.resume).resolve():
            raise AsclabError("--resume RUN writes into RUN; drop --out")
        s = resume_run(args.resume, data_dir=args.data, cache_dir=args.cache_dir, progress=not args.quiet,
                       trainer_kwargs=dist)
    else:
        missing = [n for n, v in (("RECIPE", args.recipe), ("--data", args.data), ("--out", args.out)) if not v]
        if missing:
            raise AsclabError(f"asclab train needs {', '.join(missing)} (or --resume RUN)")
        s = train_run(args.recipe, args.data, args.out, overrides=_overrides(args), cache_dir=args.cache_dir,
                      progress=not args.quiet, force=args.force, all_data=args.all_data, trainer_kwargs=dist)
    if "model" not in s:  # a DDP process other than rank 0
        return 0
    m = s.get("metrics")
    if m:
        print(m["text"])
    print(f"model: {s['model']}\nrun folder: {s['run']} ({s['train_seconds']} s training)")
    return 0


def cmd_features(args) -> int:
    from asclab.api import build_features
    rows = build_features(args.recipe, args.data, overrides=args.overrides, cache_dir=args.cache_dir,
                          workers=args.workers, shard_size=args.shard_size, verify=args.verify,
                          progress=not args.quiet)
    for r in rows:
        what = ("up to date" if r["up_to_date"] else
                f"{r['shards_computed']} shard(s) computed, {r['shards_reused']} reused"
                + (f", {r['shards_damaged']} damaged and rebuilt" if r["shards_damaged"] else ""))
        print(f"{r['split']:<10} {r['clips']:>6} clips  {what}  ({r['seconds']} s)  {r['path']}")
    return 0


def cmd_evaluate(args) -> int:
    from asclab.api import evaluate_run
    m = evaluate_run(args.ckpt, args.data, out_dir=args.out, tta=args.tta, ensemble=args.ensemble,
                     progress=not args.quiet, on_error="skip" if args.skip_bad else "raise",
                     precision=args.precision)
    print(m["text"])
    if m["skipped"]:
        print(f"skipped {len(m['skipped'])} unreadable file(s); listed in metrics.json")
    where = Path(args.out) if args.out else Path(m["checkpoint"]).parent
    print(f"metrics: {where / 'metrics.json'}\nconfusion matrix: {where / 'confusion.png'}")
    return 0


def cmd_predict(args) -> int:
    from asclab.api import classify_recordings
    from asclab.evaluate.longform import format_table, write_files_csv, write_timeline
    results, skipped = classify_recordings(args.ckpt, args.files, hop=args.hop, batch_size=args.batch_size,
                                           progress=not args.quiet, on_error="skip" if args.skip_bad else "raise",
                                           device=args.device)
    if args.jsonl:
        for r in results:
            print(json.dumps({**r.to_dict(timeline=True), "top": r.top(args.top)}))
    else:
        print(format_table(results, top=args.top))
    for f, why in skipped:
        print(f"skipped: {why}", file=sys.stderr)
    if skipped:
        print(f"skipped {len(skipped)} unreadable file(s), classified {len(results)}", file=sys.stderr)
    if args.csv:
        write_files_csv(results, args.csv)
        print(f"wrote {args.csv}", file=sys.stderr)
    if args.timeline:
        write_timeline(results, args.timeline)
        print(f"wrote {args.timeline}", file=sys.stderr)
    return 0


def cmd_submit(args) -> int:
    from asclab.submit import write_submission
    s = write_submission(args.ckpt, args.data, args.out, year=args.year, hop=args.hop, progress=not args.quiet,
                         on_error="skip" if args.skip_bad else "raise")
    c = s["complexity"]
    if c is None:
        print(f"DCASE {args.year}: no complexity limits")
    else:
        macs = f", {c['macs'] / 1e6:.2f} of {c['max_macs'] / 1e6:.0f} MMAC" if c["max_macs"] else ""
        print(f"{c['title']}: ok ({c['param_bytes']:,} of {c['max_param_bytes']:,} bytes at {c['bits']} bits{macs})")
    for f in s["skipped"]:
        print(f"skipped {f['file']}: {f['reason']}", file=sys.stderr)
    if s["skipped"]:
        print(f"WARNING: {len(s['skipped'])} evaluation file(s) missing from the submission", file=sys.stderr)
    print(f"wrote {s['out']} ({s['n_files']} files, {len(s['classes'])} classes)")
    return 0


def cmd_export_litert(args) -> int:
    from asclab.export.litert_export import export_litert
    r = export_litert(args.ckpt, args.out, fp16=args.fp16, int8=args.int8, check_clips=args.check_clips,
                      calib_data=args.calib_data)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    for f in r["files"]:
        print(f"{f['path']}: {f['precision']}, {f['size_bytes'] / 1024:,.1f} KiB on disk "
              f"({'within' if f['within_limit'] else 'OVER'} {f['limit']}: {f['limit_bytes']:,} bytes), "
              f"max |LiteRT - torch| {f['max_abs_diff']:.2e}, top-1 agreement {f['top1_agreement']:.3f}")
    print(f"input: features {'x'.join(map(str, r['input']['shape']))} ({r['input']['seconds']:g} s); "
          f"checked on {r['check']}\nsidecar: {r['sidecar']}")
    return 0


def cmd_deploy_report(args) -> int:
    from asclab.export.deploy_report import deploy_report
    r = deploy_report(args.ckpt, args.data, args.out, qat=args.qat, repeats=args.repeats, max_clips=args.max_clips,
                      litert=not args.no_litert)
    for row in r["rows"]:
        print(f"{row['backend']:<30} {row['precision']:<8} {row['size_bytes'] / 1024:8.1f} KiB  "
              f"acc {row['accuracy']:.4f}  {row['latency_ms']['1s']:7.2f} ms (1 s)  {row['latency_ms']['10s']:7.2f} ms (10 s)")
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0


def cmd_export(args) -> int:
    from asclab.export.onnx_export import export_onnx
    if args.format == "litert":
        return cmd_export_litert(args)
    r = export_onnx(args.ckpt, args.out, input_kind=args.input_kind, fp16=args.fp16, int8=args.int8,
                    val_data=args.val_data, device=args.device, int8_static=args.int8_static,
                    calib_data=args.calib_data, check_clips=args.check_clips)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    for f in r["files"]:
        line = f"{f['path']}: {f['precision']}, {f['size_bytes'] / 1024:,.1f} KiB, "
        line += (f"max |ONNX - torch| {f['max_abs_diff']:.2e} (verified)" if f["precision"] == "fp32" else
                 f"max |diff| from fp32 {f['max_abs_diff']:.2e}, top-1 agreement {f['top1_agreement']:.3f}")
        if f["accuracy"] is not None:
            line += f", accuracy {f['accuracy']:.4f}"
        if f.get("real_clips"):
            rc = f["real_clips"]
            line += (f"; on {rc['n_clips']} real clips: max |diff| from torch {rc['max_abs_diff']:.2e}, "
                     f"top-1 agreement {rc['top1_agreement']:.3f}")
        print(line)
    v = r["validation"]
    if v:
        changes = ", ".join(f"{k[:-7]} {v[k]:+.4f}" for k in v if k.endswith("_change"))
        print(f"validation on {v['n_files']} files of {v['data']}" + (f": accuracy change {changes}" if changes else ""))
    print(f"sidecar: {r['files'][0]['sidecar']}")
    return 0


def cmd_crossval(args) -> int:
    from asclab.api import crossval
    seeds = _seed_list(args.seeds)
    s = crossval(args.recipe, args.data, args.out, folds=args.folds, overrides=_overrides(args),
                 cache_dir=args.cache_dir, progress=not args.quiet, force=args.force, group_by=args.group_by,
                 seeds=seeds)
    for r in s["per_fold"]:
        spread = (f"  seeds {', '.join(f'{a:.3f}' for a in r['per_seed_accuracy'])} "
                  f"(std {r['accuracy_seed_std']:.3f})") if seeds else ""
        print(f"fold {r['fold']}: accuracy {r['accuracy']:.3f}  macro {r['macro_accuracy']:.3f}  "
              f"({r['train_seconds']:.0f} s){spread}")
    a = s["accuracy"]
    over = f" (each the mean of {len(seeds)} seeds; seed-to-seed std {s['seed_std']['accuracy']:.3f})" if seeds else ""
    print(f"mean accuracy {a['mean']:.3f} +- {a['std']:.3f} over {len(s['folds'])} folds{over}; "
          f"{s['total_seconds']:.0f} s in all\nresults: {Path(args.out) / 'crossval.json'}")
    return 0


def _seed_list(text: str | None) -> list[int] | None:
    """``--seeds 0,1,2`` -> [0, 1, 2]; a clear error otherwise."""
    if text is None:
        return None
    try:
        seeds = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise AsclabError(f"--seeds: {text!r} is not a comma-separated list of integers") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise AsclabError(f"--seeds: {text!r} must list distinct non-negative integers")
    return seeds


def cmd_complexity(args) -> int:
    from asclab.api import complexity_targets
    from asclab.compress.complexity import format_report
    reports = complexity_targets(args.target)
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        print(format_report(reports))
    return 0


def cmd_logits(args) -> int:
    if args.import_cpjku:
        from asclab.distill.cpjku_import import import_cpjku
        if not args.meta:
            raise AsclabError("--import-cpjku needs --meta CSV (the metadata file its rows follow)")
        classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
        s = import_cpjku(args.import_cpjku, args.meta, args.data, args.out, classes=classes)
        print(f"imported {s['clips']} clips x {len(s['classes'])} classes into {s['out']}")
        return 0
    from asclab.distill.compute import compute_teacher_logits
    s = compute_teacher_logits(args.runs, args.data, args.out, duration=args.duration, batch_size=args.batch_size,
                               hashes=not args.no_hash, progress=not args.quiet)
    acc = s.get("test_accuracy_mean_logits")
    print(f"wrote {s['out']}: {s['clips']} clips, {len(s['members'])} member(s), {s['duration']} s clips"
          + (f"; test accuracy of the mean logits {acc:.3f} on {s['n_test']} clips" if acc is not None else ""))
    return 0


def cmd_teachers(args) -> int:
    from asclab.distill.workflow import train_teachers
    s = train_teachers(args.recipes, args.data, args.out, folds=args.folds, group_by=args.group_by,
                       overrides=_overrides(args), cache_dir=args.cache_dir, progress=not args.quiet,
                       force=args.force, duration=args.duration)
    if "ensemble_accuracy" in s:
        a = s["ensemble_accuracy"]
        print(f"teacher ensemble accuracy {a['mean']:.3f} +- {a['std']:.3f} over {len(s['folds'])} folds")
    print(f"teacher files: {s.get('teacher_file') or s['teachers']['out']} ({s['total_seconds']:.0f} s)")
    return 0


COMMANDS = {"demo": cmd_demo, "data": cmd_data, "recipes": cmd_recipes, "train": cmd_train, "features": cmd_features,
            "evaluate": cmd_evaluate,
            "predict": cmd_predict, "complexity": cmd_complexity, "submit": cmd_submit, "export": cmd_export,
            "deploy-report": cmd_deploy_report,
            "crossval": cmd_crossval, "logits": cmd_logits, "teachers": cmd_teachers}
COMMANDS.update({"import": cmd_import, "package": cmd_package})

# Output paths named on the command line that must not exist yet (``--force`` replaces them); a
# folder's entry names the result file inside it whose presence means the folder holds results.
# ``package`` checks its --out folder for writability only; train, crossval and teachers lock
# theirs (``asclab.runs``).
NAMED_OUTPUTS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "predict": (("csv", None), ("timeline", None)), "submit": (("out", None),), "export": (("out", None),),
    "import": (("out", None),), "logits": (("out", None),), "evaluate": (("out", "metrics.json"),),
    "package": (("out", None),),
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
    import os

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
        if args.command in ("train", "crossval", "teachers"):  # a held or unusable --out: refused before torch
            from asclab.runs import refuse_if_held
            refuse_if_held(getattr(args, "resume", None) or args.out)
        refuse_existing_outputs(args)  # before any work: an existing output is kept unless --force
        from asclab.terminal import apply_quiet, apply_threads
        apply_quiet(bool(getattr(args, "quiet", False)))
        apply_threads(args.threads)
        from asclab.memory import keep_freed_memory
        keep_freed_memory()  # large tensors reuse heap memory instead of fresh mmaps (asclab.memory)
        return COMMANDS[args.command](args)
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
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _restore_sigterm(previous) -> None:
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
