"""Train a recipe into a run folder: the ``asclab train`` workflow (ensembles, resume, the open-set tuning
and the model file it writes; McDonnell & Gao 2019 sec. 3.7-3.8)."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from asclab.compress.deployed import model_complexity, stored_bits
from asclab.compress.prune import to_fp16_state
from asclab.compress.qat import INFO_KEY as QAT_INFO_KEY
from asclab.compress.qat import quantization_info
from asclab.config import (
    RecipeConfig,
    load_config,
)
from asclab.data.open import open_data
from asclab.data.records import Record
from asclab.data.teacher_file import file_sha256
from asclab.data.teacher_targets import TeacherLogits
from asclab.data.validation import (
    ValidationSpec,
    carve_validation,
    kept_weights,
    recording_id,
)
from asclab.errors import AsclabError, ConfigError
from asclab.evaluate.inference import Predictor, predict_records
from asclab.evaluate.openset import OpenSetRule, tune_weight
from asclab.evaluate.plots import plot_training_curves
from asclab.io import write_json
from asclab.models.device_container import is_device_container
from asclab.train.checkpoint import (
    ModelFile,
    load_model_file,
    save_model_file,
)
from asclab.train.distributed import is_main_process
from asclab.train.fit import fit
from asclab.workflows.evaluate import evaluate_run
from asclab.workflows.run_folder import claim_run_folder, record_run


def model_entry(model, cfg: RecipeConfig) -> dict:
    """The model file's ``model`` entry: the recipe's, or, after device-specific fine-tuning,
    a ``device_container`` around it (``asclab.models.device_container``)."""
    if is_device_container(model):
        return {"name": "device_container", "base": cfg.model.as_mapping(), "devices": list(model.devices)}
    return cfg.model.as_mapping()


def train_run(recipe_name: str | Path | dict, data_dir: str | Path, out_dir: str | Path, *,
              config: RecipeConfig | None = None, **kw) -> dict:
    """Train a recipe on a data set (:func:`_train_run_claimed`) in a run folder it holds
    alone: the recipe is checked first, ``--out`` must be new, empty or an asclab run,
    a second run on it is refused at once, and a run that fails before its first
    checkpoint in a folder it created leaves nothing behind (``asclab.workflows.run_folder``).
    ``config``: the typed configuration when the caller parsed the recipe already
    (``recipe_name`` is then the merged dict :func:`asclab.config.load_config` returned with
    it, and no overrides are given); it is not parsed again (:func:`resume_run`)."""
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
    t0 = time.time()
    keeps = kept_weights(cfg)  # train.keep: best only with a validation split carved from training
    validation = ValidationSpec.from_config(cfg.data.validation)
    o = cfg.inference.openset  # McDonnell & Gao 2019 task 1c, stored in the model file
    openset = OpenSetRule(o.unknown_label, float(o.weight), tune=o.tune) if o is not None else None
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
    index = open_data(data_dir, cfg.data)
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
    teachers = TeacherLogits.for_recipe(cfg, index.root, index.classes, train_records)
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
    state = model.state_dict()
    quant = quantization_info(model)  # an int8 model (workflow stage qat) keeps its int8 state as it is
    if cfg.compress is not None and cfg.compress.fp16 and quant is None:
        state = to_fp16_state(state)
    final = model_complexity(model, cfg.features, bits=stored_bits(model, state))  # as the file stores it
    weights = weights_kept(keeps, result.best_path, carved)
    mf = ModelFile(state_dict=state, classes=index.classes, features=cfg.features.to_dict(),
                   model=model_entry(model, cfg), recipe=recipe, duration=cfg.data.duration,
                   devices=result.devices,
                   data_summary={"data": str(data_dir), "layout": index.layout, "n_train": len(result.train_records),
                                 "n_val": len(val_records), "n_validation": len(carved), "weights": weights},
                   extra={"train_seconds": result.seconds, **({QAT_INFO_KEY: quant} if quant else {}),
                          **({"ancestry": ancestry(cfg, data_dir)} if cfg.train.init_from else {})},
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


def ancestry(cfg: RecipeConfig, data_dir: str | Path) -> list[dict]:
    """Where a fine-tuned model comes from: its parent's ancestry (an imported file's origin and
    sha256 first), then this fine-tune (parent file and sha256, recipe, data)."""
    parent = Path(cfg.train.init_from)
    mf = load_model_file(parent)
    chain = list((mf.extra or {}).get("ancestry") or [])
    if not chain:
        summary = mf.data_summary or {}
        chain = [{"origin": summary.get("imported_from") or str(parent), "sha256": summary.get("sha256"),
                  "layout": summary.get("layout"), "recipe": (mf.recipe or {}).get("name")}]
    chain.append({"finetuned_from": str(parent), "sha256": file_sha256(parent), "recipe": cfg.name,
                  "data": str(data_dir)})
    return chain


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
    path = Path(run) / "run_info.json"
    if not is_main_process() or not path.exists():
        return
    info = json.loads(path.read_text())
    info.setdefault("resumed", []).append({"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": sys.argv})
    write_json(path, info)
