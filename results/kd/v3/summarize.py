"""Round 3 tables: the student alone vs distilled, every fold with 3 seeds (TUT 2017: 4 recording-wise
folds; ESC-10: its 5 folds, when run).

    python results/kd/v3/summarize.py [RUNS]     (RUNS: default /work/kdruns; writes kd_v3.json and prints markdown)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETS = {"tut2017": ("tut2017_cp_mobile", "tut2017_kd_cp_mobile"), "esc10": ("esc10_cp_mobile", "esc10_kd_cp_mobile")}


def load(path: Path) -> dict:
    s = json.loads(path.read_text())
    out = {k: s[k] for k in ("recipe", "folds", "seeds", "accuracy", "macro_accuracy", "seed_std", "per_fold",
                             "per_run", "total_seconds")}
    for row in out["per_fold"] + out["per_run"]:
        row.pop("confusion", None)
    return out


def main() -> None:
    runs = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/kdruns") / "v3"
    result = {}
    for name, (alone_recipe, kd_recipe) in SETS.items():
        paths = {"alone": runs / f"{name}_alone" / "crossval.json", "kd": runs / f"{name}_kd" / "crossval.json"}
        if not all(p.exists() for p in paths.values()):
            continue
        res = {key: load(p) for key, p in paths.items()}
        print(f"\n### {name}\n")
        print("| system | accuracy, mean +- std over folds (each fold: mean of 3 seeds) | seed-to-seed std (points) "
              "| per fold: mean (seeds 0, 1, 2) | minutes (wall, both lanes at once) |")
        print("| --- | ---: | ---: | --- | ---: |")
        for key, label in (("alone", f"CP-Mobile alone (`{alone_recipe}`)"),
                           ("kd", f"CP-Mobile distilled (`{kd_recipe}`, T 2, label weight 0.02)")):
            s = res[key]
            folds = "; ".join(f"{f['fold']}: {100 * f['accuracy']:.2f} ({', '.join(f'{100 * a:.1f}' for a in f['per_seed_accuracy'])})"
                              for f in s["per_fold"])
            print(f"| {label} | **{100 * s['accuracy']['mean']:.2f} % +- {100 * s['accuracy']['std']:.1f}** "
                  f"| {100 * s['seed_std']['accuracy']:.1f} | {folds} | {s['total_seconds'] / 60:.0f} |")
        a, k = res["alone"], res["kd"]
        diffs = [100 * (y["accuracy"] - x["accuracy"]) for x, y in zip(a["per_fold"], k["per_fold"])]
        paired = [100 * (y["accuracy"] - x["accuracy"]) for x, y in zip(a["per_run"], k["per_run"])]
        res["kd_minus_alone_points"] = {"per_fold": diffs, "mean": sum(diffs) / len(diffs), "per_run_same_seed": paired}
        print(f"\nDistilled minus alone, per fold (points): {', '.join(f'{d:+.1f}' for d in diffs)}; "
              f"mean {sum(diffs) / len(diffs):+.1f}. Same fold and seed, per run: {', '.join(f'{d:+.1f}' for d in paired)}.")
        result[name] = res
    (HERE / "kd_v3.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
