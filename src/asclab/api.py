"""What each CLI command does, as plain functions (the CLI only parses and prints)."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from asclab.compress.complexity import complexity_report, default_input_shape
from asclab.compress.prune import is_pruned, to_fp16_state
from asclab.config import load_recipe
from asclab.data import open_dataset
from asclab.data.records import Record
from asclab.errors import AsclabError, ConfigError
from asclab.evaluate.inference import Predictor, open_set_decision, predict_records
from asclab.evaluate.metrics import compute_metrics, format_metrics
from asclab.evaluate.plots import plot_confusion, plot_per_device, plot_training_curves
from asclab.features.config import FeatureConfig
from asclab.io import write_json
from asclab.runs import record_run
from asclab.train.checkpoint import ModelFile, load_model_file, resolve_checkpoint, save_model_file


def open_data(data_dir: str | Path, recipe: dict):
    d = recipe["data"]
    return open_dataset(data_dir, split=d.get("split"), test_fold=d.get("test_fold"),
                        class_map=d.get("class_map"), on_error=d.get("on_error", "raise"))


def model_complexity(model, recipe: dict) -> dict:
    """Complexity at the storage precision the recipe deploys (FP16 when ``compress.fp16``),
    for one second of audio at the recipe's feature settings (the DCASE convention)."""
    fcfg = FeatureConfig.from_dict(recipe["features"])
    bits = 16 if (recipe.get("compress") or {}).get("fp16") else 32
    return complexity_report(model, default_input_shape(fcfg, 1.0), bits=bits)


def train_run(recipe_name: str | Path | dict, data_dir: str | Path, out_dir: str | Path, *,
              overrides: list[str] | None = None, cache_dir: Path | None = None, progress: bool = True,
              force: bool = False, all_data: bool = False, trainer_kwargs: dict | None = None,
              resume: bool = False) -> dict:
    """Train a recipe on a data set, save ``model.ckpt``, evaluate on the test split.

    Under DDP (``trainer_kwargs`` devices/num_nodes/strategy) every process trains
    and only global rank 0 writes the run folder; the others return ``{"run", "rank"}``.
    ``resume``: continue the interrupted run in ``out_dir`` (use :func:`resume_run`)."""
    from asclab.train.distributed import is_main_process
    from asclab.train.fit import fit  # lightning import is slow; keep it off the other commands

    t0 = time.time()
    recipe = load_recipe(recipe_name, overrides)
    out = Path(out_dir)
    if (out / "model.ckpt").exists() and resume:
        raise AsclabError(f"{out}: the run has finished (model.ckpt exists); nothing to resume")
    if (out / "model.ckpt").exists() and not force:
        raise AsclabError(f"{out}: already holds a trained model; choose another --out or pass --force")
    members = (recipe.get("workflow") or {}).get("ensemble")
    if members:
        return train_ensemble(recipe, members, data_dir, out, overrides=overrides, cache_dir=cache_dir,
                              progress=progress, force=force, all_data=all_data, trainer_kwargs=trainer_kwargs,
                              resume=resume)
    index = open_data(data_dir, recipe)
    train_records, val_records = list(index.train), list(index.test)
    if all_data:  # McDonnell & Gao 2019 sec. 3.8: retrain on all development data
        train_records, val_records = train_records + val_records, []
    if not train_records:
        raise AsclabError(f"{data_dir}: no training records for this recipe's split")
    if resume:
        note_resume(out)
    elif is_main_process():
        record_run(out, recipe, data=str(data_dir), n_train=len(train_records), n_val=len(val_records),
                   all_data=all_data)
    result = fit(recipe, train_records, [r for r in val_records if r.label is not None], index.classes, out,
                 cache_dir=cache_dir, progress=progress, trainer_kwargs=trainer_kwargs, resume=resume)
    if not result.is_main:  # DDP: rank 0 writes model, metrics and plots
        return {"run": str(out), "rank": "non-zero"}
    model = result.module.model
    final = model_complexity(model, recipe)
    state = model.state_dict()
    if (recipe.get("compress") or {}).get("fp16"):
        state = to_fp16_state(state)
    mf = ModelFile(state_dict=state, classes=index.classes, features=dict(recipe["features"]),
                   model=dict(recipe["model"]), recipe=recipe, duration=recipe["data"].get("duration"),
                   devices=result.devices,
                   data_summary={"data": str(data_dir), "layout": index.layout, "n_train": len(result.train_records),
                                 "n_val": len(val_records)},
                   extra={"train_seconds": result.seconds})
    save_model_file(mf, out / "model.ckpt")
    summary = {"run": str(out), "model": str(out / "model.ckpt"), "train_seconds": round(result.seconds, 1),
               "complexity": final}
    write_json(out / "complexity.json", {**final, "pruning": result.pruning} if result.pruning else final)
    plot_training_curves(out / "logs" / "metrics.csv", out / "training_curves.png")
    if val_records and any(r.label is not None for r in val_records):
        metrics = evaluate_run(out / "model.ckpt", records=val_records, out_dir=out, progress=progress,
                               tta=int(recipe["inference"].get("tta") or 0))
        summary["metrics"] = metrics
        mf.metrics = metrics
        save_model_file(mf, out / "model.ckpt")
    if result.skipped:
        summary["skipped"] = [{"file": f, "reason": why} for f, why in result.skipped]
        print(f"skipped {len(result.skipped)} unreadable file(s); listed in {out / 'summary.json'}", file=sys.stderr)
    summary["total_seconds"] = round(time.time() - t0, 1)
    write_json(out / "summary.json", summary)
    return summary


