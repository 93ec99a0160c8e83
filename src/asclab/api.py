"""What each CLI command does, as plain functions (the CLI only parses and prints)."""
from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from asclab.compress.complexity import complexity_report, default_input_shape
from asclab.compress.prune import is_pruned, to_fp16_state
from asclab.compress.qat import INFO_KEY as QAT_INFO_KEY, quantization_info
from asclab.config import load_config, load_recipe
from asclab.data import open_dataset
from asclab.data.records import Record
from asclab.distill.targets import TeacherLogits
from asclab.data.tables import write_table
from asclab.errors import AsclabError, ConfigError
from asclab.data.validation import ValidationSpec, carve_validation, kept_weights, recording_id
from asclab.evaluate.inference import Predictor, predict_records
from asclab.evaluate.openset import OpenSetRule, decide, tune_weight
from asclab.evaluate.metrics import compute_metrics, format_metrics
from asclab.evaluate.plots import plot_confusion, plot_per_device, plot_training_curves
from asclab.features.config import FeatureConfig
from asclab.io import write_json
from asclab.runs import record_run
from asclab.config import InferenceConfig, RecipeConfig, TTAAugmentConfig
from asclab.train.checkpoint import ModelFile, load_model_file, resolve_checkpoint, save_model_file


def open_data(data_dir: str | Path, recipe: dict | RecipeConfig):
    """The data set a recipe trains and evaluates on (its ``data`` block: split, folds, class
    map, classes, skip policy, path checks); ``recipe`` typed, or a dict (a model file's recipe)
    whose ``data`` block is checked here."""
    from asclab.data.index import declared_classes, single_clip_classes
    from asclab.config import DataConfig, parse_block

    d = recipe.data if isinstance(recipe, RecipeConfig) else parse_block(DataConfig, recipe.get("data") or {}, "data")
    index = open_dataset(data_dir, split=d.split, test_fold=d.test_fold, class_map=d.class_map,
                         on_error=d.on_error, group_folds=_group_folds(d.group_folds),
                         allow_outside=d.allow_outside, classes=d.classes)
    if index.layout in ("manifest", "folders") and d.classes is None and declared_classes(index.root) is None:
        singles = single_clip_classes(index.records)  # classes from the labels: say which rest on one clip
        if singles:
            print(f"note: {len(singles)} class(es) with a single clip: {', '.join(singles[:10])}", file=sys.stderr)
    return index


def _group_folds(g) -> dict | None:
    """``data.group_folds`` as the mapping ``asclab.data.group_folds`` reads."""
    return None if g is None else {"folds": g.folds, "by": g.by, "seed": g.seed}


def model_entry(model, recipe: dict) -> dict:
    """The model file's ``model`` entry: the recipe's, or, after device-specific fine-tuning,
    a ``device_container`` around it (``asclab.models.device_container``)."""
    from asclab.models.device_container import is_device_container

    if is_device_container(model):
        return {"name": "device_container", "base": dict(recipe["model"]), "devices": list(model.devices)}
    return dict(recipe["model"])


def model_complexity(model, recipe: dict, input_shape: tuple[int, ...] | None = None, *,
                     config: RecipeConfig | None = None) -> dict:
    """Complexity at the storage precision the recipe deploys (FP16 when ``compress.fp16``),
    for ``input_shape`` or else one second of audio at the recipe's feature settings (the DCASE convention).
    ``config``: the recipe's typed configuration when the caller holds it (its FeatureConfig is used)."""
    from asclab.compress.qat import float_architecture, is_int8
    from asclab.models.device_container import DeviceContainer

    fcfg = config.features if config is not None else FeatureConfig.from_dict(recipe["features"])
    bits = 16 if (recipe.get("compress") or {}).get("fp16") else 32
    if is_int8(model):  # asclab.compress.qat: 1 byte per parameter of the float architecture
        bits, model = 8, float_architecture(model)
    shape = tuple(input_shape) if input_shape is not None else default_input_shape(fcfg, 1.0)
    if isinstance(model, DeviceContainer):  # 2025 rule: each device model within the limits on its own
        per = {k: complexity_report(m, shape, bits=bits) for k, m in model.members().items()}
        report = copy.deepcopy(per["base"])
        for key, verdict in report["challenges"].items():
            verdict["pass"] = all(r["challenges"][key]["pass"] for r in per.values())
        report["per_device"] = per
        return report
    return complexity_report(model, shape, bits=bits)


