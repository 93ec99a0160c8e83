"""The ``asclab`` argument parser: every command's arguments, and the shortcuts
(``--epochs``, ``--seed`` ...) as recipe overrides."""
from __future__ import annotations

import argparse

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

    ft = sub.add_parser("finetune", help="fine-tune a model file (an imported published model, a run) on your data",
                        description="Train from MODEL's weights: its front end and network come from the model "
                                    "file, the training settings from the fine-tuning recipe.")
    ft.add_argument("model", metavar="MODEL", help="asclab model file or run folder (e.g. from asclab import)")
    ft.add_argument("--data", required=True, help="data folder")
    ft.add_argument("--out", required=True, help="run folder")
    ft.add_argument("--recipe", default=None, help="fine-tuning recipe (default: finetune_cp_mobile, or "
                                                     "finetune_cp_mobile_1s for clips under 3 s)")
    ft.add_argument("--general", action="store_true", help="a device container: fine-tune only its general model (default: the general model, then each device model, recipe finetune_cp_mobile_devices)")
    ft.add_argument("--cache-dir", default=None)
    ft.add_argument("--force", action="store_true", help="overwrite a run folder that holds a model")
    ft.add_argument("--quiet", action="store_true")
    _add_overrides(ft)

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
    ex.add_argument("--format", default="onnx", metavar="BACKEND",
                    help="a registered export backend (asclab.export.backend): onnx (default), or litert: a .tflite file taking features [1, C, F, T] (pip install 'asclab[litert]')")
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
    cv.add_argument("--from", dest="from_model", default=None, metavar="MODEL",
                    help="fine-tune MODEL on each fold (RECIPE is then a fine-tuning recipe, e.g. finetune_cp_mobile)")
    cv.add_argument("--general", action="store_true", help="with --from a device container: its general model")
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


def _add_distill(sub) -> None:
    sp = sub.add_parser("soup", help="average the weights of fine-tunes of one model (uniform or greedy model soup)",
                        description="Uniform: every member's weights averaged. Greedy: members ranked on the test "
                                    "split of --greedy-on (validation data, not the data you report on), each kept "
                                    "only if the soup's accuracy there does not drop.")
    sp.add_argument("models", nargs="+", metavar="MODEL", help="model files or run folders (fine-tunes of one model)")
    sp.add_argument("--out", required=True, metavar="FILE", help="the soup's model file")
    sp.add_argument("--greedy-on", default=None, metavar="DIR", help="validation data for the greedy soup")
    sp.add_argument("--force", action="store_true", help="replace FILE if it exists")
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