def train_ensemble(recipe: dict, members: list[str], data_dir, out: Path, **kw) -> dict:
    """Train each member recipe into ``out/members/NAME`` and evaluate their softmax
    average (McDonnell & Gao 2019 sec. 3.7; Gao & McDonnell 2020 submission 4)."""
    from asclab.train.distributed import is_main_process

    resume = kw.pop("resume", False)
    if is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        if not resume:
            record_run(out, recipe, data=str(data_dir), members=members)
    summaries = []
    for m in members:
        member = out / "members" / m
        if resume and (member / "model.ckpt").exists():  # finished before the interruption
            summaries.append(json.loads((member / "summary.json").read_text()))
            continue
        summaries.append(train_run(m, data_dir, member, resume=resume and (member / "recipe.yaml").exists(), **kw))
    if not is_main_process():
        return {"run": str(out), "rank": "non-zero"}
    ckpts = [s["model"] for s in summaries]
    write_json(out / "ensemble.json", {"members": [str(Path(c).relative_to(out)) for c in ckpts]})
    summary = {"run": str(out), "model": str(out), "members": ckpts,
               "train_seconds": round(sum(s["train_seconds"] for s in summaries), 1)}
    if all("metrics" in s for s in summaries):
        summary["metrics"] = evaluate_run(out, data_dir, progress=kw.get("progress", True))
        summary["member_macro_accuracy"] = {m: s["metrics"]["macro_accuracy"] for m, s in zip(members, summaries)}
    write_json(out / "summary.json", summary)
    return summary


def resume_run(run_dir: str | Path, *, data_dir: str | Path | None = None, cache_dir: Path | None = None,
               progress: bool = True, trainer_kwargs: dict | None = None) -> dict:
    """Continue an interrupted ``train_run`` from ``RUN/checkpoints/last.ckpt`` (per stage),
    with the recipe of ``RUN/recipe.yaml`` and the data folder the run recorded
    (``data_dir`` overrides it, e.g. after moving the data)."""
    run = Path(run_dir)
    info_path, recipe_path = run / "run_info.json", run / "recipe.yaml"
    if not recipe_path.exists() or not info_path.exists():
        raise AsclabError(f"{run}: not a run folder (recipe.yaml and run_info.json missing)")
    info = json.loads(info_path.read_text())
    recipe = load_recipe(recipe_path)
    started = (recipe.get("workflow") or {}).get("ensemble") or any(run.glob("checkpoints/last.ckpt")) or any(
        run.glob("stages/*/checkpoints/last.ckpt")) or any(run.glob("stages/*/stage_done.json"))
    if not started:
        print(f"{run}: stopped before its first checkpoint; starting it again", file=sys.stderr)
    return train_run(recipe, data_dir or info["data"], run, cache_dir=cache_dir, progress=progress,
                     all_data=bool(info.get("all_data", False)), trainer_kwargs=trainer_kwargs, resume=bool(started))


def note_resume(run: Path) -> None:
    """Append the time of a resume to ``run_info.json``."""
    from asclab.train.distributed import is_main_process

    path = Path(run) / "run_info.json"
    if not is_main_process() or not path.exists():
        return
    info = json.loads(path.read_text())
    info.setdefault("resumed", []).append({"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": sys.argv})
    write_json(path, info)