def train_run(recipe_name: str | Path | dict, data_dir: str | Path, out_dir: str | Path, *,
              config: RecipeConfig | None = None, **kw) -> dict:
    """Train a recipe on a data set (:func:`_train_run_claimed`) in a run folder it holds
    alone: the recipe is checked first, ``--out`` must be new, empty or an asclab run,
    a second run on it is refused at once, and a run that fails before its first
    checkpoint in a folder it created leaves nothing behind (``asclab.runs``).
    ``config``: the typed configuration when the caller parsed the recipe already
    (``recipe_name`` is then the merged dict :func:`asclab.config.load_config` returned with
    it, and no overrides are given); it is not parsed again (:func:`resume_run`)."""
    from asclab.runs import claim_run_folder
    from asclab.train.distributed import is_main_process

    if config is not None:
        if not isinstance(recipe_name, dict) or kw.get("overrides"):
            raise TypeError("train_run(config=...) takes the merged recipe dict load_config returned with it "
                            "and no overrides")
        recipe, cfg = recipe_name, config
    else:  # the recipe parsed and every key checked once, before the folder is touched
        recipe, cfg = load_config(recipe_name, kw.get("overrides"))
    with claim_run_folder(out_dir, lock=is_main_process()):
        return _train_run_claimed(recipe, cfg, data_dir, out_dir, **kw)


def _train_run_claimed(recipe: dict, cfg: RecipeConfig, data_dir: str | Path, out_dir: str | Path, *,
                       overrides: list[str] | None = None, cache_dir: Path | None = None, progress: bool = True,
                       force: bool = False, all_data: bool = False, trainer_kwargs: dict | None = None,
                       resume: bool = False) -> dict:
    """Train a loaded recipe (``recipe`` and its typed ``cfg``, :func:`asclab.config.load_config`)
    on a data set, save ``model.ckpt``, evaluate on the test split.

    Under DDP (``trainer_kwargs`` devices/num_nodes/strategy) every process trains
    and only global rank 0 writes the run folder; the others return ``{"run", "rank"}``.
    ``resume``: continue the interrupted run in ``out_dir`` (use :func:`resume_run`)."""
    from asclab.train.distributed import is_main_process
    from asclab.train.fit import fit  # lightning import is slow; keep it off the other commands

    t0 = time.time()
    keeps = kept_weights(recipe)  # train.keep: best only with a validation split carved from training
    validation = ValidationSpec.from_recipe(recipe)
    openset = OpenSetRule.from_config(recipe["inference"].get("openset"))
    if openset is not None and openset.tune and validation is None:
        raise ConfigError("inference.openset.tune: true needs a validation split carved from the training data "
                          "(data.validation: {fraction: 0.1, by: identifier})")
    out = Path(out_dir)
    if (out / "model.ckpt").exists() and resume:
        raise AsclabError(f"{out}: the run has finished (model.ckpt exists); nothing to resume")
    if (out / "model.ckpt").exists() and not force:
        raise AsclabError(f"{out}: already holds a trained model; choose another --out or pass --force")
    members = cfg.workflow.ensemble if cfg.workflow is not None else None
    if members:
        return train_ensemble(recipe, members, data_dir, out, overrides=overrides, cache_dir=cache_dir,
                              progress=progress, force=force, all_data=all_data, trainer_kwargs=trainer_kwargs,
                              resume=resume)
    index = open_data(data_dir, cfg)
    train_records, val_records = list(index.train), list(index.test)
    if all_data:  # McDonnell & Gao 2019 sec. 3.8: retrain on all development data
        train_records, val_records = train_records + val_records, []
    if not train_records:
        raise AsclabError(f"{data_dir}: no training records for this recipe's split")
    if not all_data and not any(r.label is not None for r in val_records):  # reported, never silently skipped
        print(f"note: {data_dir} has no labelled test records for this split; the run will not be evaluated",
              file=sys.stderr)
    carved: list[Record] = []
    if validation is not None:  # whole recordings out of the training records (asclab.data.validation)
        train_records, carved = carve_validation(train_records, validation, cfg.train.seed)
    # data.teacher_logits (loss kd): refused here if it lacks a training clip or orders the classes otherwise
    teachers = TeacherLogits.for_recipe(recipe, index.root, index.classes, train_records)
    if resume:
        note_resume(out)
    elif is_main_process():
        record_run(out, recipe, data=str(data_dir), n_train=len(train_records), n_val=len(val_records),
                   all_data=all_data, n_validation=len(carved))
    # Validation during training: the carved split when there is one (it may choose the best epoch);
    # otherwise the test split, for the training curves only (the last epoch is kept).
    monitor = carved if validation is not None else [r for r in val_records if r.label is not None]
    result = fit(recipe, train_records, monitor, index.classes, out,
                 cache_dir=cache_dir, progress=progress, trainer_kwargs=trainer_kwargs, resume=resume,
                 teachers=teachers, config=cfg)
    if not result.is_main:  # DDP: rank 0 writes model, metrics and plots
        return {"run": str(out), "rank": "non-zero"}
    model = result.module.model
    final = model_complexity(model, recipe, config=cfg)
    state = model.state_dict()
    quant = quantization_info(model)  # an int8 model (workflow stage qat) keeps its int8 state as it is
    if cfg.compress is not None and cfg.compress.fp16 and quant is None:
        state = to_fp16_state(state)
    weights = weights_kept(keeps, result.best_path, carved)
    mf = ModelFile(state_dict=state, classes=index.classes, features=dict(recipe["features"]),
                   model=model_entry(model, recipe), recipe=recipe, duration=cfg.data.duration,
                   devices=result.devices,
                   data_summary={"data": str(data_dir), "layout": index.layout, "n_train": len(result.train_records),
                                 "n_val": len(val_records), "n_validation": len(carved), "weights": weights},
                   extra={"train_seconds": result.seconds, **({QAT_INFO_KEY: quant} if quant else {})},
                   openset=openset.to_dict() if openset is not None else None)
    save_model_file(mf, out / "model.ckpt")
    if openset is not None and openset.tune:
        mf.openset = tuned_openset(out / "model.ckpt", openset, carved, progress).to_dict()
        save_model_file(mf, out / "model.ckpt")
    summary = {"run": str(out), "model": str(out / "model.ckpt"), "train_seconds": round(result.seconds, 1),
               "complexity": final, "weights": weights, "openset": mf.openset}
    write_json(out / "complexity.json", {**final, "pruning": result.pruning} if result.pruning else final)
    plot_training_curves(out / "logs" / "metrics.csv", out / "training_curves.png")
    # data.on_error: skip -- metadata rows and audio files left out, all listed (summary.json, metrics.json)
    run_skipped = [{"file": f, "row": row, "reason": why} for f, row, why in index.skipped] + \
        [{"file": f, "reason": why} for f, why in result.skipped]
    if val_records and any(r.label is not None for r in val_records):
        metrics = evaluate_run(out / "model.ckpt", records=val_records, out_dir=out, progress=progress,
                               tta=cfg.inference.tta, on_error=cfg.data.on_error)
        if run_skipped:  # the README's promise: every skipped file of the run is listed in metrics.json
            listed = {s["file"] for s in metrics["skipped"]}
            metrics["skipped"] = [s for s in run_skipped if s["file"] not in listed] + metrics["skipped"]
            write_json(out / "metrics.json", {k: v for k, v in metrics.items() if k != "text"})
        summary["metrics"] = metrics
        mf.metrics = metrics
        save_model_file(mf, out / "model.ckpt")
    if run_skipped:
        summary["skipped"] = run_skipped
        print(f"skipped {len(run_skipped)} unreadable file(s) or metadata row(s); listed in {out / 'summary.json'} "
              "and metrics.json", file=sys.stderr)
    summary["total_seconds"] = round(time.time() - t0, 1)
    write_json(out / "summary.json", summary)
    return summary


