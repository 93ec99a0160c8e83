"""Commands that train: demo, train (and --resume), features, crossval, teachers."""
from __future__ import annotations

from pathlib import Path

from asclab.cli.parser import _overrides, _seed_list
from asclab.errors import AsclabError
from asclab.train.distributed import distributed_trainer_kwargs
from asclab.workflows.crossval import crossval
from asclab.workflows.demo import run_demo
from asclab.workflows.features import build_features
from asclab.workflows.finetune import finetune_recipe, finetune_run
from asclab.workflows.soup import make_soup
from asclab.workflows.teachers import train_teachers
from asclab.workflows.train import resume_run, train_run


def cmd_demo(args) -> int:
    run_demo(args.out, epochs=args.epochs, progress=not args.quiet)
    return 0


def cmd_train(args) -> int:
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
    rows = build_features(args.recipe, args.data, overrides=args.overrides, cache_dir=args.cache_dir,
                          workers=args.workers, shard_size=args.shard_size, verify=args.verify,
                          progress=not args.quiet)
    for r in rows:
        what = ("up to date" if r["up_to_date"] else
                f"{r['shards_computed']} shard(s) computed, {r['shards_reused']} reused"
                + (f", {r['shards_damaged']} damaged and rebuilt" if r["shards_damaged"] else ""))
        print(f"{r['split']:<10} {r['clips']:>6} clips  {what}  ({r['seconds']} s)  {r['path']}")
    return 0


def cmd_finetune(args) -> int:
    s = finetune_run(args.model, args.data, args.out, recipe=args.recipe, general=args.general,
                     overrides=_overrides(args), cache_dir=args.cache_dir, progress=not args.quiet, force=args.force)
    if s.get("metrics"):
        print(s["metrics"]["text"])
    print(f"model: {s['model']}\nrun folder: {s['run']} ({s['train_seconds']} s training)")
    return 0


def cmd_soup(args) -> int:
    s = make_soup(args.models, args.out, greedy_on=args.greedy_on)
    if s["kind"] == "greedy":
        for st in s["steps"]:
            print(f"{'kept' if st['kept'] else 'left out'} {st['member']}: alone {st['alone']:.3f}, "
                  f"soup with it {st['soup_with_it']:.3f}")
        print(f"validation accuracy: best single {s['best_single']:.3f}, greedy soup {s['validation_accuracy']:.3f}")
    print(f"wrote {s['out']}: {s['kind']} soup of {len(s['members'])} model(s)")
    return 0


def cmd_crossval(args) -> int:
    seeds = _seed_list(args.seeds)
    recipe = args.recipe
    overrides = _overrides(args)
    if args.from_model:  # the fine-tuning recipe of MODEL, its overrides applied inside
        recipe, overrides = finetune_recipe(args.from_model, args.data, args.recipe, general=args.general,
                                            overrides=overrides), []
    s = crossval(recipe, args.data, args.out, folds=args.folds, overrides=overrides,
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


def cmd_teachers(args) -> int:
    s = train_teachers(args.recipes, args.data, args.out, folds=args.folds, group_by=args.group_by,
                       overrides=_overrides(args), cache_dir=args.cache_dir, progress=not args.quiet,
                       force=args.force, duration=args.duration)
    if "ensemble_accuracy" in s:
        a = s["ensemble_accuracy"]
        print(f"teacher ensemble accuracy {a['mean']:.3f} +- {a['std']:.3f} over {len(s['folds'])} folds")
    print(f"teacher files: {s.get('teacher_file') or s['teachers']['out']} ({s['total_seconds']:.0f} s)")
    return 0