def build_features(recipe_name: str | Path | dict, data_dir: str | Path, *, overrides: list[str] | None = None,
                   cache_dir: Path | None = None, workers: int = 1, shard_size: int | None = None,
                   verify: bool = False, progress: bool = True) -> list[dict]:
    """Compute the feature caches ``asclab train`` would use for this recipe and data
    (training and test split), in ``workers`` processes and shards of ``shard_size``
    clips; an interrupted build resumes. One row per cache."""
    from asclab.train.data import feature_cache, needs_waveforms, select_training_records

    recipe = load_recipe(recipe_name, overrides)
    if needs_waveforms(recipe):
        raise AsclabError(f"recipe {recipe.get('name')!r} computes features on the fly (waveform augmentation "
                          "or train.cache_features: false); there is no cache to build")
    index = open_data(data_dir, recipe)
    splits = {"train": select_training_records(list(index.train), recipe, int(recipe["train"].get("seed", 0))),
              "test": [r for r in index.test if r.label is not None]}
    rows = []
    for split, records in splits.items():
        if not records:
            continue
        t0 = time.time()
        cache = feature_cache(records, recipe, cache_dir, progress, workers=workers, shard_size=shard_size,
                              verify=verify)
        rep = cache.report
        rows.append({"split": split, "path": str(cache.path), "clips": len(records),
                     "shards_computed": len(rep.computed) if rep else 0,
                     "shards_reused": len(rep.reused) if rep else 0,
                     "shards_damaged": len(rep.damaged) if rep else 0,
                     "up_to_date": rep is None, "seconds": round(time.time() - t0, 1)})
    return rows


def ensemble_members(path: str | Path) -> list[Path]:
    """The member checkpoints of an ensemble run folder, or [] for a single model."""
    p = Path(path)
    spec = p / "ensemble.json" if p.is_dir() else None
    if spec is None or not spec.exists():
        return []
    try:
        members = json.loads(spec.read_text())["members"]
    except (ValueError, KeyError) as exc:
        raise AsclabError(f"{spec}: malformed ensemble description ({exc})") from None
    return [p / m for m in members]


def evaluate_run(ckpt: str | Path, data_dir: str | Path | None = None, *, records: list[Record] | None = None,
                 out_dir: str | Path | None = None, split: str = "test", tta: int | None = None,
                 ensemble: list[str | Path] | None = None, progress: bool = True, batch_size: int = 16,
                 on_error: str = "raise") -> dict:
    """Metrics (accuracy, macro class-wise accuracy, per class and per device,
    log loss), a confusion-matrix PNG and metrics.json in the run folder."""
    members = ensemble_members(ckpt)
    if members:
        ckpt, ensemble = members[0], members[1:] + list(ensemble or [])
    ckpt_path = resolve_checkpoint(ckpt)
    predictors = [Predictor.load(ckpt_path)] + [Predictor.load(p) for p in (ensemble or [])]
    pred = predictors[0]
    recipe = pred.meta.recipe or {}
    if records is None:
        if data_dir is None:
            raise ConfigError("evaluate needs --data DIR")
        index = open_data(data_dir, recipe) if recipe else open_dataset(data_dir)
        records = list(index.test if split == "test" else index.train)
    labelled = [r for r in records if r.label is not None]
    if not labelled:
        raise AsclabError("no labelled records to evaluate")
    unknown = sorted({r.label for r in labelled} - set(pred.classes))
    if unknown:
        raise AsclabError(f"test labels not known to the model: {', '.join(unknown[:5])}")
    inf = recipe.get("inference") or {}
    n_tta = int(inf.get("tta") or 0) if tta is None else tta
    skipped: list = []
    probs = predict_records(predictors, labelled, batch_size=batch_size, tta=n_tta,
                            tta_augment=inf.get("tta_augment"), progress=progress,
                            on_error=on_error, skipped=skipped)
    ok = ~np.isnan(probs).any(axis=1)
    kept = [r for r, k in zip(labelled, ok) if k]
    y = np.array([pred.classes.index(r.label) for r in kept])
    probs = probs[ok]
    y_pred = None
    openset = inf.get("openset")
    if openset and openset.get("unknown_label") in pred.classes:
        y_pred = open_set_decision(probs, pred.classes.index(openset["unknown_label"]),
                                   float(openset.get("weight", 5.0)))
    m = compute_metrics(probs, y, pred.classes, devices=[r.device for r in kept], y_pred=y_pred)
    result = m.to_dict()
    result.update({"checkpoint": str(ckpt_path), "tta": n_tta, "ensemble_size": len(predictors),
                   "skipped": [{"file": f, "reason": why} for f, why in skipped]})
    if out_dir is None:
        out_dir = Path(members[0]).parents[2] if members else ckpt_path.parent
    out_dir = Path(out_dir)
    write_json(out_dir / "metrics.json", result)
    plot_confusion(m.confusion, pred.classes, out_dir / "confusion.png",
                   title=f"macro accuracy {m.macro_accuracy:.3f}")
    if m.per_device:
        plot_per_device(m.per_device, out_dir / "per_device.png")
    result["text"] = format_metrics(m)
    return result