def weights_kept(keeps: list[str], best_path: Path | None, carved: list[Record]) -> str:
    """Which weights a run kept, in words (model file, summary, demo)."""
    if keeps[-1] == "best" and best_path is not None:
        n_rec = len({recording_id(r) for r in carved})
        return f"best epoch on the validation split carved from training ({len(carved)} clips, {n_rec} recordings)"
    return "last epoch"


def tuned_openset(ckpt: Path, rule: OpenSetRule, carved: list[Record], progress: bool) -> OpenSetRule:
    """The open-set weight chosen on the carved validation split (McDonnell & Gao 2019 sec. 3.7)."""
    pred = Predictor.load(ckpt)
    labelled = [r for r in carved if r.label in pred.classes]
    if rule.index(pred.classes) is None or not any(r.label == rule.unknown_label for r in labelled):
        raise ConfigError(f"inference.openset.tune: the validation split holds no {rule.unknown_label!r} clips "
                          "to tune the weight on")
    probs = predict_records(pred, labelled, progress=progress)
    y = np.array([pred.classes.index(r.label) for r in labelled])
    weight, score = tune_weight(probs, y, pred.classes, rule)
    return OpenSetRule(rule.unknown_label, weight, tune=True,
                       tuned_on=f"validation split ({len(labelled)} clips), task 1c score {score:.4f}")


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
    recipe, cfg = load_config(recipe_path)  # parsed once; train_run takes the typed configuration as it is
    started = bool(cfg.workflow is not None and cfg.workflow.ensemble) or any(run.glob("checkpoints/last.ckpt")) \
        or any(run.glob("stages/*/checkpoints/last.ckpt")) or any(run.glob("stages/*/stage_done.json"))
    if not started:
        print(f"{run}: stopped before its first checkpoint; starting it again", file=sys.stderr)
    return train_run(recipe, data_dir or info["data"], run, config=cfg, cache_dir=cache_dir, progress=progress,
                     all_data=bool(info.get("all_data", False)), trainer_kwargs=trainer_kwargs, resume=started)


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

    recipe, cfg = load_config(recipe_name, overrides)
    if needs_waveforms(cfg):
        raise AsclabError(f"recipe {cfg.name!r} computes features on the fly (waveform augmentation "
                          "or train.cache_features: false); there is no cache to build")
    index = open_data(data_dir, cfg)
    seed = cfg.train.seed
    train, carved = list(index.train), []
    validation = ValidationSpec.from_recipe(recipe)
    if validation is not None:  # the same split train_run carves
        train, carved = carve_validation(train, validation, seed)
    test = [r for r in index.test if r.label is not None]
    if cfg.data.on_error == "skip":  # as train does: unreadable audio counted, reported, left out
        from asclab.train.data import readable_records
        duration, rate = cfg.data.duration, cfg.data.expect_rate
        (train, bad), (carved, bad_val), (test, bad_test) = (readable_records(x, duration, rate)
                                                             for x in (train, carved, test))
        for _, why in bad + bad_val + bad_test:
            print(f"skipped {why}", file=sys.stderr)
        if bad + bad_val + bad_test:
            print(f"skipped {len(bad + bad_val + bad_test)} unreadable file(s)", file=sys.stderr)
    splits = {"train": select_training_records(train, cfg, seed), "validation": carved, "test": test}
    rows = []
    for split, records in splits.items():
        if not records:
            continue
        t0 = time.time()
        cache = feature_cache(records, cfg, cache_dir, progress, workers=workers, shard_size=shard_size,
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
                 on_error: str = "raise", precision: str | None = None) -> dict:
    """Metrics (accuracy, macro class-wise accuracy, per class and per device,
    log loss), a confusion-matrix PNG and metrics.json in the run folder.
    ``precision``: run the network in ``fp16`` (or ``fp32``) arithmetic instead of the model
    file's own; with fp16 the same clips also go through the fp32 network and metrics.json's
    ``precision`` block reports the change (``asclab.evaluate.precision``)."""
    from asclab.evaluate.precision import at_precision, format_change, precision_change
    members = ensemble_members(ckpt)
    if members:
        ckpt, ensemble = members[0], members[1:] + list(ensemble or [])
    ckpt_path = resolve_checkpoint(ckpt)
    predictors = [Predictor.load(ckpt_path)] + [Predictor.load(p) for p in (ensemble or [])]
    reference = None  # the fp32 networks an fp16 evaluation is compared against
    if precision is not None:
        reference = [at_precision(p, "fp32") for p in predictors] if precision == "fp16" else None
        predictors = [at_precision(p, precision) for p in predictors]
    pred = predictors[0]
    recipe = pred.meta.recipe or {}
    if records is None:
        if data_dir is None:
            raise ConfigError("evaluate needs --data DIR")
        index = open_data(data_dir, recipe) if recipe else open_dataset(data_dir)
        records = list(index.test if split == "test" else index.train)
    labelled = [r for r in records if r.label is not None]
    if not labelled:
        where = f"{data_dir}: the {split} split" if data_dir is not None else "the records given"
        raise AsclabError(f"{where} holds no labelled records; there is nothing to evaluate")
    unknown = sorted({r.label for r in labelled} - set(pred.classes))
    if unknown:
        from asclab.data.tables import where
        first = next(r for r in labelled if r.label not in pred.classes)
        at = where(first.extra.get("source", first.path), first.extra.get("row")) if first.extra else f"{first.path}: "
        raise AsclabError(f"{at}label {first.label!r} of {first.extra.get('filename', first.path)} is not one of the "
                          f"model's classes ({len(unknown)} unknown label(s) in all: {', '.join(unknown[:5])})")
    inf = inference_settings(ckpt_path, recipe)
    n_tta = inf.tta if tta is None else tta
    tta_augment = tta_augment_mapping(inf.tta_augment)
    skipped: list = []
    probs = predict_records(predictors, labelled, batch_size=batch_size, tta=n_tta,
                            tta_augment=tta_augment, progress=progress,
                            on_error=on_error, skipped=skipped)
    ok = ~np.isnan(probs).any(axis=1)
    kept = [r for r, k in zip(labelled, ok) if k]
    y = np.array([pred.classes.index(r.label) for r in kept])
    probs = probs[ok]
    rule = pred.openset  # the model file's rule (weight as tuned), asclab.evaluate.openset
    y_pred = decide(probs, pred.classes, rule) if rule is not None and rule.index(pred.classes) is not None else None
    m = compute_metrics(probs, y, pred.classes, devices=[r.device for r in kept], y_pred=y_pred)
    result = m.to_dict()
    result.update({"checkpoint": str(ckpt_path), "tta": n_tta, "ensemble_size": len(predictors),
                   "openset": rule.to_dict() if y_pred is not None else None,
                   "skipped": [{"file": f, "reason": why} for f, why in skipped],
                   "precision": {"precision": pred.precision}})
    if reference is not None:  # the same clips through the fp32 network(s)
        p32 = predict_records(reference, kept, batch_size=batch_size, tta=n_tta,
                              tta_augment=tta_augment, progress=progress)
        y32 = decide(p32, pred.classes, rule) if y_pred is not None else None
        m32 = compute_metrics(p32, y, pred.classes, y_pred=y32)
        result["precision"] = precision_change(m32, m, p32, probs, pred.precision)
    compared = general_vs_specific(pred, kept, y, m, batch_size, progress) if len(predictors) == 1 else None
    if compared is not None:  # DCASE 2025: each device's model against the general model
        result["device_specific"] = compared
    if out_dir is None:
        out_dir = Path(members[0]).parents[2] if members else ckpt_path.parent
    out_dir = Path(out_dir)
    write_json(out_dir / "metrics.json", result)
    plot_confusion(m.confusion, pred.classes, out_dir / "confusion.png",
                   title=f"macro accuracy {m.macro_accuracy:.3f}")
    if m.per_device:
        plot_per_device(m.per_device, out_dir / "per_device.png")
    result["text"] = format_metrics(m)
    if reference is not None:
        result["text"] += "\n" + format_change(result["precision"])
    if compared is not None:
        from asclab.evaluate.device_models import format_comparison

        result["text"] += "\n" + format_comparison(compared)
    return result


