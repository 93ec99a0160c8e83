"""Commands that describe: data (synth, describe), recipes, complexity."""
from __future__ import annotations

import json

from asclab.compress.complexity import format_report
from asclab.config import list_recipes
from asclab.data import open_dataset
from asclab.data.describe import describe
from asclab.data.synth import make_synthetic_dataset
from asclab.errors import AsclabError
from asclab.workflows.complexity import complexity_targets


def cmd_data(args) -> int:
    if args.data_command == "synth":
        kwargs = {k: v for k, v in (("n_per_class_device", args.per_cell), ("seconds", args.seconds),
                                    ("sample_rate", args.sample_rate)) if v is not None}
        make_synthetic_dataset(args.out, seed=args.seed, **kwargs)
        print(describe(open_dataset(args.out)))
        print(f"wrote SYNTHETIC data set to {args.out}")
        return 0
    if args.data_command == "describe":
        print(describe(open_dataset(args.dir, split=args.split, check_files=not args.no_check_files)))
        return 0
    raise AsclabError("asclab data: choose 'synth' or 'describe'")


def cmd_recipes(args) -> int:
    recipes = list_recipes()
    width = max(map(len, recipes), default=10)
    for name, desc in recipes.items():
        print(f"{name:<{width}}  {desc}")
    return 0


def cmd_complexity(args) -> int:
    reports = complexity_targets(args.target)
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        print(format_report(reports))
    return 0