def classify_recordings(ckpt: str | Path, paths: list[str | Path], *, hop: float | None = None,
                        batch_size: int = 16, progress: bool = True, on_error: str = "raise"):
    """Files and folders (recursively) classified in windows of the model's clip length
    (``asclab.evaluate.longform``). Returns ``(results, skipped)``: one ``FileResult``
    (timeline + whole-file decision) per readable file, and ``(file, reason)`` pairs."""
    from asclab.evaluate.longform import predict_long

    pred = Predictor.load(ckpt)
    skipped: list = []
    results = predict_long(pred, paths, hop=hop, batch_size=batch_size, on_error=on_error, skipped=skipped,
                           progress=progress)
    return results, skipped


def predict_files(ckpt: str | Path, paths: list[str | Path], *, batch_size: int = 16, top: int = 3,
                  progress: bool = True, on_error: str = "raise", hop: float | None = None) -> list[dict]:
    """Label, top probabilities, whole-file probabilities and window timeline per file."""
    results, skipped = classify_recordings(ckpt, paths, hop=hop, batch_size=batch_size, progress=progress,
                                           on_error=on_error)
    for f, why in skipped:
        print(f"skipped {f}: {why}", file=sys.stderr)
    return [{**r.to_dict(), "top": r.top(top)} for r in results]


def complexity_targets(targets: list[str]) -> dict[str, dict]:
    """Complexity reports for model names, recipes or checkpoints (default: every model
    at its paper's default recipe input, or 1 s of 32 kHz 256-mel audio)."""
    from asclab.config import list_recipes
    from asclab.models import create_model, list_models

    reports: dict[str, dict] = {}
    recipes = list_recipes()
    for t in targets or list_models():
        p = Path(t)
        if p.suffix == ".ckpt" or p.is_dir():
            pred = Predictor.load(p)
            reports[str(p)] = model_complexity(pred.model, pred.meta.recipe)
            continue
        if t in list_models():
            recipe = _default_recipe_for_model(t, recipes)
        else:
            recipe = load_recipe(t)
        fcfg = FeatureConfig.from_dict(recipe["features"])
        kwargs = {k: v for k, v in recipe["model"].items() if k != "name"}
        model = create_model(recipe["model"]["name"], num_classes=int(recipe["model"].get("num_classes", 10)),
                             in_chans=fcfg.in_chans, **{k: v for k, v in kwargs.items() if k != "num_classes"})
        rep = model_complexity(model, recipe)
        rep["recipe"] = recipe.get("name")
        reports[t] = rep
    return reports


def _default_recipe_for_model(model_name: str, recipes: dict[str, str]) -> dict:
    for name in recipes:
        r = load_recipe(name)
        if r["model"]["name"] == model_name:
            return r
    return load_recipe({"name": model_name, "model": {"name": model_name}})