def inference_settings(ckpt: Path, recipe: dict) -> InferenceConfig:
    """The ``inference`` block of a model file's recipe, typed (``asclab.config.InferenceConfig``)
    and checked as a recipe's is: a tampered one is refused in one line naming the file."""
    from asclab.errors import CheckpointError
    from asclab.config import parse_block

    try:
        return parse_block(InferenceConfig, copy.deepcopy(recipe.get("inference") or {}), "inference")
    except ConfigError as exc:
        raise CheckpointError(f"{ckpt}: refused: its inference settings are not valid ({exc})") from None


def tta_augment_mapping(block: TTAAugmentConfig | list | None) -> dict | None:
    """``inference.tta_augment`` typed, as the ``{waveform: [...], spec: [...]}`` mappings the
    augmentation builders take (``Predictor.probs``); None when the recipe sets none."""
    if not isinstance(block, TTAAugmentConfig):
        return None
    return {"waveform": [b.as_mapping() for b in block.waveform], "spec": [b.as_mapping() for b in block.spec]}


def general_vs_specific(pred: Predictor, records: list[Record], y: np.ndarray, specific, batch_size: int,
                        progress: bool) -> dict | None:
    """For a device container: per-device accuracy of the general model on the same clips
    beside the device models' (``asclab.evaluate.device_models``); None for other models."""
    from asclab.evaluate.device_models import device_comparison
    from asclab.models.device_container import is_device_container

    if not is_device_container(pred.model):
        return None
    probs = predict_records(pred.for_device(None), records, batch_size=batch_size, progress=progress)
    general = compute_metrics(probs, y, pred.classes, devices=[r.device for r in records])
    return device_comparison(general, specific, pred.model.devices)


