"""Round 3 tables: TUT 2017 student alone vs distilled, 4 recording-wise folds x 3 seeds.

    python results/kd/v3/summarize.py [RUNS]     (RUNS: default /work/kdruns; writes kd_v3.json and prints markdown)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    runs = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/kdruns") / "v3"
    out, lines = {}, []
    for name, label in (("tut2017_alone", "CP-Mobile alone (`tut2017_cp_mobile`)"),
                        ("tut2017_kd", "CP-Mobile distilled (`tut2017_kd_cp_mobile`, T 2, label weight 0.02)")):
        s = json.loads((runs / name / "crossval.json").read_text())
        out[name] = {k: s[k] for k in ("recipe", "folds", "seeds", "accuracy", "macro_accuracy", "seed_std", "per_fold",
                                       "per_run", "total_seconds")}
        for f in out[name]["per_fold"]:
            f.pop("confusion", None)
        for r in out[name]["per_run"]:
            r.pop("confusion", None)
        folds = "; ".join(f"{f['fold']}: {100 * f['accuracy']:.2f} ({', '.join(f'{100 * a:.1f}' for a in f['per_seed_accuracy'])})"
                          for f in s["per_fold"])
        lines.append(f"| {label} | **{100 * s['accuracy']['mean']:.2f} % +- {100 * s['accuracy']['std']:.1f}** "
                     f"| {100 * s['seed_std']['accuracy']:.1f} | {folds} | {s['total_seconds'] / 60:.0f} |")
    a, k = out["tut2017_alone"]["per_fold"], out["tut2017_kd"]["per_fold"]
    diffs = [100 * (y["accuracy"] - x["accuracy"]) for x, y in zip(a, k)]
    paired = [100 * (y["accuracy"] - x["accuracy"]) for x, y in zip(out["tut2017_alone"]["per_run"], out["tut2017_kd"]["per_run"])]
    out["kd_minus_alone_points"] = {"per_fold": diffs, "mean": sum(diffs) / len(diffs), "per_run_same_seed": paired}
    (HERE / "kd_v3.json").write_text(json.dumps(out, indent=1) + "\n")
    print("| system | accuracy, mean +- std over folds (each fold: mean of 3 seeds) | seed-to-seed std (points) "
          "| per fold: mean (seeds 0, 1, 2) | minutes (wall, both lanes at once) |")
    print("| --- | ---: | ---: | --- | ---: |")
    print("\n".join(lines))
    print(f"\nDistilled minus alone, per fold (points): {', '.join(f'{d:+.1f}' for d in diffs)}; "
          f"mean {sum(diffs) / len(diffs):+.1f}. Same fold and seed, per run: {', '.join(f'{d:+.1f}' for d in paired)}.")


if __name__ == "__main__":
    main()