def run_demo(out_dir: str | Path = "demo_out", *, epochs: int | None = None, per_cell: int = 20,
             progress: bool = True) -> dict:
    """The README's first command: synthesise the SYNTHETIC scene set, train the
    quickstart recipe (CP-Mobile) for a few CPU minutes, evaluate, predict."""
    from asclab.data.synth import make_synthetic_dataset

    out = Path(out_dir)
    data = out / "synthetic_data"
    t0 = time.time()
    if not (data / "meta.csv").exists():
        print(f"[1/4] writing the SYNTHETIC scene set to {data}")
        kwargs = {"n_per_class_device": per_cell} if per_cell else {}
        make_synthetic_dataset(data, seconds=1.0, sample_rate=32000, seed=0, **kwargs)
    else:
        print(f"[1/4] reusing the SYNTHETIC scene set in {data}")
    print("[2/4] training recipe 'quickstart' (CP-Mobile, 1 s clips)")
    overrides = [f"train.epochs={epochs}"] if epochs else []
    summary = train_run("quickstart", data, out / "run", overrides=overrides, cache_dir=out / "cache",
                        progress=progress, force=True)
    print("[3/4] evaluation on the synthetic test split (unseen devices s4-s6 included)")
    print(summary["metrics"]["text"])
    print("[4/4] predicting a few test clips")
    index = open_data(data, load_recipe("quickstart"))
    # four scenes through devices seen (a, b) and unseen (s4, s6) in training
    picks = {}
    for k, d in enumerate(("a", "b", "s4", "s6")):
        scene = index.classes[(3 * k) % len(index.classes)]
        picks[d] = next((r for r in index.test if r.device == d and r.label == scene), None)
    clips = [r.path for r in picks.values() if r is not None] or [index.test[0].path]
    rows = predict_files(out / "run" / "model.ckpt", clips, progress=False)
    for (r, rec) in zip(rows, clips):
        truth = next(x.label for x in index.test if x.path == rec)
        print(f"  {Path(r['file']).name:<42} predicted {r['label']:<18} (true {truth})")
    total = time.time() - t0
    run = out / "run"
    print(f"\ndone in {total:.0f} s. Macro accuracy on the synthetic test split: "
          f"{summary['metrics']['macro_accuracy']:.3f} (chance 0.100)")
    print(f"  model:            {run / 'model.ckpt'}")
    print(f"  metrics:          {run / 'metrics.json'}")
    print(f"  confusion matrix: {run / 'confusion.png'}")
    print(f"  per-device plot:  {run / 'per_device.png'}")
    print(f"  training log:     {run / 'logs' / 'metrics.csv'} and {run / 'training_curves.png'}")
    print(f"next: asclab predict {run / 'model.ckpt'} YOUR_RECORDING.wav")
    return {**summary, "demo_seconds": round(total, 1)}


def crossval(recipe_name: str | Path, data_dir: str | Path, out_dir: str | Path, *, folds: int | None = None,
             overrides: list[str] | None = None, cache_dir: Path | None = None, progress: bool = True,
             force: bool = False) -> dict:
    """Train and evaluate on each predefined fold (e.g. ESC-10's five); write per-fold
    and mean +- std metrics, a summed confusion matrix and the total time."""
    t0 = time.time()
    recipe = load_recipe(recipe_name, overrides)
    index = open_dataset(data_dir, class_map=recipe["data"].get("class_map"))
    available = sorted({r.fold for r in index.records if r.fold is not None})
    if not available:
        raise AsclabError(f"{data_dir}: the data set defines no folds (a fold column or a file-name pattern)")
    chosen = available[:folds] if folds else available
    if folds and folds > len(available):
        raise AsclabError(f"{data_dir}: asked for {folds} folds, the data set has {len(available)}")
    out = Path(out_dir)
    results = []
    for fold in chosen:
        print(f"fold {fold} of {chosen[-1]}")
        # The held-out fold is the test set: keep the last epoch's weights rather than
        # the epoch that scored best on it, so the estimate is not chosen on the test data.
        s = train_run(recipe_name, data_dir, out / f"fold{fold}", overrides=["train.keep=last"] +
                      list(overrides or []) + [f"data.test_fold={fold}"], cache_dir=cache_dir,
                      progress=progress, force=force)
        m = s["metrics"]
        results.append({"fold": fold, "accuracy": m["accuracy"], "macro_accuracy": m["macro_accuracy"],
                        "log_loss": m["log_loss"], "train_seconds": s["train_seconds"], "n_test": m["n"],
                        "confusion": m["confusion"]})
    classes = index.classes
    total_cm = np.sum([np.array(r["confusion"]) for r in results], axis=0)
    summary = {"recipe": recipe["name"], "data": str(data_dir), "folds": chosen, "per_fold": results}
    for key in ("accuracy", "macro_accuracy", "log_loss"):
        vals = np.array([r[key] for r in results])
        summary[key] = {"mean": float(vals.mean()), "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0}
    summary["confusion"] = total_cm.tolist()
    summary["classes"] = classes
    summary["total_seconds"] = round(time.time() - t0, 1)
    summary["complexity"] = json.loads((out / f"fold{chosen[0]}" / "complexity.json").read_text())
    write_json(out / "crossval.json", summary)
    plot_confusion(total_cm, classes, out / "confusion_sum.png",
                   title=f"{len(chosen)}-fold summed, accuracy {summary['accuracy']['mean']:.3f}")
    return summary