def classify_recordings(ckpt: str | Path, paths: list[str | Path], *, hop: float | None = None,
                        batch_size: int = 16, progress: bool = True, on_error: str = "raise",
                        device: str | None = None):
    """Files and folders (recursively) classified in windows of the model's clip length
    (``asclab.evaluate.longform``). Returns ``(results, skipped)``: one ``FileResult``
    (timeline + whole-file decision) per readable file, and ``(file, reason)`` pairs.
    ``device``: the recording device's id (a device container's model for it)."""
    from asclab.evaluate.longform import predict_long

    pred = Predictor.load(ckpt)
    skipped: list = []
    results = predict_long(pred, paths, hop=hop, batch_size=batch_size, on_error=on_error, skipped=skipped,
                           progress=progress, device=device)
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
    """Complexity reports for model names, recipes or checkpoints (default: every model).

    A model name is measured at its own paper's input (``asclab.compress.paper_inputs``;
    a family not listed there at 1 s of its first recipe's front end), a recipe at
    one clip of its ``data.duration`` (1 s when unset), a checkpoint at 1 s."""
    from asclab.compress.paper_inputs import PAPER_INPUTS
    from asclab.config import list_recipes
    from asclab.models import create_model, list_models

    reports: dict[str, dict] = {}
    recipes = list_recipes()
    # the device container wraps another model; it is listed per member for a model file that holds one
    for t in targets or [m for m in list_models() if m != "device_container"]:
        p = Path(t)
        if p.suffix == ".ckpt" or p.is_dir():
            pred = Predictor.load(p)
            rep = model_complexity(pred.model, pred.meta.recipe)
            if "per_device" in rep:  # a device container: one row per member model
                reports.update({f"{p} [{k}]": r for k, r in rep["per_device"].items()})
            else:
                reports[str(p)] = rep
            continue
        paper = PAPER_INPUTS.get(t) if t in list_models() else None
        if paper is not None:
            recipe = load_recipe(paper.recipe) if paper.recipe else load_recipe(
                {"name": t, "model": {"name": t}, "compress": {"fp16": paper.fp16}})
        elif t in list_models():
            recipe = _default_recipe_for_model(t, recipes)
        else:
            recipe = load_recipe(t)
        fcfg = FeatureConfig.from_dict(recipe["features"])
        kwargs = {k: v for k, v in recipe["model"].items() if k != "name"}
        n_classes = paper.num_classes if paper is not None else int(recipe["model"].get("num_classes", 10))
        model = create_model(recipe["model"]["name"], num_classes=n_classes,
                             in_chans=paper.shape[0] if paper is not None else fcfg.in_chans,
                             **{k: v for k, v in kwargs.items() if k != "num_classes"})
        if paper is not None:
            shape = (1, *paper.shape)
        elif t in list_models():
            shape = None
        else:
            shape = default_input_shape(fcfg, float(recipe["data"].get("duration") or 1.0))
        rep = model_complexity(model, recipe, input_shape=shape)
        rep["recipe"] = recipe.get("name")
        if paper is not None:
            rep["input_source"] = paper.source
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
    print("[2/4] training recipe 'quickstart' (CP-Mobile, 1 s clips; the last epoch's weights are kept)")
    overrides = [f"train.epochs={epochs}"] if epochs else []
    summary = train_run("quickstart", data, out / "run", overrides=overrides, cache_dir=out / "cache",
                        progress=progress, force=True)
    print("[3/4] evaluation on the synthetic test split (unseen devices s4-s6 included)")
    print(summary["metrics"]["text"])
    print(f"weights: {summary['weights']} (no epoch is chosen on the test split)")
    print("[4/4] predicting one test clip per class")
    index = open_data(data, load_recipe("quickstart"))
    clips = demo_clips(index.test, index.classes)
    rows = predict_files(out / "run" / "model.ckpt", [r.path for r in clips], progress=False)
    for row, rec in zip(rows, clips):
        mark = "ok" if row["label"] == rec.label else "--"
        print(f"  {mark} {Path(row['file']).name:<42} device {rec.device or '-':<3} true {rec.label:<18} "
              f"predicted {row['label']}")
    right = sum(row["label"] == rec.label for row, rec in zip(rows, clips))
    print(f"  {right} of {len(clips)} right here; macro accuracy over all {summary['metrics']['n']} test clips "
          f"{summary['metrics']['macro_accuracy']:.3f}")
    total = time.time() - t0
    run = out / "run"
    print(f"\ndone in {total:.0f} s. Macro accuracy on the synthetic test split: "
          f"{summary['metrics']['macro_accuracy']:.3f} (chance 0.100), weights: {summary['weights']}")
    print(f"  model:            {run / 'model.ckpt'}")
    print(f"  metrics:          {run / 'metrics.json'}")
    print(f"  confusion matrix: {run / 'confusion.png'}")
    print(f"  per-device plot:  {run / 'per_device.png'}")
    print(f"  training log:     {run / 'logs' / 'metrics.csv'} and {run / 'training_curves.png'}")
    print(f"next: asclab predict {run / 'model.ckpt'} YOUR_RECORDING.wav")
    return {**summary, "demo_seconds": round(total, 1)}


