"""Collect ESC-10 KD measurement into one JSON + markdown table (per fold and mean +- std)."""
import json, sys, statistics as st
from pathlib import Path
R = Path("/tmp/kd_runs/esc10")
rows = {}
def acc(run):
    m = json.loads((run / "metrics.json").read_text()); s = json.loads((run / "summary.json").read_text())
    return m["accuracy"], m["macro_accuracy"], s["train_seconds"]
folds = sorted(int(p.name[4:]) for p in (R / "teachers").glob("fold*") if (p / "teachers.h5").exists())
out = {"folds": folds, "per_fold": {}}
import h5py, numpy as np
for f in folds:
    d = {}
    t = json.loads((R / "teachers" / f"fold{f}" / "members" / "esc10_shared_resnet" / "summary.json").read_text())
    tf = h5py.File(R / "teachers" / f"fold{f}" / "teachers.h5", "r")
    keys = [k.decode() for k in tf["keys"][()]]; split = [k.decode() for k in tf["split"][()]]
    classes = json.loads(tf.attrs["classes"])
    y = np.array([classes.index(next(c for c in classes if c == Path(k).parent.name)) for k in keys])
    test = np.array([s == "test" for s in split])
    mean = tf["mean"][()]; logits = tf["logits"][()]
    d["teacher_ensemble"] = float((mean[test].argmax(1) == y[test]).mean())
    d["teacher_members"] = [float((m[test].argmax(1) == y[test]).mean()) for m in logits]
    d["teacher_train_seconds"] = [json.loads((R / "teachers" / f"fold{f}" / "members" / n / "summary.json").read_text())["train_seconds"]
                                  for n in ("esc10_shared_resnet", "esc10_teacher_shared_resnet_b")]
    for name in ("student_kd", "student_alone"):
        run = R / name / f"fold{f}"
        if (run / "metrics.json").exists():
            a, ma, sec = acc(run); d[name] = a; d[name + "_seconds"] = sec
    out["per_fold"][f] = d
def ms(key):
    v = [d[key] for d in out["per_fold"].values() if key in d]
    return (st.mean(v), st.stdev(v) if len(v) > 1 else 0.0, len(v)) if v else None
out["summary"] = {k: ms(k) for k in ("teacher_ensemble", "student_kd", "student_alone")}
print(json.dumps(out, indent=1))
