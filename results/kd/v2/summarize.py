"""Collect the second distillation round (run.sh) into kd_v2.json and a markdown table.

    python results/kd/v2/summarize.py [RUNS]      (RUNS: the folder run.sh wrote, default /work/kdruns)

Per data set: the teacher ensemble (mean logits of the fold's teachers on its test clips, from
``teachers.json``), each member, CP-Mobile alone and CP-Mobile distilled (``crossval.json``), mean +- std
over folds (sample std) and per fold; training seconds per fold (wall, shared CPU)."""
from __future__ import annotations

import json
import statistics as st
import sys
from pathlib import Path

RUNS = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/kdruns")
OUT = Path(__file__).resolve().parent


def mean_std(v: list[float]) -> tuple[float, float]:
    return st.mean(v), (st.stdev(v) if len(v) > 1 else 0.0)


def member_seconds(fold_dir: Path) -> dict[str, float]:
    out = {}
    for m in sorted((fold_dir / "members").glob("*")):
        s = m / "summary.json"
        if s.exists():
            out[m.name] = json.loads(s.read_text())["train_seconds"]
    return out


def ensemble_seconds(seconds: dict[str, float], recipes: list[str]) -> float | None:
    """The members' training time added up, or None when one member's is not on record."""
    vals = [seconds.get(r) for r in recipes]
    return None if None in vals else sum(vals)


def collect(name: str) -> dict | None:
    root = RUNS / name
    t = root / "teachers" / "teachers.json"
    if not t.exists():
        return None
    teachers = json.loads(t.read_text())
    rows = {"teacher ensemble (mean logits)": {
        "model": " + ".join(f"`{r}`" for r in teachers["recipes"]),
        "per_fold": [f["test_accuracy_mean_logits"] for f in teachers["per_fold"]],
        "seconds": [ensemble_seconds(member_seconds(root / "teachers" / f"fold{f['fold']}"), teachers["recipes"])
                    for f in teachers["per_fold"]]}}
    for j, r in enumerate(teachers["recipes"]):
        rows[f"teacher member {j + 1}"] = {"model": f"`{r}`",
                                           "per_fold": [f["test_accuracy_members"][j] for f in teachers["per_fold"]],
                                           "seconds": [member_seconds(root / "teachers" / f"fold{f['fold']}").get(r)
                                                       for f in teachers["per_fold"]]}
    for key, label in (("student_alone", "CP-Mobile alone"), ("student_kd", "CP-Mobile distilled")):
        files = sorted((root / key).glob("*crossval.json"))
        if files:
            cv = json.loads(files[0].read_text())
            rows[label] = {"model": f"`{cv['recipe']}`", "per_fold": [f["accuracy"] for f in cv["per_fold"]],
                           "seconds": [f["train_seconds"] for f in cv["per_fold"]],
                           "complexity": {k: cv["complexity"].get(k) for k in ("params", "bytes", "macs")}}
    for r in rows.values():
        r["mean"], r["std"] = mean_std(r["per_fold"])
    return {"folds": teachers["folds"], "rows": rows}


def table(res: dict) -> str:
    lines = ["| system | recipe(s) | accuracy, mean +- std | per fold (%) | training s per fold (wall, shared CPU) |",
             "| --- | --- | ---: | --- | ---: |"]
    for label, r in res["rows"].items():
        secs = ", ".join("n/a" if s is None else f"{s:.0f}" for s in r["seconds"])
        lines.append(f"| {label} | {r['model']} | **{100 * r['mean']:.2f} % +- {100 * r['std']:.1f}** | "
                     + ", ".join(f"{100 * a:.2f}" for a in r["per_fold"]) + f" | {secs} |")
    return "\n".join(lines)


if __name__ == "__main__":
    out = {n: collect(n) for n in ("esc10", "tut2017")}
    (OUT / "kd_v2.json").write_text(json.dumps(out, indent=1) + "\n")
    for n, res in out.items():
        if res:
            print(f"### {n}, folds {res['folds']}\n\n{table(res)}\n")