def demo_clips(test: list[Record], classes: list[str]) -> list[Record]:
    """One test clip per class, the devices taken in turn (seen and unseen), the first such clip
    in the data set's order; a class without a clip on its turn's device takes its first clip."""
    devices = sorted({r.device for r in test if r.device is not None})
    picks = []
    for k, label in enumerate(classes):
        of_class = [r for r in test if r.label == label]
        if not of_class:
            continue
        turn = devices[k % len(devices)] if devices else None
        picks.append(next((r for r in of_class if r.device == turn), of_class[0]))
    return picks


def _fold_over_seeds(runs: list[dict]) -> dict:
    """One fold's figures over its seeds: the means, each seed's accuracy and the spread."""
    fold = {"fold": runs[0]["fold"], "seeds": [r["seed"] for r in runs]}
    for key in ("accuracy", "macro_accuracy", "log_loss"):
        ms = _mean_std([r[key] for r in runs])
        fold[key] = ms["mean"]
        if key != "log_loss":
            fold[key + "_seed_std"] = ms["std"]
    fold["per_seed_accuracy"] = [r["accuracy"] for r in runs]
    fold["train_seconds"] = float(sum(r["train_seconds"] for r in runs))
    fold["n_test"], fold["test_recordings"] = runs[0]["n_test"], runs[0]["test_recordings"]
    fold["confusion"] = np.sum([np.array(r["confusion"]) for r in runs], axis=0).tolist()
    return fold


def crossval_plan(recipe_name: str | Path | dict, data_dir: str | Path, *, folds: int | None = None,
                  group_by: str | None = None, overrides: list[str] | None = None):
    """The folds ``crossval`` trains: ``(overrides, recipe, index, chosen_folds)``, where
    ``overrides`` gains ``data.group_folds`` for recording-wise folds (``group_by``, or a data
    set without folds and ``folds`` given) so each fold's run recipe reproduces its split."""
    overrides = list(overrides or [])
    recipe, cfg = load_config(recipe_name, overrides)
    if group_by is None and cfg.data.group_folds is None and folds:
        probe = open_dataset(data_dir, class_map=cfg.data.class_map)
        if not any(r.fold is not None for r in probe.records):
            group_by = "identifier"  # no predefined folds: recording-wise ones
            print(f"{data_dir}: no predefined folds; assigning {folds} folds by {group_by}")
    if group_by is not None:
        k = folds or (cfg.data.group_folds.folds if cfg.data.group_folds is not None else None)
        if not k:
            raise ConfigError(f"--group-by {group_by} needs the number of folds: --folds K")
        overrides.append(f"data.group_folds={{folds: {int(k)}, by: {group_by}}}")
        recipe, cfg = load_config(recipe_name, overrides)
    index = open_dataset(data_dir, class_map=cfg.data.class_map, group_folds=_group_folds(cfg.data.group_folds))
    available = sorted({r.fold for r in index.records if r.fold is not None})
    if not available:
        raise AsclabError(f"{data_dir}: the data set defines no folds (a fold column or a file-name pattern); "
                          "--folds K --group-by identifier assigns K recording-wise folds")
    if folds and folds > len(available):
        raise AsclabError(f"{data_dir}: asked for {folds} folds, the data set has {len(available)}")
    return overrides, recipe, index, (available[:folds] if folds else available)


def crossval(recipe_name: str | Path, data_dir: str | Path, out_dir: str | Path, *, folds: int | None = None,
             overrides: list[str] | None = None, cache_dir: Path | None = None, progress: bool = True,
             force: bool = False, group_by: str | None = None, seeds: list[int] | None = None) -> dict:
    """Train and evaluate on each fold; write per-fold and mean +- std metrics, a summed
    confusion matrix, the fold of every clip (``folds.tsv``) and the total time.

    The folds are the data set's own (ESC-10's five, TUT's official four), or, with
    ``group_by`` (e.g. "identifier"), or when the data set has none and ``folds`` is
    given, ``folds`` recording-wise folds (``asclab.data.group_folds``, recorded in each
    fold's recipe as ``data.group_folds``). The ``out_dir`` is held alone, as a training run
    holds its folder (``asclab.runs.claim_run_folder``).

    ``seeds`` (e.g. [0, 1, 2]): train each fold once per seed (``train.seed``) into
    ``fold{k}/seed{s}``; a fold's figures are the mean over its seeds, ``per_run`` keeps
    every run and ``seed_std`` the mean over folds of the spread between seeds. On small
    test folds the spread is large (TUT 2017, 82 clips: see results/kd/v2/seeds), so one
    seed per fold can rank two systems either way."""
    from asclab.runs import claim_run_folder
    from asclab.train.distributed import is_main_process

    if seeds is not None and (not seeds or len(set(seeds)) != len(seeds) or any(int(x) < 0 for x in seeds)):
        raise ConfigError(f"--seeds must be distinct non-negative integers, got {seeds!r}")
    load_config(recipe_name, overrides)  # every recipe key checked before the folder is touched
    with claim_run_folder(out_dir, lock=is_main_process()):
        return _crossval_claimed(recipe_name, data_dir, out_dir, folds=folds, overrides=overrides,
                                 cache_dir=cache_dir, progress=progress, force=force, group_by=group_by,
                                 seeds=seeds)


def _mean_std(vals) -> dict:
    vals = np.asarray(vals, dtype=float)
    return {"mean": float(vals.mean()), "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0}


def _crossval_claimed(recipe_name: str | Path, data_dir: str | Path, out_dir: str | Path, *, folds: int | None,
                      overrides: list[str] | None, cache_dir: Path | None, progress: bool, force: bool,
                      group_by: str | None, seeds: list[int] | None = None) -> dict:
    t0 = time.time()
    overrides, recipe, index, chosen = crossval_plan(recipe_name, data_dir, folds=folds, group_by=group_by,
                                                     overrides=overrides)
    out = Path(out_dir)
    runs = []
    from tqdm.auto import tqdm
    plan = [(fold, seed) for fold in chosen for seed in (seeds or [None])]
    fold_bar = tqdm(plan, desc="crossval folds", unit="run", disable=not progress, position=1, leave=True)
    for fold, seed in fold_bar:
        fold_bar.set_postfix_str(f"fold {fold} of {chosen[-1]}" + ("" if seed is None else f", seed {seed}"))
        # The held-out fold is the test set: keep the last epoch's weights rather than
        # the epoch that scored best on it, so the estimate is not chosen on the test data.
        run_dir = out / f"fold{fold}" if seed is None else out / f"fold{fold}" / f"seed{seed}"
        s = train_run(recipe_name, data_dir, run_dir, overrides=["train.keep=last"] + overrides +
                      [f"data.test_fold={fold}"] + ([] if seed is None else [f"train.seed={int(seed)}"]),
                      cache_dir=cache_dir, progress=progress, force=force)
        m = s["metrics"]
        runs.append({"fold": fold, **({} if seed is None else {"seed": int(seed)}),
                     "accuracy": m["accuracy"], "macro_accuracy": m["macro_accuracy"],
                     "log_loss": m["log_loss"], "train_seconds": s["train_seconds"], "n_test": m["n"],
                     "test_recordings": len({r.identifier for r in index.records
                                             if r.fold == fold and r.identifier is not None}),
                     "confusion": m["confusion"]})
    fold_bar.close()
    classes = index.classes
    results = runs if seeds is None else [_fold_over_seeds([r for r in runs if r["fold"] == f]) for f in chosen]
    total_cm = np.sum([np.array(r["confusion"]) for r in runs], axis=0)
    summary = {"recipe": recipe["name"], "data": str(data_dir), "folds": chosen, "per_fold": results,
               "group_folds": recipe["data"].get("group_folds")}
    for key in ("accuracy", "macro_accuracy", "log_loss"):
        summary[key] = _mean_std([r[key] for r in results])
    if seeds is not None:
        summary["seeds"] = [int(x) for x in seeds]
        summary["per_run"] = runs
        summary["seed_std"] = {key: float(np.mean([r[key + "_seed_std"] for r in results]))
                               for key in ("accuracy", "macro_accuracy")}
    summary["confusion"] = total_cm.tolist()
    summary["classes"] = classes
    summary["total_seconds"] = round(time.time() - t0, 1)
    first = out / f"fold{chosen[0]}" if seeds is None else out / f"fold{chosen[0]}" / f"seed{int(seeds[0])}"
    summary["complexity"] = json.loads((first / "complexity.json").read_text())
    write_json(out / "crossval.json", summary)
    write_table(out / "folds.tsv", ("filename", "label", "identifier", "fold"),
                [(r.extra.get("filename", r.path), r.label, r.identifier, r.fold) for r in index.records
                 if r.fold in chosen])
    plot_confusion(total_cm, classes, out / "confusion_sum.png",
                   title=f"{len(chosen)}-fold summed, accuracy {summary['accuracy']['mean']:.3f}")
    return summary
